# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""HPACK (RFC 7541) for the engine's HTTP/2, compiled: a ``Decoder`` and an ``Encoder`` with the
interface of the ``hpack`` library's (the pure twin and the reference: ``_speedups.hpack``
selects), so they plug into an ``h2`` connection as its ``decoder`` and ``encoder``.

Decoding is the full RFC: indexed fields, literals with and without indexing and never-indexed,
dynamic table size updates, Huffman strings (canonical decoding over the RFC's code table, read
from ``hpack.huffman_constants``), with the same errors as ``hpack`` (so ``h2`` reports them the
same way) and the header list size limit checked as the block is decoded (an HPACK bomb stops at
the limit, not after it).

Encoding never adds to the dynamic table: a field that is whole in the static table is one
byte, any other is a literal without indexing (its name indexed when the static table has it),
its strings raw (no Huffman). The first block announces a dynamic table of size 0, so the peer's
table size settings never matter. It costs some bytes on the wire, and saves the table
bookkeeping and the Huffman pass on every header.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from hpack.exceptions import (
    HPACKDecodingError,
    InvalidTableIndexError,
    InvalidTableSizeError,
    OversizedHeaderListError,
)
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

cdef tuple STATIC = tuple(HeaderTable.STATIC_TABLE)  # 61 (name, value), index 1..61
cdef Py_ssize_t STATIC_LEN = len(STATIC)
cdef dict STATIC_NAME = {}  # name -> first index
cdef dict STATIC_VALUES = {}  # name -> {value: index}, for the fields whole in the table
for _i, (_n, _v) in enumerate(STATIC):
    STATIC_NAME.setdefault(_n, _i + 1)
    STATIC_VALUES.setdefault(_n, {}).setdefault(_v, _i + 1)

# Canonical Huffman decoding tables: codes of each length are consecutive.
cdef int MIN_LEN = 5
cdef int MAX_LEN = 30
cdef unsigned int FIRST[31]  # first code of each length
cdef int COUNT[31]  # codes of each length
cdef int OFFSET[31]  # index in SYMBOLS of the first code of each length
cdef int SYMBOLS[257]


def _build_huffman():
    order = sorted(range(257), key=lambda s: (REQUEST_CODES_LENGTH[s], REQUEST_CODES[s]))
    cdef int i, length, pos = 0
    for length in range(31):
        FIRST[length] = 0
        COUNT[length] = 0
        OFFSET[length] = 0
    for i, sym in enumerate(order):
        SYMBOLS[i] = sym
        length = REQUEST_CODES_LENGTH[sym]
        if COUNT[length] == 0:
            FIRST[length] = REQUEST_CODES[sym]
            OFFSET[length] = i
        COUNT[length] += 1
    # The table must be canonical for this decoding: checked once, at import.
    for sym in order:
        length = REQUEST_CODES_LENGTH[sym]
        if REQUEST_CODES[sym] - FIRST[length] >= <unsigned int>COUNT[length]:
            raise ImportError("HPACK Huffman table is not canonical")


_build_huffman()


cdef bytes huffman_decode(const unsigned char* p, Py_ssize_t n):
    cdef unsigned long long acc = 0
    cdef int bits = 0, length, sym
    cdef unsigned int code
    cdef Py_ssize_t i = 0
    out = bytearray()
    while i < n or bits >= MIN_LEN:
        while bits <= 56 and i < n:
            acc = (acc << 8) | p[i]
            bits += 8
            i += 1
        sym = -1
        for length in range(MIN_LEN, MAX_LEN + 1):
            if length > bits:
                break
            if COUNT[length] == 0:
                continue
            code = <unsigned int>((acc >> (bits - length)) & ((1ULL << length) - 1))
            if code >= FIRST[length] and code - FIRST[length] < <unsigned int>COUNT[length]:
                sym = SYMBOLS[OFFSET[length] + <int>(code - FIRST[length])]
                bits -= length
                break
        if sym < 0:
            break  # the rest is padding (checked below) or an invalid code
        if sym == 256:
            raise HPACKDecodingError("EOS in a Huffman string")
        out.append(sym)
    # What is left must be padding: fewer than 8 bits, all ones (RFC 7541 5.2).
    if bits >= 8 or (bits > 0 and (acc & ((1ULL << bits) - 1)) != (1ULL << bits) - 1):
        raise HPACKDecodingError("invalid Huffman padding or code")
    return bytes(out)


