# Declarations for the compiled build of stats.py (the .py is the pure twin).

cdef class ConcurrencyReporter:
    cdef public str pod_name
    cdef public dict _stats
    cdef public set _poked

    cpdef object request_in(self, tuple key, double now)
    cpdef request_out(self, tuple key, double now)
