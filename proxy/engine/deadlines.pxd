# Declarations for the compiled build of deadlines.py (the .py is the pure twin).
from proxy.engine.timeouts cimport DeadlineFifo

cdef class Queue:
    cdef public DeadlineFifo fifo
    cdef public object on_expire
    cdef public Deadlines _owner

    cpdef add(self, object item, double now)
    cpdef touch(self, object item)
    cpdef discard(self, object item)

cdef class Deadlines:
    cdef public object loop
    cdef object _time
    cdef public double armed_at
    cdef public object _handle
    cdef public list _queues

    cpdef arm(self, double when)
