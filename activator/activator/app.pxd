# Declarations for the compiled build of app.py (the .py is the pure twin): the request path.
cimport cython
from _speedups cimport fields as F
from _speedups._accounting_c cimport HistogramGroup
from activator.activator.stats cimport ConcurrencyReporter
from activator.activator.throttler cimport RevisionThrottler
from proxy.engine.server cimport Exchange, ServerProtocol
from proxy.headers cimport request_head

cdef class ActivatorHandler

cdef class Revision:
    cdef public object activator
    cdef public ActivatorHandler handler
    cdef public str namespace
    cdef public str name
    cdef public tuple key
    cdef public object spec
    cdef public RevisionThrottler throttler
    cdef public tuple timeouts
    cdef public dict pools
    cdef public dict hosts
    cdef public object backends
    cdef public object cluster_ip
    cdef public bint cluster_healthy
    cdef public bint pods_addressable
    cdef public object fallback_ip
    cdef public dict failures
    cdef public list ready
    cdef public object cluster_backends
    cdef public bint removed
    cdef public object failure

    @cython.locals(handler=ActivatorHandler, ex=Exchange, pod=str)
    cpdef run_grants(self, list grants, double now=*)

cdef class ActivatorHandler:
    cdef public object act
    cdef public dict revisions
    cdef public ConcurrencyReporter reporter
    cdef public object clock
    cdef public bytes cluster_domain
    cdef object _on_done
    cdef HistogramGroup _series
    cdef public object request_log
    cdef Revision _last
    cdef bytes _last_name
    cdef bytes _last_ns

    @cython.locals(f=list, rev=Revision, name=bytes, namespace=bytes)
    cpdef handle(self, Exchange ex)
    @cython.locals(ctx=list)
    cpdef handle_revision(self, Exchange ex, Revision rev)
    @cython.locals(ctx=list, rev=Revision, f=list)
    cpdef run(self, Exchange ex, str pod)
    cpdef forward(self, Exchange ex, object pool)
    @cython.locals(rev=Revision, state=int, series=HistogramGroup, status=int,
                   conn=ServerProtocol, proto=int, kind=int, to_pod=double, now=double,
                   sent=double, timed=bint)
    cpdef _done(self, Exchange ex)
