# Declarations for the compiled build of timeouts.py (the .py is the pure twin).

cdef class DeadlineFifo:
    cdef public double delay
    cdef public dict _items

    cpdef double add(self, object item, double now) except? -1.0
    cpdef touch(self, object item, double now)
    cpdef discard(self, object item)
    cpdef object next_deadline(self)
    cpdef list expired(self, double now)
