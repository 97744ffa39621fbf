# Declarations for the compiled build of messages.py (the .py is the pure twin).

cdef dict _LINES_11, _LINES_10

cpdef bytes status_line(int status, bint http10=*)
cpdef bytes date_header()
cpdef bytes error_head(int status, Py_ssize_t length, bint http10, bint close, bint keep_alive_10)