cdef class Decoder:
    """The ``hpack.Decoder`` interface: ``decode(data, raw=True)``, ``header_table_size``,
    ``max_allowed_table_size``, ``max_header_list_size``."""

    cdef public list table  # newest first: (name, value)
    cdef public Py_ssize_t table_bytes
    cdef Py_ssize_t _size
    cdef public Py_ssize_t max_allowed_table_size
    cdef public Py_ssize_t max_header_list_size

    def __init__(self, max_header_list_size=65536):
        self.table = []
        self.table_bytes = 0
        self._size = 4096
        self.max_allowed_table_size = 4096
        self.max_header_list_size = max_header_list_size

    @property
    def header_table_size(self):
        return self._size

    @header_table_size.setter
    def header_table_size(self, value):
        self._size = value
        self._evict()

    cdef void _evict(self):
        cdef tuple e
        while self.table_bytes > self._size and self.table:
            e = self.table.pop()
            self.table_bytes -= 32 + len(<bytes>e[0]) + len(<bytes>e[1])

    cdef void _add(self, bytes name, bytes value):
        cdef Py_ssize_t size = 32 + len(name) + len(value)
        if size > self._size:
            self.table = []
            self.table_bytes = 0
            return
        self.table.insert(0, (name, value))
        self.table_bytes += size
        self._evict()

    cdef tuple _entry(self, Py_ssize_t index):
        if index <= 0:
            raise InvalidTableIndexError(f"Invalid table index {index}")
        if index <= STATIC_LEN:
            return <tuple>STATIC[index - 1]
        index -= STATIC_LEN + 1
        if index < len(self.table):
            return <tuple>self.table[index]
        raise InvalidTableIndexError(f"Invalid table index {index + STATIC_LEN + 1}")

    def decode(self, data, raw=False):
        cdef bytes block = bytes(data)
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(block)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(block), i = 0, index, total = 0, limit
        cdef unsigned char b
        cdef bint seen_field = False, add
        cdef bytes name, value
        cdef tuple e
        cdef list out = []
        limit = self.max_header_list_size
        while i < n:
            b = p[i]
            if b & 0x80:  # indexed field
                index = _integer(p, n, &i, 7)
                e = self._entry(index)
                name = e[0]
                value = e[1]
            elif b & 0xE0 == 0x20:  # dynamic table size update
                if seen_field:
                    raise HPACKDecodingError("table size update after a header field")
                index = _integer(p, n, &i, 5)
                if index > self.max_allowed_table_size:
                    raise InvalidTableSizeError(
                        f"Encoder exceeded max allowable table size ({index})")
                self.header_table_size = index
                continue
            else:
                add = b & 0xC0 == 0x40
                index = _integer(p, n, &i, 6 if add else 4)
                if index:
                    name = self._entry(index)[0]
                else:
                    name = _string(p, n, &i)
                value = _string(p, n, &i)
                if add:
                    self._add(name, value)
            seen_field = True
            total += 32 + len(name) + len(value)
            if total > limit:
                raise OversizedHeaderListError(
                    f"A header list larger than {limit} has been received")
            out.append((name, value))
        if not raw:
            return [(nm.decode("utf-8"), v.decode("utf-8")) for nm, v in out]
        return out


