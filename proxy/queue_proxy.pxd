# Declarations for the compiled build of queue_proxy.py (the .py is the pure twin).
cimport cython
from _speedups cimport fields as F
from _speedups._accounting_c cimport HistogramGroup, RequestStats
from _speedups._head_c cimport valid_host
from proxy.breaker cimport Breaker
from proxy.engine.server cimport Exchange, ServerProtocol
from proxy.headers cimport request_head

cdef class QueueProxyHandler:
    cdef public object pool
    cdef public tuple timeouts
    cdef public Breaker breaker
    cdef public object health
    cdef public object stats
    cdef public object metrics
    cdef public object request_log
    cdef public object drainer
    cdef public object clock
    cdef public bytes default_host
    cdef public bint _track
    cdef RequestStats _stats
    cdef HistogramGroup _series
    cdef object _on_done
    cdef object _fwd_for
    cdef object _fwd_host
    cdef object _fwd_proto
    cdef bytes _fwd_line
    cdef long _depth_seen
    cdef bint _track_depth

    @cython.locals(f=list, ctx=list, via=object, probe=object)
    cpdef handle(self, Exchange ex)
    cpdef _run(self, Exchange ex, list ctx, double now)
    @cython.locals(ctx=list, state=int, f=list, probe=object, status=int, conn=ServerProtocol,
                   proto=int, app=double, kind=int)
    cpdef _done(self, Exchange ex)
