# cython: language_level=3, boundscheck=False, wraparound=False
"""Request and response head scanning and rewriting: the compiled twin of ``_head_py``.

Same API and results as ``_head_py``; see that module for the theory of operation.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcmp, memcpy

from _speedups.fields import (
    COMMON_NAMES, CONTENT_LENGTH, COUNT, FLAG_CONFLICTING_LENGTH, FLAG_DUPLICATE_HOST, HOST, INDEX,
    JOINED, LOWER,
)

from _speedups._head_py import H2_DROPPED, HOST_BYTES

cdef dict _INDEX = INDEX
# PERF: a common name (the compiled glue hands out these objects) to (its lower-case form, its
# slot or -1), the form being the very key object of _INDEX where there is one: one lookup of
# an object whose hash is already computed, no lower() call.
cdef dict _COMMON = {}
cdef bytes _n, _low
cdef int _i
for _n in COMMON_NAMES:
    _low = LOWER[_n.lower()]  # INDEX's key where there is one (fields.shared)
    hash(_low)
    _COMMON[_n] = (_low, INDEX.get(_low, -1))
cdef int _COUNT = COUNT
cdef int _CONTENT_LENGTH = CONTENT_LENGTH
cdef int _HOST = HOST
cdef frozenset _JOINED = JOINED


cpdef tuple scan_headers(list headers):
    cdef list lnames = []
    cdef list values = [None] * _COUNT
    cdef int flags = 0
    cdef bytes name, value, lname
    cdef object slot_obj, old, entry
    cdef int slot
    for name, value in headers:
        entry = _COMMON.get(name)
        if entry is not None:
            lname = <bytes>(<tuple>entry)[0]
            slot = (<tuple>entry)[1]
        else:
            lname = name.lower()
            slot_obj = _INDEX.get(lname)
            slot = -1 if slot_obj is None else slot_obj
        lnames.append(lname)
        if slot < 0:
            continue
        old = values[slot]
        if old is None:
            values[slot] = value
        elif slot in _JOINED:
            values[slot] = <bytes>old + b", " + value
        elif slot == _CONTENT_LENGTH and (<bytes>old).strip() != value.strip():
            flags |= FLAG_CONFLICTING_LENGTH
        elif slot == _HOST:
            flags |= FLAG_DUPLICATE_HOST
    return lnames, values, flags


cpdef list connection_tokens(object value):
    # PERF: one pass in C (split, strip and lower() were three method calls by name a token).
    cdef list out = []
    if not value:
        return out
    cdef bytes v = value
    cdef const unsigned char* p = v
    cdef Py_ssize_t n = len(v), i = 0, a, b, k
    cdef bytes t
    cdef char* q
    while i <= n:
        a = i
        while i < n and p[i] != 44:  # ','
            i += 1
        b = i
        i += 1
        while a < b and _SPACE[p[a]]:
            a += 1
        while b > a and _SPACE[p[b - 1]]:
            b -= 1
        if b == a:
            continue
        t = PyBytes_FromStringAndSize(NULL, b - a)
        q = PyBytes_AS_STRING(t)
        for k in range(b - a):
            q[k] = _LOWER_BYTE[p[a + k]]
        out.append(t)
    return out


# bytes.strip()'s whitespace (ASCII: space, \t, \n, \v, \f, \r) and bytes.lower()'s mapping.
cdef unsigned char _SPACE[256]
cdef unsigned char _LOWER_BYTE[256]
for _i in range(256):
    _SPACE[_i] = _i in (32, 9, 10, 11, 12, 13)
    _LOWER_BYTE[_i] = _i + 32 if 65 <= _i <= 90 else _i


cdef inline bint _in(object coll, bytes name) except -1:
    """``name in coll``. PERF: a list or tuple of bytes (Connection tokens, a caller's extra
    drops) is compared in C, length first; CPython's list search calls the rich comparison."""
    cdef Py_ssize_t n
    cdef object item
    cdef type t = type(coll)
    if t is list or t is tuple:
        n = len(name)
        for item in coll:
            if item is name:
                return True
            if type(item) is bytes and len(<bytes>item) == n and memcmp(
                    <const char*><bytes>item, <const char*>name, n) == 0:
                return True
        return False
    return name in coll


