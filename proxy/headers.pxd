# Declarations for the compiled build of headers.py (the .py is the pure twin).
from _speedups cimport fields as F
from proxy.engine.server cimport Exchange

cpdef bytes request_head(object ex, object drop, object host=*, bytes extra=*,
                         object also_drop=*, bytes default_host=*)
