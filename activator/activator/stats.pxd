# Declarations for the compiled build of stats.py (the .py is the pure twin).
cimport cython
from _speedups._accounting_c cimport RequestStats

cdef class ConcurrencyReporter:
    cdef public str pod_name
    cdef public dict _stats
    cdef public set _poked
    cdef object _last_key
    cdef RequestStats _last

    @cython.locals(stats=RequestStats)
    cpdef object request_in(self, tuple key, double now)
    @cython.locals(stats=RequestStats)
    cpdef request_out(self, tuple key, double now)