cpdef bytes join_bytes(object parts):
    """``b"".join(parts)`` for a list or tuple of bytes. PERF: one allocation and a memcpy of
    each piece; CPython's join and ``+`` take a buffer view of every operand."""
    cdef Py_ssize_t total = 0, pos = 0, k
    cdef object part
    cdef bytes out
    cdef char* buf
    if type(parts) is not list and type(parts) is not tuple:
        return b"".join(parts)
    for part in parts:
        if type(part) is not bytes:
            return b"".join(parts)
        total += len(<bytes>part)
    out = PyBytes_FromStringAndSize(NULL, total)
    buf = PyBytes_AS_STRING(out)
    for part in parts:
        k = len(<bytes>part)
        memcpy(buf + pos, <const char*><bytes>part, k)
        pos += k
    return out


cdef inline Py_ssize_t _size_of(object piece) except -1:
    """The length of ``build_head``'s start or extra: bytes, or a tuple of bytes and of tuples
    of bytes (two levels at most); TypeError for anything else."""
    cdef Py_ssize_t total = 0
    cdef object part, sub
    if type(piece) is bytes:
        return len(<bytes>piece)
    if type(piece) is tuple:
        for part in <tuple>piece:
            if type(part) is bytes:
                total += len(<bytes>part)
                continue
            if type(part) is not tuple:
                break
            for sub in <tuple>part:
                if type(sub) is not bytes:
                    break
                total += len(<bytes>sub)
            else:
                continue
            break
        else:
            return total
    raise TypeError("start_line and extra: bytes, or tuples of bytes (two levels at most)")


cdef inline Py_ssize_t _put(char* buf, Py_ssize_t pos, object piece):
    """Copies a piece checked by _size_of to buf[pos:]; returns the position after it.
    PERF: no recursion, each bytes object copied where it is met."""
    cdef Py_ssize_t k
    cdef object part, sub
    if type(piece) is bytes:
        k = len(<bytes>piece)
        memcpy(buf + pos, <char*><bytes>piece, k)
        return pos + k
    for part in <tuple>piece:
        if type(part) is bytes:
            k = len(<bytes>part)
            memcpy(buf + pos, <char*><bytes>part, k)
            pos += k
        else:
            for sub in <tuple>part:
                k = len(<bytes>sub)
                memcpy(buf + pos, <char*><bytes>sub, k)
                pos += k
    return pos


cpdef bytes build_head(object start_line, list headers, list lnames, object drop, object also_drop,
                       object extra):
    # PERF: one allocation and memcpy of each piece (the joined pieces and their ``name + b": "
    # + value`` temporaries cost as much as the pure twin did); membership tests on the sets
    # as C calls. The start line and the extra lines may come in pieces (a tuple, whose parts
    # may be tuples again), copied straight in: no join of their own.
    cdef Py_ssize_t i, n = len(headers), total, pos, k
    cdef bint has_also = bool(also_drop)
    cdef bytes lname, name, value, out
    cdef tuple pair
    cdef char* buf
    cdef unsigned char keep[256]
    total = _size_of(start_line) + _size_of(extra) + 2  # (checks their types)
    if n > 256:
        return _build_head_slow(start_line, headers, lnames, drop, also_drop, extra)
    for i in range(n):
        lname = <bytes>lnames[i]
        if lname in drop or (has_also and _in(also_drop, lname)):
            keep[i] = 0
            continue
        keep[i] = 1
        pair = <tuple>headers[i]
        total += len(<bytes>pair[0]) + len(<bytes>pair[1]) + 4
    out = PyBytes_FromStringAndSize(NULL, total)
    buf = PyBytes_AS_STRING(out)
    pos = _put(buf, 0, start_line)
    for i in range(n):
        if not keep[i]:
            continue
        pair = <tuple>headers[i]
        name = <bytes>pair[0]
        value = <bytes>pair[1]
        k = len(name)
        memcpy(buf + pos, <char*>name, k)
        pos += k
        buf[pos] = 58  # ':'
        buf[pos + 1] = 32
        pos += 2
        k = len(value)
        memcpy(buf + pos, <char*>value, k)
        pos += k
        buf[pos] = 13
        buf[pos + 1] = 10
        pos += 2
    pos = _put(buf, pos, extra)
    buf[pos] = 13
    buf[pos + 1] = 10
    return out


cdef bytes _joined(object piece):
    if type(piece) is bytes:
        return piece
    return b"".join([_joined(part) for part in <tuple>piece])


