# The constants of states.py as C constants, for the compiled engine modules that cimport
# this (tests/speedups/test_engine_build.py holds the two files equal).

cdef enum:
    WAITING = 0
    CONNECTING = 1
    FORWARDING = 2
    TUNNEL = 3
    DONE = 4

cdef enum:
    PAUSE_PIPELINE = 1
    PAUSE_BODY = 2
    PAUSE_UPSTREAM = 4
