# Declarations for the compiled build of upstream.py (the .py is the pure twin).
cimport cython
from _speedups cimport fields as F
from proxy.engine cimport states as S
from _speedups._h1_c cimport ResponseSink
from _speedups._head_c cimport connection_tokens, scan_headers
from proxy.engine.server cimport Exchange, ServerProtocol

cdef class UpstreamPool:
    cdef public object loop
    cdef object _time
    cdef public str host
    cdef public int port
    cdef public str backend
    cdef public Py_ssize_t max_idle
    cdef public Py_ssize_t max_head
    cdef public double settle
    cdef public dict idle
    cdef public dict owned
    cdef public bint closed
    cdef public str dial_name
    cdef public object h2
    cdef public object ssl
    cdef public object ssl_h2
    cdef public object server_hostname
    cdef public tuple dial_backoff
    cdef public list corked
    cdef object _uncork_soon

    @cython.locals(corked=list, up=UpstreamProtocol)
    cpdef uncork(self)
    cpdef resend(self, Exchange ex, bytes data)

    @cython.locals(idle=dict, owned=dict, up=UpstreamProtocol, limit=double, held=bint)
    cpdef acquire(self, Exchange ex)
    @cython.locals(owner_conn=ServerProtocol)
    cpdef release(self, UpstreamProtocol up, ServerProtocol owner)
    cpdef _disown(self, UpstreamProtocol up)

cdef class UpstreamProtocol(ResponseSink):
    cdef public UpstreamPool pool
    cdef public object transport
    cdef public object parser
    cdef public Exchange ex
    cdef public bint broken
    cdef public int fd
    cdef object _poll
    cdef public bint got_head
    cdef public bint close_after
    cdef public bint body_sent
    cdef public bint tunnel
    cdef public bint resp_eof_body
    cdef public double idle_since
    cdef public object owner
    cdef object _write
    cdef object _is_closing
    cdef object _expect
    cdef object _feed
    cdef public object pending
    cdef public bint paused
    cpdef pause_reading(self)
    cpdef resume_reading(self)
    cpdef _flush_pending(self)
    cpdef _resend(self)

    cpdef bint reusable(self, bint held=*) except -1
    cpdef close(self)
    cpdef abandon(self)
    cpdef send_head(self, bytes data, Exchange ex)
    cpdef send_body(self, bytes data, bint chunked)
    cpdef send_body_end(self, bint chunked, object trailers)
    cpdef _fail(self, Exchange ex, object reason)
    @cython.locals(ex=Exchange, lnames=list, values=list, tokens=list)
    cpdef on_response_head(self, int status, bytes version, list headers)
    @cython.locals(ex=Exchange)
    cpdef on_response_plain(self, int status, bytes lines, bint has_date)
    cpdef on_response_body(self, bytes data)
    cpdef on_response_end(self, list trailers)
