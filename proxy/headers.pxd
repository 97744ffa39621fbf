# Declarations for the compiled build of headers.py (the .py is the pure twin).
cimport cython
from _speedups cimport fields as F
from proxy.engine.server cimport Exchange

@cython.locals(values=list, drops=list, lines=list)
cpdef bytes request_head(object ex, object drop, object host=*, bytes extra=*,
                         object also_drop=*, bytes default_host=*)
