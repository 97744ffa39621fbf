"""Header slots shared by both twins of the head scanner.

``scan_headers`` records, in one pass, the values of the headers the data plane acts on, at the
index given here. Repeated headers follow Go's ``Header.Get`` (first value wins), except the
list-valued ones in ``JOINED``, whose values are joined with ", ". X-Forwarded-For keeps its
first value here (the Forwarded shim reads only that one, as Go's ``Header.Get`` does); the
header rules join all of its lines when they append the peer.
"""

from __future__ import annotations

NAMES: tuple[bytes, ...] = (
    b"host",
    b"user-agent",
    b"connection",
    b"upgrade",
    b"expect",
    b"te",
    b"content-length",
    b"transfer-encoding",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"k-network-probe",
    b"k-network-hash",
    b"k-kubelet-probe",
    b"k-proxy-request",
    b"k-original-host",
    b"knative-serving-revision",
    b"knative-serving-namespace",
    b"knative-serving-tag",
    b"knative-serving-default-route",
    b"date",
    b"content-type",
    b"keep-alive",
    b"trailer",
)

(
    HOST,
    USER_AGENT,
    CONNECTION,
    UPGRADE,
    EXPECT,
    TE,
    CONTENT_LENGTH,
    TRANSFER_ENCODING,
    FORWARDED,
    X_FORWARDED_FOR,
    X_FORWARDED_HOST,
    X_FORWARDED_PROTO,
    K_NETWORK_PROBE,
    K_NETWORK_HASH,
    K_KUBELET_PROBE,
    K_PROXY_REQUEST,
    K_ORIGINAL_HOST,
    KNATIVE_SERVING_REVISION,
    KNATIVE_SERVING_NAMESPACE,
    KNATIVE_SERVING_TAG,
    KNATIVE_SERVING_DEFAULT_ROUTE,
    DATE,
    CONTENT_TYPE,
    KEEP_ALIVE,
    TRAILER,
) = range(len(NAMES))

# Header names as clients and servers commonly spell them. The compiled parser glue hands out
# these very objects instead of new ones, and the compiled scanner maps each to its lower-case
# form without a call: their hashes are computed once (PERF; the pure twins need neither).
COMMON_NAMES: tuple[bytes, ...] = tuple(
    spelled
    for name in (
        b"Host", b"User-Agent", b"Accept", b"Accept-Encoding", b"Accept-Language",
        b"Accept-Ranges", b"Connection", b"Content-Length", b"Content-Type", b"Date",
        b"Server", b"Cookie", b"Cache-Control", b"ETag", b"Last-Modified", b"Expires",
        b"Location", b"Vary", b"Keep-Alive", b"Content-Encoding", b"Forwarded",
        b"X-Forwarded-For", b"X-Forwarded-Host", b"X-Forwarded-Proto", b"K-Proxy-Request",
        b"K-Original-Host", b"Knative-Serving-Namespace", b"Knative-Serving-Revision",
    )
    for spelled in (name, name.lower())
)

COUNT = len(NAMES)
INDEX: dict[bytes, int] = {name: i for i, name in enumerate(NAMES)}
# Values joined with ", " when the header repeats (RFC 9110 list syntax).
JOINED = frozenset({CONNECTION, TE, TRANSFER_ENCODING, UPGRADE, TRAILER})
# Set in the flags word returned by scan_headers.
FLAG_CONFLICTING_LENGTH = 1
FLAG_DUPLICATE_HOST = 2

# The one bytes object for each lower-case name above (INDEX's keys first): the compiled head
# scanner hands these objects out as the lower-case names, so a set built from ``shared(name)``
# finds them by identity (PERF: a set lookup of an equal but distinct object compares bytes).
LOWER: dict[bytes, bytes] = {name: name for name in NAMES}
for _spelled in COMMON_NAMES:
    _low = _spelled.lower()
    LOWER.setdefault(_low, _low)  # one object, the key and the value alike
del _spelled, _low


def shared(name: bytes) -> bytes:
    """The shared object equal to the lower-case header name ``name``, else ``name``."""
    return LOWER.get(name, name)
