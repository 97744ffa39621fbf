# Declarations for the compiled build of lb.py (the .py is the pure twin).
cimport cython

cdef class PodTracker:
    cdef public str address
    cdef public Py_ssize_t capacity
    cdef public Py_ssize_t in_flight

    cpdef reserve(self)
    cpdef release(self)

cdef class LBPolicy:
    cpdef PodTracker pick(self, object targets)

cdef class RandomChoice2(LBPolicy):
    cdef public object _rng

    @cython.locals(n=Py_ssize_t, first=Py_ssize_t, second=Py_ssize_t, chosen=PodTracker,
                   a=PodTracker, b=PodTracker, cap=Py_ssize_t)
    cpdef PodTracker pick(self, object targets)

cdef class FirstAvailable(LBPolicy):
    @cython.locals(tracker=PodTracker, cap=Py_ssize_t)
    cpdef PodTracker pick(self, object targets)

cdef class RoundRobin(LBPolicy):
    cdef public Py_ssize_t _next

    @cython.locals(n=Py_ssize_t, start=Py_ssize_t, i=Py_ssize_t, p=Py_ssize_t,
                   tracker=PodTracker, cap=Py_ssize_t)
    cpdef PodTracker pick(self, object targets)
