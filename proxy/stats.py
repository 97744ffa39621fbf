"""Request statistics for the autoscaler, sans-IO, and their protobuf wire form.

``RequestStats`` mirrors knative.dev/networking pkg/http/stats: every request-in and request-out
event moves a time-weighted integral of concurrency forward; ``report(now)`` closes the window:
average concurrency = integral / seconds covered, plus the arrivals counted in it. Requests
marked ``K-Proxy-Request: activator`` count in the proxied fields too. Time is passed in, so tests
drive it with a fake clock.

``encode_stat`` writes Knative's ``metrics.Stat`` message (pkg/autoscaler/metrics/stat.proto) by
hand: the message is six scalar fields, not worth a protobuf runtime on the hot path. The tests
check the bytes against the ``protobuf`` package.
"""

from __future__ import annotations

import struct

from _speedups.accounting import RequestStats, StatReport

__all__ = ["RequestStats", "StatReport", "decode_stat", "encode_stat"]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_DOUBLE = struct.Struct("<d")


def encode_stat(pod_name: str, report: StatReport | None = None, uptime: float = 0.0) -> bytes:
    """Knative's ``Stat`` message: 1 pod_name, 2 average_concurrent_requests,
    3 average_proxied_concurrent_requests, 4 request_count, 5 proxied_request_count,
    6 process_uptime (7 timestamp is never set). proto3: zero fields are omitted."""
    out = bytearray()
    name = pod_name.encode()
    if name:
        out += b"\x0a" + _varint(len(name)) + name
    if report is not None:
        for tag, value in (
            (0x11, report.average_concurrency),
            (0x19, report.average_proxied_concurrency),
            (0x21, report.request_count),
            (0x29, report.proxied_request_count),
            (0x31, uptime),
        ):
            if value:
                out += bytes((tag,)) + _DOUBLE.pack(value)
    return bytes(out)


def decode_stat(data: bytes) -> dict[str, float | str]:
    """The fields of a ``Stat`` message (what ``encode_stat`` writes; unknown fields skipped):
    ``pod_name``, ``average_concurrency``, ``average_proxied_concurrency``, ``request_count``,
    ``proxied_request_count``, ``process_uptime``. Raises ValueError on a malformed message."""
    names = {2: "average_concurrency", 3: "average_proxied_concurrency", 4: "request_count",
             5: "proxied_request_count", 6: "process_uptime"}
    out: dict[str, float | str] = {"pod_name": ""}
    out.update({n: 0.0 for n in names.values()})
    i, n = 0, len(data)

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            if i >= n or shift > 63:
                raise ValueError("truncated varint")
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < n:
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 1:
            if i + 8 > n:
                raise ValueError("truncated double")
            if field in names:
                out[names[field]] = _DOUBLE.unpack_from(data, i)[0]
            i += 8
        elif wire == 2:
            size = varint()
            if i + size > n:
                raise ValueError("truncated bytes")
            if field == 1:
                out["pod_name"] = data[i:i + size].decode("utf-8", "replace")
            i += size
        elif wire == 0:
            varint()
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out
