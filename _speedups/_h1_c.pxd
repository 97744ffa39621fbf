# Declarations of the compiled httptools glue, for the engine's sinks to derive from: the
# parsers call a RequestSink's or ResponseSink's methods in C.

cdef class RequestSink:
    cpdef on_head(self, bytes method, bytes target, bytes version, list headers)
    cpdef on_body(self, bytes data)
    cpdef on_end(self, list trailers)


cdef class ResponseSink:
    cpdef on_response_head(self, int status, bytes version, list headers)
    cpdef on_response_plain(self, int status, bytes lines, bint has_date)
    cpdef on_response_body(self, bytes data)
    cpdef on_response_end(self, list trailers)
