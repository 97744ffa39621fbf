# Declarations of the compiled accounting twin, for C calls from the compiled engine and handler.

cdef class RequestStats:
    cdef public long concurrency
    cdef public long proxied_concurrency
    cdef double _last, _seconds, _integral, _proxied_integral
    cdef long _count, _proxied_count

    cdef void _move(self, double now)
    cpdef request_in(self, double now, bint proxied=*)
    cpdef request_out(self, double now, bint proxied=*)


cdef class _Series:
    cdef long counts[65]
    cdef double total


cdef class Histogram:
    cdef public tuple bounds
    cdef public dict series
    cdef double _b[64]
    cdef int _nb

    cpdef observe(self, object key, double value)
