# Declarations for the compiled build of breaker.py (the .py is the pure twin).

cdef class Breaker:
    cdef public Py_ssize_t capacity
    cdef public Py_ssize_t queue_depth
    cdef public Py_ssize_t total_slots
    cdef public Py_ssize_t in_flight
    cdef public Py_ssize_t active
    cdef public dict _waiters

    cpdef int acquire(self, object waiter) except -1
    cpdef object release(self)
    cpdef bint cancel(self, object waiter) except -1
