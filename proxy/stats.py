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

__all__ = ["RequestStats", "StatReport", "encode_stat"]


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
