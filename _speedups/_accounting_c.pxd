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


cdef class _GroupSeries:
    cdef long counts[4][65]
    cdef double totals[4]


cdef class HistogramGroup:
    cdef public tuple bounds
    cdef public dict series
    cdef public Py_ssize_t limit
    cdef double _b[4][64]
    cdef int _nb[4]
    cdef int _nh
    cdef tuple _last_key
    cdef _GroupSeries _last
    cdef dict _last_in
    cdef Py_ssize_t _last_len

    cpdef observe(self, object key, double v0, double v1=*, double v2=*, double v3=*)
    cdef inline void _add(self, _GroupSeries s, int h, double value)
