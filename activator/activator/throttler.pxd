# Declarations for the compiled build of throttler.py (the .py is the pure twin).
cimport cython
from activator.activator.lb cimport LBPolicy, PodTracker
from proxy.breaker cimport Breaker

cdef class RevisionThrottler:
    cdef public Py_ssize_t container_concurrency
    cdef public Py_ssize_t queue_depth
    cdef public Py_ssize_t max_waiting
    cdef public Py_ssize_t activator_index
    cdef public Py_ssize_t activator_count
    cdef public Breaker _breaker
    cdef public LBPolicy _policy
    cdef public dict _trackers
    cdef public set _live
    cdef public list _healthy
    cdef public list _assigned
    cdef public PodTracker _cluster
    cdef public Py_ssize_t _backend_count

    cpdef tuple acquire(self, object waiter)
    @cython.locals(tracker=PodTracker)
    cpdef list release(self, str pod)
    cpdef bint cancel(self, object waiter) except -1
    @cython.locals(tracker=PodTracker)
    cpdef str _pick(self)