def _build_head_slow(start_line, list headers, list lnames, drop, also_drop, extra):
    cdef list out = [_joined(start_line)]
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
    out.append(_joined(extra))
    out.append(b"\r\n")
    return b"".join(out)


cdef unsigned char _HOST_OK[256]
for _i in range(256):
    _HOST_OK[_i] = _i in HOST_BYTES


cpdef bint valid_host(bytes value):
    cdef const unsigned char* p = value
    cdef Py_ssize_t i
    for i in range(len(value)):
        if not _HOST_OK[p[i]]:
            return False
    return True


cdef frozenset _H2_DROPPED = H2_DROPPED


cdef inline bytes _lowered(const unsigned char* p, Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(<const char*>p, n)
    cdef unsigned char* q = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t i
    for i in range(n):
        q[i] = _LOWER_BYTE[q[i]]
    return out


cpdef list h2_headers(bytes head):
    """The twin of ``_head_py.h2_headers``. PERF: one pass over the head in C; each name and
    value is one allocation (no split lines, partitions or strip copies)."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(head)
    cdef Py_ssize_t n = len(head), i = 0, eol, sp1 = -1, sp2 = -1, colon, a, b, c, d
    cdef list regular = [], out
    cdef bytes method, target, lname, value, authority = b""
    cdef bint upper
    # the start line: METHOD SP TARGET SP VERSION (the target is what lies between the first
    # and the last space)
    eol = 0
    while eol < n and not (p[eol] == 13 and eol + 1 < n and p[eol + 1] == 10):
        eol += 1
    for i in range(eol):
        if p[i] == 32:
            if sp1 < 0:
                sp1 = i
            sp2 = i
    if sp1 < 0:
        method = PyBytes_FromStringAndSize(<const char*>p, eol)
        target = b""
    else:
        method = PyBytes_FromStringAndSize(<const char*>p, sp1)
        target = b"" if sp2 == sp1 else PyBytes_FromStringAndSize(
            <const char*>(p + sp1 + 1), sp2 - sp1 - 1)
    i = eol + 2
    while i < n:
        eol = i
        while eol < n and not (p[eol] == 13 and eol + 1 < n and p[eol + 1] == 10):
            eol += 1
        if eol == i:
            break  # the empty line: the head's end
        colon = i
        while colon < eol and p[colon] != 58:
            colon += 1
        a = i
        b = colon
        while a < b and _SPACE[p[a]]:
            a += 1
        while b > a and _SPACE[p[b - 1]]:
            b -= 1
        c = colon + 1 if colon < eol else eol
        d = eol
        while c < d and _SPACE[p[c]]:
            c += 1
        while d > c and _SPACE[p[d - 1]]:
            d -= 1
        upper = False
        for i in range(a, b):
            if 65 <= p[i] <= 90:
                upper = True
                break
        lname = _lowered(p + a, b - a) if upper else PyBytes_FromStringAndSize(
            <const char*>(p + a), b - a)
        value = PyBytes_FromStringAndSize(<const char*>(p + c), d - c)
        i = eol + 2
        if lname in _H2_DROPPED:
            if lname == b"host":
                authority = value
            continue
        if lname == b"te":
            if b"trailers" not in value.lower():
                continue
            value = b"trailers"
        regular.append((lname, value))
    out = [(b":method", method), (b":scheme", b"http")]
    if authority:
        out.append((b":authority", authority))
    if method != b"CONNECT":
        out.append((b":path", target))
    out.extend(regular)
    return out


cpdef bytes h2_frame(int kind, int flags, long long sid, bytes payload=b""):
    """The twin of ``_head_py.h2_frame``. PERF: one allocation, no struct call."""
    cdef Py_ssize_t n = len(payload)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 9 + n)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    if n > 0xFFFFFF or not 0 <= sid <= 0x7FFFFFFF or not 0 <= kind <= 255 \
            or not 0 <= flags <= 255:
        raise ValueError("frame field out of range")
    p[0] = (n >> 16) & 0xFF
    p[1] = (n >> 8) & 0xFF
    p[2] = n & 0xFF
    p[3] = kind
    p[4] = flags
    p[5] = (sid >> 24) & 0xFF
    p[6] = (sid >> 16) & 0xFF
    p[7] = (sid >> 8) & 0xFF
    p[8] = sid & 0xFF
    if n:
        memcpy(p + 9, PyBytes_AS_STRING(payload), n)
    return out
