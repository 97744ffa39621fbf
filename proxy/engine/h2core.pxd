# Declarations for the compiled build of h2core.py (the .py is the pure twin).

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
