# Declarations for the compiled build of h2.py (the .py is the pure twin): the connections, the
# pool and the request stream are extension types, and the calls between them (and into the
# protocol core, ``h2core.Core``, which the compiled build always runs) are C calls.
cimport cython
from proxy.engine cimport states as S
from _speedups._head_c cimport h2_headers, scan_headers, valid_host
from proxy.engine.h2core cimport Core
from proxy.engine.server cimport Exchange, Server, ServerProtocol
from proxy.engine.upstream cimport UpstreamPool, UpstreamProtocol

cdef class H2Stream
cdef class H2UpstreamConnection

@cython.locals(out=list, has_date=bint, name=bytes)
cdef list _response_headers(int status, list headers, bint ended)
@cython.locals(status=int, has_date=bint, clean=bint, name=bytes, value=bytes, out=list)
cdef tuple _relayed(object headers, bint ended)

cdef _acked(object owner, long long osid, long long n)

cdef class _Conn:
    cdef public object loop
    cdef public Core h2
    cdef public object transport
    cdef public bint writable
    cdef public bint closed
    cdef public dict out
    cdef public dict tail
    cdef public bint _soon

    cpdef flush(self)
    cpdef soon(self)
    cpdef queue_data(self, long long sid, bytes data, object owner, long long osid,
                     long long n)
    cpdef queue_end(self, long long sid, object trailers=*)
    cpdef queue_reset(self, long long sid, long long code)
    @cython.locals(item=list)
    cpdef _drop(self, long long sid)
    @cython.locals(h2=Core, item=list, data=bytes, window=Py_ssize_t, size=Py_ssize_t,
                   last=bint, end=bint, kind=int)
    cpdef pump(self, long long sid)
    cpdef pump_all(self)
    cpdef ack(self, long long sid, long long n)

cdef class H2ServerConnection(_Conn):
    cdef public ServerProtocol conn
    cdef public Server server
    cdef public dict streams
    cdef public bint goaway_sent
    cdef public long budget_second
    cdef public long controls
    cdef public long resets

    @cython.locals(ex=H2Stream, second=long)
    cpdef data_received(self, bytes data)
    @cython.locals(ex=H2Stream, lnames=list, values=list, flags=int, name=bytes, value=bytes,
                   headers=list)
    cdef _request(self, long long sid, list raw, bint ended)
    cpdef finished(self, H2Stream ex)
    cpdef _forget(self, H2Stream ex)
    @cython.locals(ex=H2Stream)
    cpdef pump(self, long long sid)

cdef class H2Stream(Exchange):
    cdef public H2ServerConnection h2c
    cdef public long long sid
    cdef public bint in_ended
    cdef public H2UpstreamConnection up
    cdef public long long up_sid
    cdef public list h2_buf
    cdef public bint ending
    cdef public bint via_http11
    cdef public Py_ssize_t h1_queued
    cdef public bint h1_paused

    cpdef respond(self, int status, bytes body=*, bytes head_lines=*, bint close=*)
    cpdef error(self, int status, object text, bint close=*)
    @cython.locals(h2c=H2ServerConnection)
    cpdef _local(self, int status, list headers, bytes body)
    cpdef forward(self, UpstreamPool pool)
    cpdef upstream_failed(self, object reason)
    cpdef _abort_client(self)
    cpdef response_head(self, int status, object headers, object lnames, object values,
                        list tokens)
    cpdef response_plain(self, int status, bytes lines, bint has_date)
    cpdef response_body(self, bytes data)
    cpdef response_end(self, object trailers)
    cpdef _finish(self)
    cpdef client_gone(self)
    cpdef attached(self, UpstreamProtocol upstream)
    @cython.locals(up=H2UpstreamConnection, h1=UpstreamProtocol, buf=list)
    cpdef h2_data(self, bytes data, long long n)
    @cython.locals(up=H2UpstreamConnection, h1=UpstreamProtocol)
    cpdef h2_end(self)
    cpdef h2_refuse(self)
    cpdef list h2_attached(self, H2UpstreamConnection up, long long sid)
    @cython.locals(up=H2UpstreamConnection, buf=list)
    cpdef h2_send_held(self)
    cpdef h2_response_head(self, int status, list headers, bint ended)
    cpdef h2_response_data(self, bytes data, H2UpstreamConnection up, long long usid,
                           long long n)
    cpdef h2_response_end(self, object trailers)
    cpdef h2_upstream_reset(self, long long code)
    cpdef _up_done(self)
    @cython.locals(up=H2UpstreamConnection, h1=UpstreamProtocol)
    cpdef _h2_detach(self)
    cpdef _h1_head(self, int status, list headers)
    cpdef _h1_sent(self, long long n)

cdef class H2Pool:
    cdef public object loop
    cdef public str host
    cdef public int port
    cdef public list conns
    cdef public object waiting
    cdef public int dialling
    cdef public bint closed
    cdef public str dial_name
    cdef public object ssl
    cdef public object server_hostname

    @cython.locals(c=H2UpstreamConnection)
    cpdef acquire(self, H2Stream ex)
    @cython.locals(c=H2UpstreamConnection)
    cpdef serve_waiting(self)

cdef class H2UpstreamConnection(_Conn):
    cdef public H2Pool pool
    cdef public dict streams
    cdef public bint goaway
    cdef public bint settled

    cpdef long long capacity(self) except? -1
    @cython.locals(h2=Core, sid=cython.longlong, headers=list, end=bint)
    cpdef open(self, H2Stream ex)
    cpdef cancel(self, long long sid)
    @cython.locals(ex=H2Stream, freed=bint, status=int, headers=list, ended=bint)
    cpdef data_received(self, bytes data)
