# cython: language_level=3, boundscheck=False, wraparound=False
"""Request and response head scanning and rewriting: the compiled twin of ``_head_py``.

Same API and results as ``_head_py``; see that module for the theory of operation.
"""

from _speedups.fields import (
    CONTENT_LENGTH, COUNT, FLAG_CONFLICTING_LENGTH, FLAG_DUPLICATE_HOST, HOST, INDEX, JOINED
)

cdef dict _INDEX = INDEX
cdef int _COUNT = COUNT
cdef int _CONTENT_LENGTH = CONTENT_LENGTH
cdef int _HOST = HOST
cdef frozenset _JOINED = JOINED


def scan_headers(list headers):
    cdef list lnames = []
    cdef list values = [None] * _COUNT
    cdef int flags = 0
    cdef bytes name, value, lname
    cdef object slot_obj, old
    cdef int slot
    for name, value in headers:
        lname = name.lower()
        lnames.append(lname)
        slot_obj = _INDEX.get(lname)
        if slot_obj is None:
            continue
        slot = slot_obj
        old = values[slot]
        if old is None:
            values[slot] = value
        elif slot_obj in _JOINED:
            values[slot] = <bytes>old + b", " + value
        elif slot == _CONTENT_LENGTH and (<bytes>old).strip() != value.strip():
            flags |= FLAG_CONFLICTING_LENGTH
        elif slot == _HOST:
            flags |= FLAG_DUPLICATE_HOST
    return lnames, values, flags


def connection_tokens(value):
    if not value:
        return []
    cdef list out = []
    cdef bytes part, t
    for part in (<bytes>value).split(b","):
        t = part.strip().lower()
        if t:
            out.append(t)
    return out


def build_head(bytes start_line, list headers, list lnames, drop, also_drop, bytes extra):
    cdef list out = [start_line]
    cdef Py_ssize_t i, n = len(headers)
    cdef tuple pair
    cdef bytes lname
    cdef bint has_also = bool(also_drop)
    for i in range(n):
        lname = <bytes>lnames[i]
        if lname in drop:
            continue
        if has_also and lname in also_drop:
            continue
        pair = <tuple>headers[i]
        out.append(<bytes>pair[0] + b": " + <bytes>pair[1] + b"\r\n")
    out.append(extra)
    out.append(b"\r\n")
    return b"".join(out)
