# Declarations for the compiled build of h2core.py (the .py is the pure twin): typed state, and
# C-level calls for what every frame and every request stream goes through.
cimport cython

from _speedups._head_c cimport h2_frame

cdef long long _u32(bytes b, Py_ssize_t i) except? -1

@cython.locals(i=Py_ssize_t, n=Py_ssize_t, name=bytes, value=bytes, c=int, ok=bytes)
cdef object _check_fields(list headers, Py_ssize_t start)

@cython.locals(seen=int, bit=int, connect=bint, i=Py_ssize_t, n=Py_ssize_t, name=bytes,
               value=bytes)
cdef object _check_head(list headers, bint request)

cdef class Event:
    pass

cdef class RequestReceived(Event):
    cdef public long long stream_id
    cdef public object headers
    cdef public object stream_ended

cdef class ResponseReceived(RequestReceived):
    pass

cdef class TrailersReceived(Event):
    cdef public long long stream_id
    cdef public object headers

cdef class DataReceived(Event):
    cdef public long long stream_id
    cdef public bytes data
    cdef public long long flow_controlled_length
    cdef public object stream_ended

cdef class StreamEnded(Event):
    cdef public long long stream_id

cdef class StreamReset(Event):
    cdef public long long stream_id
    cdef public long long error_code

cdef class WindowUpdated(Event):
    cdef public long long stream_id
    cdef public long long delta

cdef class RemoteSettingsChanged(Event):
    pass

cdef class PingReceived(Event):
    pass

cdef class PriorityUpdated(Event):
    pass

cdef class UnknownFrameReceived(Event):
    pass

cdef class ConnectionTerminated(Event):
    cdef public long long error_code
    cdef public long long last_stream_id

@cython.locals(ev=RequestReceived)
cdef RequestReceived _request_event(long long sid, list headers, bint ended)
@cython.locals(ev=ResponseReceived)
cdef ResponseReceived _response_event(long long sid, list headers, bint ended)
@cython.locals(ev=DataReceived)
cdef DataReceived _data_event(long long sid, bytes data, long long n, bint ended)
@cython.locals(ev=StreamEnded)
cdef StreamEnded _ended_event(long long sid)

cdef class Settings:
    cdef public long long header_table_size
    cdef public long long max_concurrent_streams
    cdef public long long initial_window_size
    cdef public long long max_frame_size
    cdef public long long max_header_list_size

cdef class _Stream:
    cdef public int state
    cdef public long long send_window
    cdef public long long recv_window
    cdef public long long unacked
    cdef public bint got_head
    cdef public bint ended_in

cdef class Core:
    cdef public bint client
    cdef public dict announce
    cdef public dict local
    cdef public Settings remote_settings
    cdef public object encoder
    cdef public object decoder
    cdef public dict streams
    cdef public list out
    cdef public bytes buf
    cdef public bint preface
    cdef public bint first_settings
    cdef public long long send_window
    cdef public long long recv_window
    cdef public long long recv_max
    cdef public long long unacked
    cdef public long long highest_inbound_stream_id
    cdef public long long highest_outbound
    cdef public bint closed
    cdef public long long open_inbound
    cdef public long long open_outbound_streams
    cdef public object block
    cdef public dict reset_sids
    # SETTINGS_INITIAL_WINDOW_SIZE and SETTINGS_MAX_FRAME_SIZE as we announce them
    cdef public long long local_window
    cdef public long long local_max_frame

    cpdef bytes data_to_send(self)
    cpdef long long get_next_available_stream_id(self)
    cdef _Stream _stream(self, long long sid)
    @cython.locals(st=_Stream, block=bytes, size=Py_ssize_t, flags=int, rest=bytes, part=bytes)
    cpdef send_headers(self, long long sid, list headers, bint end_stream=*)
    @cython.locals(st=_Stream, n=Py_ssize_t)
    cpdef send_data(self, long long sid, bytes data, bint end_stream=*)
    @cython.locals(st=_Stream)
    cpdef end_stream(self, long long sid)
    cdef _end_local(self, long long sid, _Stream st)
    cdef _close(self, long long sid, _Stream st)
    cdef _was_reset(self, long long sid)
    @cython.locals(st=_Stream)
    cpdef reset_stream(self, long long sid, long long error_code=*)
    @cython.locals(st=_Stream)
    cpdef long long local_flow_control_window(self, long long sid) except? -1
    @cython.locals(st=_Stream)
    cpdef acknowledge_received_data(self, long long n, long long sid)
    @cython.locals(buf=bytes, events=list, pos=Py_ssize_t, end=Py_ssize_t, n=Py_ssize_t,
                   limit=Py_ssize_t, kind=int, flags=int, sid=cython.longlong, payload=bytes)
    cpdef list receive_data(self, bytes data)
    @cython.locals(block=list, st=_Stream, wst=_Stream, rst=_Stream, inc=cython.longlong,
                   delta=cython.longlong)
    cdef _frame_in(self, int kind, int flags, long long sid, bytes payload, list events)
    cdef _check_idle(self, long long sid)
    cdef _reset(self, long long sid, _Stream st, long long code, list events)
    @cython.locals(rs=Settings, delta=cython.longlong, i=Py_ssize_t, key=cython.longlong, value=cython.longlong)
    cdef long long _apply_settings(self, bytes payload) except? -1
    @cython.locals(n=Py_ssize_t, data=bytes, st=_Stream, end=bint)
    cdef _data(self, int flags, long long sid, bytes payload, list events)
    cdef _end_remote(self, long long sid, _Stream st, list events)
    @cython.locals(data=bytes)
    cdef _headers(self, int flags, long long sid, bytes payload, list events)
    @cython.locals(headers=list, end=bint, st=_Stream, inbound=bint, status=bytes)
    cdef _header_block(self, long long sid, int flags, bytes block, list events)
