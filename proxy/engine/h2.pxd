# Declarations for the compiled build of h2.py (the .py is the pure twin). The connections and
# the pool are extension types; H2Stream stays a Python subclass of the compiled Exchange (it
# overrides Exchange's methods for HTTP/2).

cdef class _Conn:
    cdef public object loop
    cdef public object h2
    cdef public object transport
    cdef public bint writable
    cdef public bint closed
    cdef public dict out
    cdef public dict tail
    cdef public bint _soon

cdef class H2ServerConnection(_Conn):
    cdef public object conn
    cdef public object server
    cdef public dict streams
    cdef public bint goaway_sent
    cdef public long budget_second
    cdef public long controls
    cdef public long resets

cdef class H2Pool:
    cdef public object loop
    cdef public str host
    cdef public int port
    cdef public list conns
    cdef public object waiting
    cdef public int dialling
    cdef public bint closed
    cdef public str dial_name

cdef class H2UpstreamConnection(_Conn):
    cdef public H2Pool pool
    cdef public dict streams
    cdef public bint goaway
    cdef public bint settled
