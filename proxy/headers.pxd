# Declarations for the compiled build of headers.py (the .py is the pure twin).
cimport cython
from _speedups cimport fields as F
from _speedups._head_c cimport build_head, connection_tokens, join_bytes
from proxy.engine.server cimport Exchange

@cython.locals(values=list, lines=list, host_line=tuple, xff_line=bytes, rare=bytes, target=bytes)
cpdef bytes request_head(Exchange ex, object drop, object host=*, object extra=*,
                         object also_drop=*, bytes default_host=*)