cdef Py_ssize_t _integer(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos,
                         int prefix) except -1:
    cdef Py_ssize_t i = pos[0]
    cdef Py_ssize_t mask = (1 << prefix) - 1, value
    cdef int shift = 0
    cdef unsigned char b
    if i >= n:
        raise HPACKDecodingError("Unable to decode HPACK integer representation")
    value = p[i] & mask
    i += 1
    if value == mask:
        while True:
            if i >= n or shift > 28:
                raise HPACKDecodingError("Unable to decode HPACK integer representation")
            b = p[i]
            i += 1
            value += (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
    pos[0] = i
    return value


cdef bytes _string(const unsigned char* p, Py_ssize_t n, Py_ssize_t* pos):
    cdef Py_ssize_t i = pos[0], length
    cdef bint huff
    if i >= n:
        raise HPACKDecodingError("Truncated HPACK string")
    huff = p[i] & 0x80
    length = _integer(p, n, &i, 7)
    if length > n - i:
        raise HPACKDecodingError("Truncated HPACK string")
    pos[0] = i + length
    if huff:
        return huffman_decode(p + i, length)
    return PyBytes_FromStringAndSize(<const char*>(p + i), length)


cdef inline Py_ssize_t _put_integer(unsigned char* out, Py_ssize_t pos, Py_ssize_t value,
                                     int prefix, int flags):
    """Writes ``value`` with an N-bit prefix at ``out[pos]``; returns the new position."""
    cdef Py_ssize_t mask = (1 << prefix) - 1
    if value < mask:
        out[pos] = <unsigned char>(flags | value)
        return pos + 1
    out[pos] = <unsigned char>(flags | mask)
    pos += 1
    value -= mask
    while value >= 128:
        out[pos] = <unsigned char>((value & 0x7F) | 0x80)
        pos += 1
        value >>= 7
    out[pos] = <unsigned char>value
    return pos + 1


cdef inline bytes _as_bytes(object s):
    return <bytes>s if type(s) is bytes else s.encode("utf-8")


cdef class Encoder:
    """The ``hpack.Encoder`` interface (``encode(headers, huffman=True)``,
    ``header_table_size``), never indexing: see the module's docstring."""

    cdef bint _announced
    cdef public Py_ssize_t header_table_size

    def __init__(self):
        self._announced = False
        self.header_table_size = 4096

    def encode(self, headers, huffman=True):
        # PERF: sized first, then written straight into one buffer (no bytearray growth, no
        # tuple per field for the static table lookups).
        cdef Py_ssize_t cap = 1, pos = 0, ln, lv
        cdef object index, full
        cdef bytes name, value, out
        cdef unsigned char* p
        cdef int flags
        if type(headers) is not list:
            headers = list(headers.items() if isinstance(headers, dict) else headers)
        for h in <list>headers:
            cap += len(_as_bytes(h[0])) + len(_as_bytes(h[1])) + 12  # 2 strings, 3 integers
        out = PyBytes_FromStringAndSize(NULL, cap)
        p = <unsigned char*>PyBytes_AS_STRING(out)
        if not self._announced:
            self._announced = True
            p[pos] = 0x20  # dynamic table size update: 0 (it is never used)
            pos += 1
        for h in <list>headers:
            name = _as_bytes(h[0])
            value = _as_bytes(h[1])
            index = STATIC_NAME.get(name)
            if index is not None:
                full = STATIC_VALUES.get(name)
                if full is not None:
                    full = (<dict>full).get(value)
                    if full is not None:
                        pos = _put_integer(p, pos, <Py_ssize_t>full, 7, 0x80)
                        continue
            # Never-indexed when the caller marked it so (hpack's NeverIndexedHeaderTuple),
            # else without indexing: either way, no table entry.
            flags = 0x10 if type(h) is not tuple and getattr(h, "indexable", True) is False \
                else 0
            if index is not None:
                pos = _put_integer(p, pos, <Py_ssize_t>index, 4, flags)
            else:
                p[pos] = <unsigned char>flags
                pos += 1
                ln = PyBytes_GET_SIZE(name)
                pos = _put_integer(p, pos, ln, 7, 0)
                memcpy(p + pos, PyBytes_AS_STRING(name), ln)
                pos += ln
            lv = PyBytes_GET_SIZE(value)
            pos = _put_integer(p, pos, lv, 7, 0)
            memcpy(p + pos, PyBytes_AS_STRING(value), lv)
            pos += lv
        return out[:pos]
