# Declarations for the compiled build of server.py (the .py is the pure twin): typed
# attributes, and C-level calls between the engine's own objects on the hot path.
cimport cython
from _speedups cimport fields as F
from proxy.engine cimport states as S
from _speedups._h1_c cimport RequestSink
from _speedups._head_c cimport build_head, connection_tokens, join_bytes, scan_headers, valid_host
from proxy.engine.deadlines cimport Deadlines, Queue
from proxy.engine.messages cimport date_header, error_head, status_line
# A cycle with upstream.pxd (which cimports Exchange): Cython resolves it; the C calls
# between an exchange and its upstream connection need both types.
from proxy.engine.upstream cimport UpstreamPool, UpstreamProtocol

cdef class Exchange:
    cdef public ServerProtocol conn
    cdef public bytes method
    cdef public bytes target
    cdef public bint http10
    cdef public object headers
    cdef public list lnames
    cdef public list fields
    cdef public bint keep_alive
    cdef public bint upgrade
    cdef public bint chunked
    cdef public bint expect_continue
    cdef public bint body_done
    cdef public object body_buf
    cdef public object early
    cdef public Py_ssize_t body_size
    cdef public object trailers
    cdef public UpstreamProtocol upstream
    cdef public int state
    cdef public bint written
    cdef public int resp_mode
    cdef public bint resp_close
    cdef public int resp_status
    cdef public Py_ssize_t resp_bytes
    cdef public bint resp_local
    cdef public Py_ssize_t req_bytes
    cdef public bytes head_out
    cdef public object on_done
    cdef public object ctx
    cdef public object timeout_body
    cdef public Queue total_q
    cdef public Queue start_q
    cdef public Queue idle_q
    cdef public double started
    cdef public object body_reader

    cpdef respond(self, int status, bytes body=*, bytes head_lines=*, bint close=*)
    cpdef error(self, int status, object text, bint close=*)
    cpdef forward(self, UpstreamPool pool)
    @cython.locals(total=Queue, start=Queue, idle=Queue)
    cpdef arm_timeouts(self, tuple queues, double now=*)
    cpdef bint _must_close(self) except -1
    cpdef feed_body(self, bytes data)
    cpdef end_body(self, object trailers)
    cpdef attached(self, UpstreamProtocol upstream)
    cpdef upstream_failed(self, object reason)
    cpdef _abort_client(self)
    @cython.locals(http10=bint, close=bint, bodyless=bint, extra=list)
    cpdef response_head(self, int status, object headers, object lnames, object values,
                        list tokens)
    @cython.locals(close=bint, conn=ServerProtocol)
    cpdef response_plain(self, int status, bytes lines, bint has_date)
    cpdef response_body(self, bytes data)
    cpdef response_end(self, object trailers)
    cpdef _written(self)
    cpdef _detach_upstream(self)
    cpdef bint _finish_state(self) except -1
    cpdef _finish(self)
    cpdef client_gone(self)

cdef class ServerProtocol(RequestSink):
    cdef public Server server
    cdef public object transport
    cdef public str peer_ip
    cdef public bytes peer_bytes
    cdef public str peer_addr
    cdef public bytes xff_line
    cdef public object parser
    cdef public Exchange current
    cdef public Exchange reading
    cdef public list pipeline
    cdef public int paused
    cdef public bint full
    cdef public list wbuf
    cdef public bint corked
    cdef public bint closing
    cdef public bint tunnel
    cdef public bint parser_done
    cdef public long head_tick
    cdef public bint shares
    cdef public bint fresh
    cdef public object h2
    cdef public bint tls
    cdef object _write
    cdef object _is_closing
    cdef object _feed

    @cython.locals(lnames=list, values=list, http10=bint, ex=Exchange)
    cpdef on_head(self, bytes method, bytes target, bytes version, list headers)
    cpdef on_body(self, bytes data)
    cpdef on_end(self, list trailers)
    cpdef write(self, bytes data)
    cpdef flush(self)
    cpdef abort(self)
    cpdef close(self)
    cpdef pause(self, int reason)
    cpdef resume(self, int reason)
    cpdef exchange_done(self, Exchange ex)

cdef class Server:
    cdef public object loop
    cdef object _time
    cdef public object handler
    cdef object _handle_of
    cdef object _handle
    cdef public str backend
    cdef public Py_ssize_t max_head
    cdef public Deadlines deadlines
    cdef public long head_tick
    cdef public double _head_period
    cdef public object _head_sweeper
    cdef public set connections
    cdef public set tunnels
    cdef public set h2conns
    cdef public bint draining_connections
    cdef public list _servers
    cdef public object _idle_waiter
    cdef public list corked
    cdef object _uncork_soon

    @cython.locals(corked=list, conn=ServerProtocol)
    cpdef uncork(self)

    cpdef dispatch(self, Exchange ex)
