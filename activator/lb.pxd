# Declarations for the compiled build of lb.py (the .py is the pure twin).

cdef class PodTracker:
    cdef public str address
    cdef public Py_ssize_t capacity
    cdef public Py_ssize_t in_flight

    cpdef reserve(self)
    cpdef release(self)

cdef class RandomChoice2:
    cdef public object _rng

    cpdef PodTracker pick(self, object targets)

cdef class FirstAvailable:
    cpdef PodTracker pick(self, object targets)

cdef class RoundRobin:
    cdef public Py_ssize_t _next

    cpdef PodTracker pick(self, object targets)
