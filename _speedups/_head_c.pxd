# C-level declarations of _head_c.pyx: the compiled engine modules cimport these, so their
# calls are C calls (the pure engine imports the same names from _speedups.head).
cpdef tuple scan_headers(list headers)
cpdef list connection_tokens(object value)
cpdef bytes build_head(object start_line, list headers, list lnames, object drop, object also_drop,
                       object extra)
cpdef bint valid_host(bytes value)
cpdef bytes join_bytes(object parts)
cpdef list h2_headers(bytes head)
cpdef bytes h2_frame(int kind, int flags, long long sid, bytes payload=*)
