"""Request methods llhttp does not know, for the httptools glue (both twins).

llhttp (httptools) knows a fixed list of methods and refuses any other with 400, where Go's
server, and so Knative's queue-proxy, takes any token as a method (RFC 9110: method = token;
``FOOBAR``, and ``get``, which is not ``GET``). So the glue looks at the method of a request
before llhttp does: one it does not know is handed to llhttp as ``GET`` (for a request llhttp
frames the body from the headers alone, whatever the method) and given to the engine as sent.

The look happens where a request begins at the start of what the glue feeds llhttp. A request
that follows another one in the same read, after one llhttp itself read to its end, is still
llhttp's alone (it gives no offset to cut at): a pipelined extension method after a message
that was not read by the compiled fast path gets 400. Not a hot path: the fast path reads the
common methods without llhttp.
"""

from __future__ import annotations

__all__ = ["PLACEHOLDER", "extension_method"]

PLACEHOLDER = b"GET"

# Read by llhttp as themselves: the methods everyone sends, and those llhttp treats apart
# (CONNECT takes an authority and switches protocols; PRI starts the HTTP/2 preface).
_AS_IS = frozenset((b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
                    b"TRACE", b"CONNECT", b"PRI"))

# RFC 9110 tchar.
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789"
                   b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def extension_method(data: bytes, limit: int) -> tuple[int, int]:
    """Where the method of the request at the start of ``data`` is, when llhttp must not read
    it: ``(start, end)`` of a token llhttp would refuse (empty lines before a request are
    skipped, as llhttp and Go skip them); ``(0, 0)`` when llhttp reads ``data`` as it is (a
    method it knows, or no token: its 400); ``(-1, -1)`` when the method is not all in yet
    and ``data`` is shorter than ``limit``."""
    n = len(data)
    i = 0
    while i < n and data[i] in (13, 10):
        i += 1
    j = i
    while j < n and data[j] in _TCHAR:
        j += 1
    if j == n:
        return (-1, -1) if n < limit else (0, 0)
    if j == i or data[j] != 32 or data[i:j] in _AS_IS:
        return (0, 0)
    return (i, j)
