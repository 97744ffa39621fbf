"""The two HTTP/2 cores side by side: ``proxy.engine.h2core.Core`` (ours, lean) against the
``h2`` library's ``H2Connection`` (its reference, and the pure build's twin), configured as
``proxy.engine.h2.new_connection`` configures it under DATAPLANE_H2=h2.

Each case drives both twins with the same inputs, the way ``proxy.engine.h2`` drives them
(``initiate_connection``, then ``increment_flow_control_window`` up to the connection window, then
``receive_data`` / ``send_*`` / ``acknowledge_received_data``...), and compares what comes out,
normalised to what the proxy reads and what the peer sees:

- the events ``receive_data`` returns, in the proxy's vocabulary (the event classes h2core has,
  with the attributes ``proxy.engine.h2`` reads);
- a connection error: ``ProtocolError`` raised, and the error code the proxy would put in its
  GOAWAY (``getattr(exc, "error_code", None) or PROTOCOL_ERROR``, as ``_fatal`` does) with the
  last stream id (``highest_inbound_stream_id``, what ``close_connection`` announces);
- the frames each twin queues (``data_to_send()`` parsed with hyperframe, header blocks decoded);
- the results (or exceptions) of the API calls the proxy makes;
- and, for the sending side, what a real ``h2`` peer makes of each twin's bytes.

Receiving cases run in three feeding modes: one ``receive_data`` per frame (or group of frames) as
the case lists them; everything between two API calls in one ``receive_data``; and the bytes in
7-byte pieces (where the input is small).

Where the twins genuinely disagree, the case is ``xfail(strict=True)`` with the reason, and
``test_outcome`` pins what each twin does (``expect`` for h2, ``core`` for h2core), so that the
reason stays exact. Deliberate, acceptable differences are normalised away (see ``Run``):

1. h2 queues a GOAWAY itself when ``receive_data`` raises; h2core leaves that to its caller
   (``proxy.engine.h2`` calls ``close_connection`` with the exception's ``error_code``). The
   exception's code is compared, and a trailing GOAWAY of that same code is dropped from either
   twin's output.
2. Events outside the proxy's vocabulary (h2's ``SettingsAcknowledged``, ``PingAckReceived``,
   ``InformationalResponseReceived``...) are dropped: h2core has no such events, the proxy reads
   none of them. So are attributes the proxy does not read (h2's ``remote_reset``,
   ``priority_updated``, ``changed_settings``...).
3. The initial SETTINGS frames are compared as the effective settings (what was sent, or the RFC
   default): h2 sends every setting it has, h2core only those that differ from the defaults. A
   server's SETTINGS_ENABLE_PUSH is left out (RFC 9113 6.5.2: it means nothing from a server).
4. Stream-level WINDOW_UPDATEs for a stream whose peer has already ended it (StreamEnded or
   StreamReset seen) are dropped, and so are the peer's WindowUpdated events for them: h2 still
   sends them, h2core does not. The peer sends nothing more on such a stream, so the credit
   would go unused; RFC 9113 5.1 lets them be sent on a half-closed (remote) stream, nothing
   asks for them.
5. Regular header fields are compared in a stable order by name (pseudo-header fields first, as
   received): h2 moves a lone ``cookie`` field to the end when it normalises cookies, h2core
   leaves it where it was; RFC 9110 5.3: the order of fields with different names is not
   significant. The order of fields of the same name is kept and compared.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hpack
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from _speedups.hpack import Decoder, Encoder
from proxy.engine.h2core import Core

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# What proxy.engine.h2 announces and opens (H2ServerConnection, H2UpstreamConnection; written out
# here rather than imported: the test compares the cores, whatever the engine's numbers become).
SERVER_LOCAL = {
    SettingCodes.MAX_CONCURRENT_STREAMS: 250,
    SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
    SettingCodes.MAX_HEADER_LIST_SIZE: 1 << 20,
}
CLIENT_LOCAL = {
    SettingCodes.ENABLE_PUSH: 0,
    SettingCodes.INITIAL_WINDOW_SIZE: 64 << 10,
    SettingCodes.MAX_HEADER_LIST_SIZE: 10 << 20,
}
SERVER_CONN_WINDOW = 4 << 20  # CONN_WINDOW
CLIENT_CONN_WINDOW = 8 << 20  # UPSTREAM_CONN_WINDOW
MAX_WINDOW = (1 << 31) - 1

# The events proxy.engine.h2 handles: those h2core defines.
VOCABULARY = frozenset({
    "RequestReceived", "ResponseReceived", "TrailersReceived", "DataReceived", "StreamEnded",
    "StreamReset", "WindowUpdated", "RemoteSettingsChanged", "PingReceived", "PriorityUpdated",
    "UnknownFrameReceived", "ConnectionTerminated",
})


# --------------------------------------------------------------------------------------------
# The twins


def make_h2(client: bool, local: dict[int, int]) -> H2Connection:
    """As ``proxy.engine.h2.new_connection`` builds it when CORE is "h2"."""
    conn = H2Connection(config=H2Configuration(
        client_side=client,
        header_encoding=None,
        validate_inbound_headers=True,
        normalize_inbound_headers=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    ))
    conn.local_settings = Settings(client=client, initial_values=local)  # type: ignore[arg-type]
    conn.encoder = Encoder()
    conn.decoder = Decoder()
    conn.decoder.max_header_list_size = local.get(SettingCodes.MAX_HEADER_LIST_SIZE, 1 << 20)
    return conn


def make_core(client: bool, local: dict[int, int]) -> Any:
    return Core(client, local)


TWINS: dict[str, Callable[[bool, dict[int, int]], Any]] = {"h2": make_h2, "core": make_core}


def make_peer(client: bool, local: dict[int, int]) -> H2Connection:
    """A plain ``h2`` connection (validating everything) on the other end of a twin."""
    peer = H2Connection(config=H2Configuration(client_side=client, header_encoding=None))
    if local:  # else h2's defaults
        peer.local_settings = Settings(client=client, initial_values=local)  # type: ignore[arg-type]
    return peer


# --------------------------------------------------------------------------------------------
# Normalisation


def code_name(code: int) -> str | int:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return int(code)


def blob(data: bytes) -> Any:
    data = bytes(data)
    if len(data) <= 48:
        return data
    return f"<{len(data)} bytes {hashlib.sha1(data).hexdigest()[:10]}>"


def norm_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    pairs = [(bytes(n), bytes(v)) for n, v in headers]
    pseudo = [p for p in pairs if p[0][:1] == b":"]
    regular = [p for p in pairs if p[0][:1] != b":"]
    # Difference 5: pseudo-header fields as received, regular ones stably by name.
    if pairs[:len(pseudo)] == pseudo:
        return pseudo + sorted(regular, key=lambda p: p[0])
    return pairs  # pseudo after regular (malformed anyway): exactly as received


def norm_event(ev: Any) -> tuple | None:
    name = type(ev).__name__
    if name not in VOCABULARY:
        return None  # difference 2
    if name in ("RequestReceived", "ResponseReceived"):
        return (name, ev.stream_id, norm_headers(ev.headers), bool(ev.stream_ended))
    if name == "TrailersReceived":
        return (name, ev.stream_id, norm_headers(ev.headers))
    if name == "DataReceived":
        return (name, ev.stream_id, blob(ev.data), ev.flow_controlled_length,
                bool(ev.stream_ended))
    if name == "StreamEnded":
        return (name, ev.stream_id)
    if name == "StreamReset":
        return (name, ev.stream_id, code_name(ev.error_code))
    if name == "WindowUpdated":
        return (name, ev.stream_id, ev.delta)
    if name == "ConnectionTerminated":
        return (name, code_name(ev.error_code), ev.last_stream_id)
    return (name,)  # RemoteSettingsChanged, PingReceived, PriorityUpdated, UnknownFrameReceived


def norm_peer_event(ev: Any) -> tuple:
    """What the ``h2`` peer saw (every event: the peer is the same library in both runs)."""
    name = type(ev).__name__
    out: list[Any] = [name]
    if hasattr(ev, "stream_id"):
        out.append(ev.stream_id)
    if getattr(ev, "headers", None) is not None:
        out.append(norm_headers(ev.headers))
    if getattr(ev, "data", None) is not None:
        out.append(blob(ev.data))
    for attr in ("flow_controlled_length", "delta", "last_stream_id"):
        if getattr(ev, attr, None) is not None:
            out.append((attr, getattr(ev, attr)))
    if getattr(ev, "error_code", None) is not None:
        out.append(code_name(ev.error_code))
    if hasattr(ev, "stream_ended"):
        out.append(("ended", bool(ev.stream_ended)))
    if name == "RemoteSettingsChanged":  # difference 3: what changed, not what was repeated
        out.append(sorted((int(k), s.new_value) for k, s in ev.changed_settings.items()
                          if s.original_value != s.new_value))
    return tuple(out)


SETTING_DEFAULTS = {
    SettingCodes.HEADER_TABLE_SIZE: 4096,
    SettingCodes.ENABLE_PUSH: 1,
    SettingCodes.MAX_CONCURRENT_STREAMS: None,  # unlimited
    SettingCodes.INITIAL_WINDOW_SIZE: 65535,
    SettingCodes.MAX_FRAME_SIZE: 16384,
    SettingCodes.MAX_HEADER_LIST_SIZE: None,  # unlimited
    SettingCodes.ENABLE_CONNECT_PROTOCOL: 0,
}


def parse_frames(data: bytes) -> list[Frame]:
    frames = []
    pos = 0
    while pos < len(data):
        f, n = Frame.parse_frame_header(memoryview(data[pos:pos + 9]))
        f.parse_body(memoryview(data[pos + 9:pos + 9 + n]))
        frames.append(f)
        pos += 9 + n
    return frames


# --------------------------------------------------------------------------------------------
# Inputs


def raw(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    """A frame as bytes, whatever it says (hyperframe refuses to build some invalid ones)."""
    n = len(payload)
    return struct.pack(">HBBBL", n >> 8, n & 0xFF, kind, flags, sid) + payload


def settings(**values: int) -> bytes:
    f = SettingsFrame(0)
    for k, v in values.items():
        f.settings[SettingCodes[k]] = v
    return f.serialize()


SETTINGS_ACK = SettingsFrame(0, flags=["ACK"]).serialize()


def ping(opaque: bytes = b"pingpong", ack: bool = False) -> bytes:
    return PingFrame(0, opaque_data=opaque, flags=["ACK"] if ack else []).serialize()


def window_update(sid: int, inc: int) -> bytes:
    return raw(0x8, 0, sid, struct.pack(">L", inc))


def rst(sid: int, code: int) -> bytes:
    return raw(0x3, 0, sid, struct.pack(">L", code))


def goaway(last: int, code: int, debug: bytes = b"") -> bytes:
    return GoAwayFrame(0, last_stream_id=last, error_code=code, additional_data=debug).serialize()


def priority(sid: int, depends_on: int = 0, weight: int = 16) -> bytes:
    return raw(0x2, 0, sid, struct.pack(">LB", depends_on, weight - 1))


def data(sid: int, payload: bytes, end: bool = False, pad: int | None = None) -> bytes:
    f = DataFrame(sid, data=payload)
    if end:
        f.flags.add("END_STREAM")
    if pad is not None:
        f.flags.add("PADDED")
        f.pad_length = pad
    return f.serialize()


def big_data(sid: int, n: int, end: bool = False) -> bytes:
    """``n`` bytes on ``sid`` in frames of at most 16 KiB (the default SETTINGS_MAX_FRAME_SIZE)."""
    out = []
    while n > 0:
        k = min(n, 16384)
        n -= k
        out.append(data(sid, b"x" * k, end and n == 0))
    return b"".join(out)


class W:
    """Header blocks, through one HPACK encoder (its dynamic table, as a real peer's)."""

    def __init__(self) -> None:
        self.enc = hpack.Encoder()

    def block(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        return self.enc.encode(headers)

    def headers(self, sid: int, headers: list[tuple[bytes, bytes]] | bytes, end: bool = False, *,
                end_headers: bool = True, pad: int | None = None,
                priority: bool = False) -> bytes:
        block = headers if isinstance(headers, bytes) else self.block(headers)
        f = HeadersFrame(sid, data=block)
        if end:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        if pad is not None:
            f.flags.add("PADDED")
            f.pad_length = pad
        if priority:
            f.flags.add("PRIORITY")
            f.depends_on = 0
            f.stream_weight = 15
            f.exclusive = False
        return f.serialize()

    @staticmethod
    def cont(sid: int, block: bytes, end_headers: bool) -> bytes:
        return ContinuationFrame(sid, data=block, flags=["END_HEADERS"] if end_headers else []
                                 ).serialize()

    def split(self, sid: int, headers: list[tuple[bytes, bytes]], cuts: tuple[int, ...],
              end: bool = False, pad: int | None = None, cont_sid: int | None = None
              ) -> list[bytes]:
        """One header block as a HEADERS and CONTINUATIONs (on ``cont_sid`` if given), cut at
        these offsets."""
        block = self.block(headers)
        bounds = [0, *cuts, len(block)]
        pieces = [block[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        frames = [self.headers(sid, pieces[0], end, end_headers=False, pad=pad)]
        frames.extend(self.cont(sid if cont_sid is None else cont_sid, p, i == len(pieces) - 2)
                      for i, p in enumerate(pieces[1:]))
        return frames


A = b":authority"
GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (A, b"example.com")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/up"), (A, b"example.com"),
        (b"content-type", b"text/plain")]
RESP = [(b":status", b"200"), (b"content-type", b"text/plain")]


def without(headers: list, name: bytes) -> list:
    return [(n, v) for n, v in headers if n != name]


def replaced(headers: list, name: bytes, value: bytes) -> list:
    return [(n, value if n == name else v) for n, v in headers]


# Steps: ("in", bytes) -> receive_data; ("call", name, args, kwargs) -> a method of the twin;
# ("get", "a.b") -> an attribute; ("peer", name, args, kwargs) -> a method of the peer;
# ("break",) -> nothing, but the bytes before and after it come in separate reads in every mode.


def IN(*parts: bytes) -> tuple:
    return ("in", b"".join(parts))


def CALL(name: str, *args: Any, **kwargs: Any) -> tuple:
    return ("call", name, args, kwargs)


def GETATTR(path: str) -> tuple:
    return ("get", path)


def PEER(name: str, *args: Any, **kwargs: Any) -> tuple:
    return ("peer", name, args, kwargs)


BREAK = ("break",)
SERVER_START = IN(PREFACE, settings())  # a client's preface and SETTINGS
CLIENT_START = (CALL("send_headers", 1, GET, end_stream=True), IN(settings()))


@dataclass
class Case:
    name: str
    client: bool  # the twin's side
    steps: Callable[[W], list[tuple]]
    expect: tuple = ()  # h2's outcome (see ``outcome``)
    core: tuple | None = None  # h2core's, where it differs (then the case is xfail)
    why: str = ""  # the disagreement, for the xfail reason
    peer: dict[int, int] | None = None  # a peer: its local settings ({} for the defaults)
    dribble: bool = True
    upgrade: bytes | None = None  # a server started by an h2c upgrade with this HTTP2-Settings


# --------------------------------------------------------------------------------------------
# Running a case on one twin


class ConnectionDead(Exception):
    pass


class Run:
    def __init__(self, case: Case, twin: str) -> None:
        self.client = case.client
        self.conn = TWINS[twin](case.client, CLIENT_LOCAL if case.client else SERVER_LOCAL)
        self.trace: list[Any] = []
        self.ended: set[int] = set()  # streams the peer has ended or reset (difference 4)
        self.out_decoder = hpack.Decoder()
        self.out_decoder.max_header_list_size = 1 << 30
        self.block: list[Any] | None = None  # a HEADERS of ours awaiting its CONTINUATIONs
        self.preface = case.client  # a client's output starts with the preface
        self.peer = None if case.peer is None else make_peer(not case.client, case.peer)
        if case.upgrade is not None:
            self.conn.initiate_upgrade_connection(case.upgrade)
        else:
            self.conn.initiate_connection()
        window = CLIENT_CONN_WINDOW if case.client else SERVER_CONN_WINDOW
        self.conn.increment_flow_control_window(window - 65535)
        if self.peer is not None:
            self.peer.initiate_connection()
        self.flush()

    # ---------------------------------------------------------------- what the twin sends

    def frames(self, raw_out: bytes) -> list[tuple]:
        if self.preface:
            assert raw_out.startswith(PREFACE)
            raw_out = raw_out[len(PREFACE):]
            self.preface = False
        out = []
        for f in parse_frames(raw_out):
            n = self.norm_frame(f)
            if n is not None:
                out.append(n)
        return out

    def norm_frame(self, f: Frame) -> tuple | None:
        sid = f.stream_id
        if isinstance(f, DataFrame):
            return ("DATA", sid, blob(f.data), "END_STREAM" in f.flags)
        if isinstance(f, HeadersFrame):
            self.block = [sid, "END_STREAM" in f.flags, [f.data]]
            if "END_HEADERS" not in f.flags:
                return None
            return self.header_block()
        if isinstance(f, ContinuationFrame):
            assert self.block is not None and self.block[0] == sid, "a stray CONTINUATION"
            self.block[2].append(f.data)
            return self.header_block() if "END_HEADERS" in f.flags else None
        if isinstance(f, SettingsFrame):
            if "ACK" in f.flags:
                return ("SETTINGS_ACK",)
            effective = dict(SETTING_DEFAULTS)
            effective.update(f.settings)
            if not self.client:
                effective.pop(SettingCodes.ENABLE_PUSH)  # difference 3
            return ("SETTINGS", sorted((int(k), v) for k, v in effective.items()))
        if isinstance(f, PingFrame):
            return ("PING_ACK" if "ACK" in f.flags else "PING", bytes(f.opaque_data))
        if isinstance(f, RstStreamFrame):
            return ("RST_STREAM", sid, code_name(f.error_code))
        if isinstance(f, GoAwayFrame):
            return ("GOAWAY", f.last_stream_id, code_name(f.error_code))
        if isinstance(f, WindowUpdateFrame):
            if sid and sid in self.ended:
                return None  # difference 4
            return ("WINDOW_UPDATE", sid, f.window_increment)
        return (type(f).__name__, sid)

    def header_block(self) -> tuple:
        assert self.block is not None
        sid, end, parts = self.block
        self.block = None
        headers = self.out_decoder.decode(b"".join(parts), raw=True)
        return ("HEADERS", sid, [(bytes(n), bytes(v)) for n, v in headers], end)

    # ---------------------------------------------------------------- steps

    def receive(self, chunk: bytes) -> list[tuple]:
        try:
            events = self.conn.receive_data(chunk)
        except ProtocolError as exc:
            code = code_name(getattr(exc, "error_code", None) or ErrorCodes.PROTOCOL_ERROR)
            out = self.frames(self.conn.data_to_send())
            if out and out[-1][0] == "GOAWAY" and out[-1][2] == code:
                out.pop()  # difference 1
            if out:
                self.trace.append(("out", out))
            self.trace.append(("connection error", code, self.conn.highest_inbound_stream_id))
            raise ConnectionDead from None
        evs = [e for e in map(norm_event, events) if e is not None]
        for e in evs:
            if e[0] in ("StreamEnded", "StreamReset"):
                self.ended.add(e[1])
        return evs

    def step(self, step: tuple) -> None:
        kind = step[0]
        if kind == "in":
            self.trace.append(("events", self.receive(step[1])))
        elif kind == "call":
            _, name, args, kwargs = step
            try:
                result = getattr(self.conn, name)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the exception is what is compared
                result = ("raises", type(exc).__name__)
            self.trace.append((name, result))
        elif kind == "get":
            obj = self.conn
            for part in step[1].split("."):
                obj = getattr(obj, part)
            self.trace.append((step[1], obj))
        elif kind == "break":
            pass
        elif kind == "peer":
            assert self.peer is not None
            _, name, args, kwargs = step
            getattr(self.peer, name)(*args, **kwargs)
        self.flush()

    def flush(self) -> None:
        """Without a peer: what the twin queued. With one: the bytes go back and forth until
        neither has anything more to say, each side's events recorded."""
        if self.peer is None:
            out = self.frames(self.conn.data_to_send())
            if out:
                self.trace.append(("out", out))
            return
        for _ in range(20):
            moved = False
            raw_out = self.conn.data_to_send()
            if raw_out:
                moved = True
                out = self.frames(raw_out)
                if out:
                    self.trace.append(("out", out))
                try:
                    pev = self.peer.receive_data(raw_out)
                except ProtocolError as exc:
                    self.trace.append(("peer error", code_name(exc.error_code)))
                    raise ConnectionDead from None
                pevs = [norm_peer_event(e) for e in pev if not (
                    type(e).__name__ == "WindowUpdated" and e.stream_id in self.ended)]
                if pevs:  # (difference 4: the peer's side of those WINDOW_UPDATEs)
                    self.trace.append(("peer events", pevs))
            back = self.peer.data_to_send()
            if back:
                moved = True
                self.trace.append(("events", self.receive(back)))
            if not moved:
                return
        raise AssertionError("the twin and its peer never stop talking")


def feed(steps: list[tuple], mode: str) -> list[tuple]:
    """The steps as the mode feeds them: "frames" as listed; "joined": the bytes between two
    API calls in one receive_data; "dribble": the bytes in 7-byte pieces."""
    if mode == "frames":
        return steps
    joined: list[tuple] = []
    for s in steps:
        if s[0] == "in" and joined and joined[-1][0] == "in":  # (a BREAK stands between)
            joined[-1] = ("in", joined[-1][1] + s[1])
        else:
            joined.append(s)
    if mode == "joined":
        return joined
    out: list[tuple] = []
    for s in joined:
        if s[0] == "in":
            b = s[1]
            out.extend(("in", b[i:i + 7]) for i in range(0, len(b), 7))
        else:
            out.append(s)
    return out


def run(case: Case, twin: str, mode: str = "frames") -> list[Any]:
    r = Run(case, twin)
    steps = case.steps(W())
    try:
        for s in feed(steps, mode):
            r.step(s)
    except ConnectionDead:
        pass
    if mode == "dribble":
        # Pieces that completed no frame say nothing: drop the empty records.
        return [t for t in r.trace if t != ("events", [])]
    return r.trace


def outcome(trace: list[Any]) -> tuple:
    """The gist: a connection error's code, the RST_STREAMs the twin sent, a peer's error."""
    gist: list[Any] = []
    for t in trace:
        if t[0] == "connection error":
            gist.append(("GOAWAY", t[1]))
        elif t[0] == "out":
            gist.extend(("RST_STREAM", f[1], f[2]) for f in t[1] if f[0] == "RST_STREAM")
        elif t[0] == "peer error":
            gist.append(("peer GOAWAY", t[1]))
    return tuple(gist)


# --------------------------------------------------------------------------------------------
# The cases


def conn_error(code: str) -> tuple:
    return (("GOAWAY", code),)


def stream_error(sid: int, code: str) -> tuple:
    return (("RST_STREAM", sid, code),)


PROTO = "PROTOCOL_ERROR"
MALFORMED = ("h2 treats a malformed {} as a connection error (GOAWAY PROTOCOL_ERROR), h2core as "
             "a stream error (RST_STREAM PROTOCOL_ERROR); RFC 9113 8.1.1 asks for the stream "
             "error (5.4.1 lets an endpoint escalate)")


def malformed(what: str) -> str:
    return MALFORMED.format(what)


def request_case(name: str, headers: list, expect: tuple = (), core: tuple | None = None,
                 why: str = "") -> Case:
    """A server receiving one request (HEADERS with END_STREAM) of these header fields."""
    return Case(name, False, lambda w: [SERVER_START, IN(w.headers(1, headers, True))],
                expect=expect, core=core, why=why)


def bad_request(name: str, headers: list, what: str) -> Case:
    return request_case(name, headers, conn_error(PROTO), stream_error(1, PROTO), malformed(what))


def response_case(name: str, frames: Callable[[W], list[bytes]], expect: tuple = (),
                  core: tuple | None = None, why: str = "") -> Case:
    """A client (its request sent) receiving the server's SETTINGS, then these frames."""
    return Case(name, True, lambda w: [*CLIENT_START, *(IN(f) for f in frames(w))],
                expect=expect, core=core, why=why)


def upgrade_settings(**values: int) -> bytes:
    """An HTTP2-Settings value: a SETTINGS payload, base64url without padding."""
    f = SettingsFrame(0)
    for k, v in values.items():
        f.settings[SettingCodes[k]] = v
    return base64.urlsafe_b64encode(f.serialize_body()).rstrip(b"=")


def hpack_bomb(w: W) -> bytes:
    """A small block that decodes to over 1 MiB: one 4 KiB field indexed, then 300 references."""
    first = w.block([*GET, (b"x-bomb", b"b" * 4000)])  # the newest entry: index 62
    return w.headers(1, first) + w.headers(3, w.block(GET) + b"\xbe" * 300, True)


def streams_250(w: W) -> bytes:
    return b"".join(w.headers(sid, GET) for sid in range(1, 500, 2))


CASES: list[Case] = [
    # ------------------------------------------------------------ server side, valid
    request_case("get", GET),
    Case("get-after-settings-ack", False, lambda w: [
        SERVER_START, IN(SETTINGS_ACK), IN(w.headers(1, GET, True))]),
    Case("post-data-split", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(data(1, b"hello ")),
        IN(data(1, b"world", end=True)),
        CALL("acknowledge_received_data", 6, 1), CALL("acknowledge_received_data", 5, 1)]),
    Case("post-trailers", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(data(1, b"body")),
        IN(w.headers(1, [(b"grpc-status", b"0"), (b"x-sum", b"abc")], True))]),
    Case("post-empty-data-end", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(data(1, b"", end=True))]),
    Case("padded-data", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(data(1, b"abc", pad=10)),
        IN(data(1, b"", end=True, pad=0)), CALL("acknowledge_received_data", 14, 1)]),
    Case("padded-headers", False, lambda w: [
        SERVER_START, IN(w.headers(1, GET, True, pad=7))]),
    Case("headers-continuation", False, lambda w: [
        SERVER_START, IN(*w.split(1, [*GET, (b"x-long", b"v" * 100)], (5, 9), True))]),
    Case("headers-continuation-split", False, lambda w: [
        SERVER_START, *map(IN, w.split(1, POST, (3,), pad=4)), IN(data(1, b"x", end=True))]),
    Case("ping", False, lambda w: [SERVER_START, IN(ping(b"\x00\x01\x02\x03\x04\x05\x06\x07"))]),
    Case("ping-ack", False, lambda w: [SERVER_START, IN(ping(ack=True))]),
    Case("settings-changes", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)),
        IN(settings(INITIAL_WINDOW_SIZE=1000, MAX_FRAME_SIZE=32768, HEADER_TABLE_SIZE=0)),
        CALL("local_flow_control_window", 1), GETATTR("max_outbound_frame_size"),
        CALL("send_headers", 1, RESP), CALL("send_data", 1, b"a" * 600),
        CALL("local_flow_control_window", 1),
        IN(settings(INITIAL_WINDOW_SIZE=100)),  # the stream's window goes below zero
        CALL("local_flow_control_window", 1),
        IN(window_update(1, 1000)), CALL("local_flow_control_window", 1),
        GETATTR("remote_settings.initial_window_size")]),
    Case("window-updates", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(window_update(0, 1000)),
        IN(window_update(1, 2000)), CALL("local_flow_control_window", 1),
        IN(window_update(1, 1 << 20)), CALL("local_flow_control_window", 1)]),
    Case("window-update-half-closed-remote", False, lambda w: [
        SERVER_START, IN(w.headers(1, GET, True)), IN(window_update(1, 10)),
        CALL("local_flow_control_window", 1)]),
    Case("window-update-closed-stream", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(rst(1, ErrorCodes.CANCEL)),
        IN(window_update(1, 10))]),
    Case("rst-stream", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(rst(1, ErrorCodes.CANCEL)),
        IN(w.headers(3, GET, True))]),
    Case("data-after-rst", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(rst(1, ErrorCodes.CANCEL)),
        IN(data(1, b"late"))], expect=stream_error(1, "STREAM_CLOSED")),
    Case("reset-by-us-then-data", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), CALL("reset_stream", 1, ErrorCodes.CANCEL),
        IN(data(1, b"late", end=True)), CALL("reset_stream", 1, ErrorCodes.CANCEL)],
        expect=(("RST_STREAM", 1, "CANCEL"), ("RST_STREAM", 1, "STREAM_CLOSED"))),
    Case("goaway", False, lambda w: [
        SERVER_START, IN(w.headers(1, GET, True)), BREAK,
        IN(goaway(0, ErrorCodes.NO_ERROR, b"bye"))]),
    Case("goaway-error", False, lambda w: [
        SERVER_START, BREAK, IN(goaway(0, ErrorCodes.ENHANCE_YOUR_CALM))]),
    Case("goaway-in-same-read", False, lambda w: [
        IN(PREFACE, settings(), ping(), w.headers(1, GET, True), goaway(1, 0))], core=(),
        dribble=False,
        why="GOAWAY in the same read as a SETTINGS and a PING: h2 discards what it had queued "
            "(the SETTINGS ACK, the PING ACK), h2core keeps it; RFC 9113 6.5.3 and 6.7 (the "
            "ACKs are owed) and 6.8 (the connection still serves streams up to the last id) "
            "agree with h2core"),
    Case("goaway-then-respond", False, lambda w: [
        SERVER_START, IN(w.headers(1, GET, True)), BREAK, IN(goaway(1, ErrorCodes.NO_ERROR)),
        CALL("send_headers", 1, RESP), CALL("send_data", 1, b"done", end_stream=True),
        IN(ping())], expect=conn_error(PROTO), core=(),
        why="after the client's GOAWAY(last stream 1), answering stream 1: h2 raises "
            "ProtocolError from send_headers and send_data, and treats a later PING as a "
            "connection error (GOAWAY PROTOCOL_ERROR); h2core sends the response and the PING "
            "ACK; RFC 9113 6.8 (streams up to the last id may still complete) agrees with "
            "h2core"),
    Case("priority", False, lambda w: [
        SERVER_START, IN(priority(1, 0, 200)), IN(w.headers(1, GET, True)),
        IN(priority(1, 0, 1)), IN(priority(7, 1, 16))]),
    Case("unknown-frame", False, lambda w: [
        SERVER_START, IN(raw(0x20, 0, 0, b"extension")), IN(raw(0xFA, 0xFF, 1, b"x")),
        IN(w.headers(1, GET, True))]),
    request_case("cookies-split", [*GET, (b"cookie", b"a=1"), (b"accept", b"*/*"),
                                   (b"cookie", b"b=2"), (b"cookie", b"c=3")]),
    request_case("cookie-single-first", [*GET, (b"cookie", b"a=1"), (b"accept", b"*/*")]),
    request_case("same-name-fields-in-order", [*GET, (b"x-a", b"1"), (b"x-b", b"2"),
                                               (b"x-a", b"3"), (b"x-a", b"")]),
    request_case("te-trailers", [*GET, (b"te", b"trailers")]),
    request_case("host-without-authority", [*without(GET, A), (b"host", b"example.com")]),
    request_case("connect", [(b":method", b"CONNECT"), (A, b"example.com:443")]),
    Case("two-streams-interleaved", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(w.headers(3, POST)), IN(data(3, b"three")),
        IN(data(1, b"one")), IN(data(3, b"", end=True)), IN(data(1, b"!", end=True))]),
    Case("respond-and-close", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), CALL("send_headers", 1, RESP),
        CALL("send_data", 1, b"early", end_stream=True), IN(data(1, b"still", end=True)),
        IN(w.headers(3, GET, True))]),
    Case("close-connection", False, lambda w: [
        SERVER_START, IN(w.headers(1, GET, True)), IN(w.headers(3, POST)),
        CALL("close_connection", error_code=ErrorCodes.ENHANCE_YOUR_CALM),
        GETATTR("highest_inbound_stream_id")]),
    Case("upgrade", False, upgrade=upgrade_settings(INITIAL_WINDOW_SIZE=1000,
                                                    MAX_CONCURRENT_STREAMS=10),
         steps=lambda w: [
        GETATTR("highest_inbound_stream_id"), CALL("local_flow_control_window", 1),
        GETATTR("remote_settings.max_concurrent_streams"), SERVER_START,
        CALL("send_headers", 1, RESP), CALL("send_data", 1, b"x" * 1000),
        CALL("local_flow_control_window", 1), IN(window_update(1, 5)),
        CALL("send_data", 1, b"y" * 5, end_stream=True), IN(w.headers(3, GET, True))]),
    Case("upgrade-empty-settings", False, upgrade=b"", steps=lambda w: [
        SERVER_START, CALL("local_flow_control_window", 1), CALL("send_headers", 1, RESP, True),
        IN(w.headers(3, GET, True))]),
    Case("upgrade-data-on-stream-1", False, upgrade=upgrade_settings(), steps=lambda w: [
        SERVER_START, IN(data(1, b"x")), IN(w.headers(3, GET, True))],
        expect=stream_error(1, "STREAM_CLOSED")),
    # ------------------------------------------------------------ server side, invalid
    Case("bad-preface", False, lambda w: [IN(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
         expect=conn_error(PROTO)),
    Case("bad-preface-late", False, lambda w: [
        IN(PREFACE[:10]), IN(b"HTTP/1.1 200 OK\r\n\r\n")], expect=conn_error(PROTO)),
    Case("first-frame-not-settings", False, lambda w: [IN(PREFACE, ping())],
         expect=(), core=conn_error(PROTO),
         why="a PING where the client's first SETTINGS should be: h2 answers it, h2core sends "
             "GOAWAY PROTOCOL_ERROR; RFC 9113 3.4 (the preface MUST be followed by SETTINGS, an "
             "invalid preface is a connection error PROTOCOL_ERROR) agrees with h2core"),
    Case("data-on-stream-0", False, lambda w: [SERVER_START, IN(raw(0x0, 0, 0, b"x"))],
         expect=conn_error(PROTO)),
    Case("headers-on-stream-0", False, lambda w: [
        SERVER_START, IN(raw(0x1, 0x5, 0, w.block(GET)))], expect=conn_error(PROTO)),
    Case("settings-on-stream", False, lambda w: [SERVER_START, IN(raw(0x4, 0, 1))],
         expect=conn_error(PROTO)),
    Case("ping-on-stream", False, lambda w: [SERVER_START, IN(raw(0x6, 0, 1, b"12345678"))],
         expect=conn_error(PROTO)),
    Case("ping-bad-length", False, lambda w: [SERVER_START, IN(raw(0x6, 0, 0, b"1234567"))],
         expect=conn_error("FRAME_SIZE_ERROR")),
    Case("settings-bad-length", False, lambda w: [SERVER_START, IN(raw(0x4, 0, 0, b"12345"))],
         expect=conn_error("FRAME_SIZE_ERROR")),
    Case("rst-on-stream-0", False, lambda w: [SERVER_START, IN(rst(0, 0))],
         expect=conn_error(PROTO)),
    Case("data-frame-too-large", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(data(1, b"x" * 16385))],
        expect=conn_error("FRAME_SIZE_ERROR")),
    Case("headers-frame-too-large", False, lambda w: [
        SERVER_START, IN(w.headers(1, [*GET, (b"x-big", b"v" * 20000)], True))],
        expect=conn_error("FRAME_SIZE_ERROR")),
    Case("even-stream-id", False, lambda w: [SERVER_START, IN(w.headers(2, GET, True))],
         expect=conn_error(PROTO)),
    Case("decreasing-stream-id", False, lambda w: [
        SERVER_START, IN(w.headers(3, GET, True)), IN(w.headers(1, GET, True))],
        expect=conn_error(PROTO), core=conn_error("STREAM_CLOSED"),
        why="HEADERS opening stream 1 after stream 3: h2 sends GOAWAY PROTOCOL_ERROR, h2core "
            "GOAWAY STREAM_CLOSED; RFC 9113 5.1.1 (an unexpected stream identifier: connection "
            "error PROTOCOL_ERROR) agrees with h2"),
    Case("stream-id-reused-after-close", False, lambda w: [
        SERVER_START, IN(w.headers(1, GET, True)), CALL("send_headers", 1, RESP, True),
        IN(w.headers(1, GET, True))], expect=conn_error("STREAM_CLOSED")),
    Case("headers-on-half-closed-remote", False, lambda w: [
        SERVER_START, IN(w.headers(1, GET, True)), IN(w.headers(1, GET, True)),
        IN(w.headers(3, GET, True))], expect=stream_error(1, "STREAM_CLOSED")),
    Case("data-on-half-closed-remote", False, lambda w: [
        SERVER_START, IN(w.headers(1, GET, True)), IN(data(1, b"x")),
        IN(w.headers(3, GET, True))], expect=stream_error(1, "STREAM_CLOSED")),
    Case("data-on-idle-stream", False, lambda w: [SERVER_START, IN(data(1, b"x"))],
         expect=conn_error(PROTO)),
    Case("window-update-on-idle-stream", False, lambda w: [
        SERVER_START, IN(window_update(5, 10))], expect=conn_error(PROTO)),
    Case("rst-on-idle-stream", False, lambda w: [
        SERVER_START, IN(rst(5, ErrorCodes.CANCEL)), IN(w.headers(1, GET, True))],
        expect=conn_error(PROTO)),
    bad_request("uppercase-name", [*GET, (b"X-Upper", b"1")], "field name (upper case)"),
    bad_request("name-with-space", [*GET, (b"x y", b"1")], "field name (a space)"),
    bad_request("name-with-colon", [*GET, (b"x:y", b"1")], "field name (a colon)"),
    bad_request("empty-name", [*GET, (b"", b"1")], "field name (empty)"),
    bad_request("connection-header", [*GET, (b"connection", b"keep-alive")],
                "connection-specific field (connection)"),
    bad_request("transfer-encoding", [*GET, (b"transfer-encoding", b"chunked")],
                "connection-specific field (transfer-encoding)"),
    bad_request("keep-alive", [*GET, (b"keep-alive", b"300")],
                "connection-specific field (keep-alive)"),
    bad_request("te-gzip", [*GET, (b"te", b"gzip")], "TE other than trailers"),
    bad_request("value-leading-space", [*GET, (b"x-a", b" v")], "value (leading SP)"),
    bad_request("value-trailing-tab", [*GET, (b"x-a", b"v\t")], "value (trailing HTAB)"),
    bad_request("value-cr", [*GET, (b"x-a", b"a\rb")], "value (CR)"),
    bad_request("value-lf", [*GET, (b"x-a", b"a\nb")], "value (LF)"),
    bad_request("value-nul", [*GET, (b"x-a", b"a\x00b")], "value (NUL)"),
    bad_request("missing-method", without(GET, b":method"), "request (no :method)"),
    bad_request("missing-path", without(GET, b":path"), "request (no :path)"),
    bad_request("missing-scheme", without(GET, b":scheme"), "request (no :scheme)"),
    bad_request("repeated-pseudo", [*GET, (b":path", b"/again")],
                "request (a repeated pseudo-header)"),
    bad_request("pseudo-after-regular", [*without(GET, A), (b"x-a", b"1"), (A, b"e.com")],
                "request (a pseudo-header after a regular field)"),
    bad_request("unknown-pseudo", [*GET, (b":foo", b"bar")], "request (an unknown pseudo-header)"),
    bad_request("status-in-request", [*GET, (b":status", b"200")],
                "request (a response pseudo-header)"),
    bad_request("empty-path", replaced(GET, b":path", b""), "request (an empty :path)"),
    request_case(
        "missing-authority", without(GET, A), conn_error(PROTO), (),
        "a request with neither :authority nor Host: h2 sends GOAWAY PROTOCOL_ERROR, h2core "
        "takes it; RFC 9113 8.3.1 makes :authority optional (MUST NOT be generated when there "
        "is no authority): it agrees with h2core"),
    request_case(
        "authority-host-mismatch", [*GET, (b"host", b"other.example")], conn_error(PROTO), (),
        "Host differing from :authority: h2 sends GOAWAY PROTOCOL_ERROR, h2core takes the "
        "request (proxy.engine.h2 then uses :authority); RFC 9113 8.3.1 says a server SHOULD "
        "treat it as malformed (a stream error, 8.1.1): neither exactly, h2 closer"),
    Case("trailers-without-end-stream", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(w.headers(1, [(b"x-t", b"1")]))],
        expect=conn_error(PROTO), core=stream_error(1, PROTO),
        why=malformed("message (a trailer block without END_STREAM, RFC 9113 8.1)")),
    Case("trailers-with-pseudo", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(w.headers(1, [(b":path", b"/")], True))],
        expect=conn_error(PROTO), core=stream_error(1, PROTO),
        why=malformed("trailer block (a pseudo-header)")),
    Case("rst-bad-length", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(raw(0x3, 0, 1, b"123"))],
        expect=conn_error("FRAME_SIZE_ERROR")),
    Case("window-update-bad-length", False, lambda w: [
        SERVER_START, IN(raw(0x8, 0, 0, b"12345"))], expect=conn_error("FRAME_SIZE_ERROR")),
    Case("priority-bad-length", False, lambda w: [
        SERVER_START, IN(raw(0x2, 0, 1, b"1234"))], expect=conn_error("FRAME_SIZE_ERROR")),
    Case("goaway-on-stream", False, lambda w: [
        SERVER_START, IN(raw(0x7, 0, 1, bytes(8)))], expect=conn_error(PROTO)),
    Case("settings-ack-with-payload", False, lambda w: [
        SERVER_START, IN(raw(0x4, 0x1, 0, bytes(6)))],
        expect=conn_error(PROTO), core=conn_error("FRAME_SIZE_ERROR"),
        why="a SETTINGS ACK with a payload: h2 sends GOAWAY PROTOCOL_ERROR, h2core GOAWAY "
            "FRAME_SIZE_ERROR; RFC 9113 6.5 (a connection error FRAME_SIZE_ERROR) agrees with "
            "h2core"),
    Case("priority-self-dependency", False, lambda w: [
        SERVER_START, IN(priority(1, depends_on=1)), IN(w.headers(1, GET, True))],
        expect=conn_error(PROTO), core=(),
        why="a PRIORITY making stream 1 depend on itself: h2 sends GOAWAY PROTOCOL_ERROR, "
            "h2core ignores it; RFC 9113 6.3 (PRIORITY is deprecated, allowed in any state, "
            "no self-dependency rule any more; RFC 7540 5.3.1 asked for a stream error) "
            "agrees with h2core"),
    Case("headers-after-peer-reset", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(rst(1, ErrorCodes.CANCEL)),
        IN(w.headers(1, [(b"x-t", b"1")], True)), IN(w.headers(3, GET, True))],
        expect=stream_error(1, "STREAM_CLOSED")),
    Case("trailers-after-our-reset", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), CALL("reset_stream", 1, ErrorCodes.CANCEL),
        IN(w.headers(1, [(b"x-t", b"1")], True)), IN(w.headers(3, GET, True))],
        expect=(("RST_STREAM", 1, "CANCEL"), ("RST_STREAM", 1, "STREAM_CLOSED"))),
    request_case("connect-with-path", [(b":method", b"CONNECT"), (A, b"e.com:443"),
                                       (b":path", b"/")], conn_error(PROTO), (),
                 "a CONNECT request with :path: h2 sends GOAWAY PROTOCOL_ERROR, h2core takes "
                 "it; RFC 9113 8.5 (:scheme and :path MUST be omitted, else the request is "
                 "malformed: a stream error, 8.1.1) is closer to h2 (which escalates, as "
                 "5.4.1 allows)"),
    bad_request("protocol-pseudo", [*GET, (b":protocol", b"websocket")],
                "request (:protocol without CONNECT)"),
    Case("hpack-invalid-index", False, lambda w: [
        SERVER_START, IN(w.headers(1, b"\xff\x00", True))],
        expect=conn_error(PROTO), core=conn_error("COMPRESSION_ERROR"),
        why="a header block that does not decode (an index past the tables): h2 sends GOAWAY "
            "PROTOCOL_ERROR, h2core GOAWAY COMPRESSION_ERROR; RFC 9113 4.3 (a field block "
            "decoding error is a connection error COMPRESSION_ERROR) agrees with h2core"),
    Case("hpack-bomb", False, lambda w: [SERVER_START, IN(hpack_bomb(w))],
         expect=conn_error("ENHANCE_YOUR_CALM"), core=conn_error("COMPRESSION_ERROR"),
         why="a header block decoding to more than SETTINGS_MAX_HEADER_LIST_SIZE (an HPACK "
             "bomb): h2 sends GOAWAY ENHANCE_YOUR_CALM, h2core GOAWAY COMPRESSION_ERROR; both "
             "are connection errors, as the decoding stopped mid-block (RFC 9113 4.3: the "
             "compression context is lost); RFC 9113 7 defines ENHANCE_YOUR_CALM for load "
             "like this, COMPRESSION_ERROR for a lost context: either fits"),
    Case("continuation-interrupted", False, lambda w: [
        SERVER_START, IN(w.headers(1, w.block(GET), True, end_headers=False)), IN(ping())],
        expect=conn_error(PROTO)),
    Case("continuation-other-stream", False, lambda w: [
        SERVER_START, *map(IN, w.split(1, GET, (4,), True, cont_sid=3))],
        expect=conn_error(PROTO)),
    Case("continuation-without-headers", False, lambda w: [
        SERVER_START, IN(w.cont(1, w.block(GET), True))], expect=conn_error(PROTO)),
    Case("data-padding-too-long", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(raw(0x0, 0x8, 1, b"\x05abc"))],
        expect=conn_error(PROTO)),
    Case("headers-priority-flag", False, lambda w: [
        SERVER_START, IN(w.headers(1, GET, True, priority=True))], expect=(), core=(),
        why="HEADERS with the PRIORITY flag: h2 adds a PriorityUpdated event after "
            "RequestReceived (proxy.engine.h2 counts it against its control-frame budget), "
            "h2core does not; RFC 9113 5.3.2 deprecates these signals and asks nothing of "
            "a receiver: both conform"),
    Case("data-beyond-stream-window", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(big_data(1, 1 << 20)), IN(data(1, b"!")),
        IN(w.headers(3, GET, True))], dribble=False,
        expect=conn_error("FLOW_CONTROL_ERROR"), core=stream_error(1, "FLOW_CONTROL_ERROR"),
        why="DATA over a stream's window: h2 sends GOAWAY FLOW_CONTROL_ERROR, h2core RST_STREAM "
            "FLOW_CONTROL_ERROR; RFC 9113 6.9 (a receiver MAY answer a stream or a connection "
            "error) allows both"),
    Case("data-beyond-connection-window", False, lambda w: [
        SERVER_START, *(IN(w.headers(sid, POST), big_data(sid, 1 << 20)) for sid in (1, 3, 5, 7)),
        IN(w.headers(9, POST)), IN(data(9, b"!"))], dribble=False,
        expect=conn_error("FLOW_CONTROL_ERROR")),
    Case("window-update-zero-connection", False, lambda w: [
        SERVER_START, IN(window_update(0, 0))], expect=conn_error(PROTO)),
    Case("window-update-zero-stream", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(window_update(1, 0)),
        IN(w.headers(3, GET, True))],
        expect=conn_error(PROTO), core=stream_error(1, PROTO),
        why="WINDOW_UPDATE of 0 on a stream: h2 sends GOAWAY PROTOCOL_ERROR, h2core RST_STREAM "
            "PROTOCOL_ERROR; RFC 9113 6.9 (a stream error PROTOCOL_ERROR) agrees with h2core"),
    Case("window-update-overflow-connection", False, lambda w: [
        SERVER_START, IN(window_update(0, MAX_WINDOW))], expect=conn_error("FLOW_CONTROL_ERROR")),
    Case("window-update-overflow-stream", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(window_update(1, MAX_WINDOW)),
        IN(w.headers(3, GET, True))], expect=stream_error(1, "FLOW_CONTROL_ERROR")),
    Case("settings-window-overflow", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)), IN(window_update(1, MAX_WINDOW - 65535)),
        IN(settings(INITIAL_WINDOW_SIZE=65536))], expect=conn_error("FLOW_CONTROL_ERROR")),
    Case("settings-initial-window-too-big", False, lambda w: [
        SERVER_START, IN(settings(INITIAL_WINDOW_SIZE=1 << 31))],
        expect=conn_error("FLOW_CONTROL_ERROR")),
    Case("settings-max-frame-size-too-small", False, lambda w: [
        SERVER_START, IN(settings(MAX_FRAME_SIZE=16383))], expect=conn_error(PROTO)),
    Case("settings-enable-push-2", False, lambda w: [
        SERVER_START, IN(settings(ENABLE_PUSH=2))], expect=conn_error(PROTO)),
    Case("push-promise-to-server", False, lambda w: [
        SERVER_START, IN(w.headers(1, POST)),
        IN(raw(0x5, 0x4, 1, struct.pack(">L", 2) + w.block(GET)))], expect=conn_error(PROTO)),
    Case("too-many-streams", False, lambda w: [
        SERVER_START, IN(streams_250(w)), IN(w.headers(501, GET)),
        IN(data(1, b"", end=True)), IN(w.headers(503, GET, True)),  # 1 half-closed still counts
        CALL("send_headers", 1, RESP, end_stream=True), IN(w.headers(505, GET, True))],
        dribble=False,
        expect=conn_error(PROTO),
        core=stream_error(501, "REFUSED_STREAM") + stream_error(503, "REFUSED_STREAM"),
        why="HEADERS over SETTINGS_MAX_CONCURRENT_STREAMS: h2 sends GOAWAY PROTOCOL_ERROR, "
            "h2core RST_STREAM REFUSED_STREAM; RFC 9113 5.1.2 (a stream error PROTOCOL_ERROR or "
            "REFUSED_STREAM) agrees with h2core"),
    # ------------------------------------------------------------ client side, valid
    response_case("response", lambda w: [
        w.headers(1, RESP), data(1, b"hello"), data(1, b" world", end=True)]),
    response_case("response-headers-only", lambda w: [
        w.headers(1, [(b":status", b"204"), (b"x-a", b"1")], True)]),
    response_case("response-trailers", lambda w: [
        w.headers(1, RESP), data(1, b"x"), w.headers(1, [(b"grpc-status", b"0")], True)]),
    response_case("response-1xx-then-final", lambda w: [
        w.headers(1, [(b":status", b"100")]), w.headers(1, [(b":status", b"103"),
                                                           (b"link", b"</a.css>")]),
        w.headers(1, RESP), data(1, b"ok", end=True)]),
    response_case("response-padded-continuation", lambda w: [
        *w.split(1, [*RESP, (b"x-a", b"1" * 50)], (2,), pad=3), data(1, b"z", end=True, pad=2)]),
    response_case("response-cookies-untouched", lambda w: [
        w.headers(1, [*RESP, (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")], True)]),
    response_case("response-rst", lambda w: [rst(1, ErrorCodes.REFUSED_STREAM)]),
    response_case("response-after-goaway", lambda w: [
        goaway(1, ErrorCodes.NO_ERROR), w.headers(1, RESP, True)], conn_error(PROTO), (),
        "the server's GOAWAY(last stream 1), then its response on stream 1: h2 takes the "
        "HEADERS as a connection error (GOAWAY PROTOCOL_ERROR), h2core delivers the response; "
        "RFC 9113 6.8 (streams up to the last id may still complete) agrees with h2core"),
    response_case("response-ping-unknown-priority", lambda w: [
        ping(b"abcdefgh"), raw(0x33, 0, 0, b""), priority(1), w.headers(1, RESP, True)]),
    Case("response-data-acks", True, lambda w: [
        *CLIENT_START, IN(w.headers(1, RESP)), IN(big_data(1, 40000)),
        CALL("acknowledge_received_data", 16384, 1), CALL("acknowledge_received_data", 16384, 1),
        CALL("acknowledge_received_data", 7232, 1), IN(big_data(1, 58304, end=True)),
        CALL("acknowledge_received_data", 58304, 1)]),
    Case("client-settings-and-streams", True, lambda w: [
        *CLIENT_START[:1], GETATTR("open_outbound_streams"),
        CALL("get_next_available_stream_id"),
        IN(settings(MAX_CONCURRENT_STREAMS=2, INITIAL_WINDOW_SIZE=10, MAX_FRAME_SIZE=20000)),
        GETATTR("remote_settings.max_concurrent_streams"),
        CALL("send_headers", 3, POST), GETATTR("open_outbound_streams"),
        CALL("local_flow_control_window", 3), CALL("send_data", 3, b"0123456789"),
        CALL("send_data", 3, b"!"), CALL("send_headers", 5, GET, end_stream=True),
        IN(w.headers(1, RESP, True)), GETATTR("open_outbound_streams"),
        CALL("get_next_available_stream_id"), CALL("send_headers", 5, GET, end_stream=True),
        IN(window_update(3, 5)), CALL("send_data", 3, b"abcde", end_stream=True),
        IN(rst(3, ErrorCodes.NO_ERROR)), GETATTR("open_outbound_streams"),
        GETATTR("max_outbound_frame_size")]),
    # ------------------------------------------------------------ client side, invalid
    response_case("response-without-status", lambda w: [w.headers(1, [(b"x-a", b"1")], True)],
                  conn_error(PROTO), stream_error(1, PROTO),
                  malformed("response (no :status, RFC 9113 8.3.2)")),
    response_case("response-request-pseudo", lambda w: [
        w.headers(1, [*RESP, (b":path", b"/")], True)], conn_error(PROTO),
        stream_error(1, PROTO), malformed("response (a request pseudo-header)")),
    response_case("response-uppercase", lambda w: [w.headers(1, [*RESP, (b"X-A", b"1")], True)],
                  conn_error(PROTO), stream_error(1, PROTO),
                  malformed("response (an upper-case field name)")),
    response_case("response-data-before-headers", lambda w: [data(1, b"x", end=True)],
                  conn_error(PROTO), stream_error(1, "STREAM_CLOSED"),
                  "DATA before the response HEADERS: h2 sends GOAWAY PROTOCOL_ERROR, h2core "
                  "RST_STREAM STREAM_CLOSED; RFC 9113 8.1 makes the response malformed, a stream "
                  "error PROTOCOL_ERROR (8.1.1): neither exactly (h2 escalates, as 5.4.1 "
                  "allows; h2core's code is the wrong one)"),
    response_case("push-promise-to-client", lambda w: [
        raw(0x5, 0x4, 1, struct.pack(">L", 2) + w.block(GET))], conn_error(PROTO)),
    response_case("headers-on-even-stream", lambda w: [w.headers(2, RESP, True)],
                  conn_error(PROTO), conn_error(PROTO),
                  "HEADERS on stream 2 (never promised) to a client: both send GOAWAY "
                  "PROTOCOL_ERROR, h2 with last stream id 2, h2core 0; RFC 9113 6.8 (the last "
                  "stream the sender might have acted on: none) agrees with h2core"),
    response_case("response-beyond-stream-window", lambda w: [
        w.headers(1, RESP), big_data(1, 65537)], conn_error("FLOW_CONTROL_ERROR"),
        stream_error(1, "FLOW_CONTROL_ERROR"),
        "DATA over a stream's window: h2 sends GOAWAY FLOW_CONTROL_ERROR, h2core RST_STREAM "
        "FLOW_CONTROL_ERROR; RFC 9113 6.9 (a receiver MAY answer a stream or a connection "
        "error) allows both"),
    response_case("response-informational-end-stream", lambda w: [
        w.headers(1, [(b":status", b"100")], True)], conn_error(PROTO), stream_error(1, PROTO),
        malformed("response (a 1xx with END_STREAM, RFC 9113 8.1)")),
    response_case("response-trailers-without-end-stream", lambda w: [
        w.headers(1, RESP), w.headers(1, [(b"x-t", b"1")])], conn_error(PROTO),
        stream_error(1, PROTO), malformed("response (trailers without END_STREAM, RFC 9113 8.1)")),
    Case("response-after-our-reset", True, lambda w: [
        *CLIENT_START, CALL("reset_stream", 1, ErrorCodes.CANCEL), IN(w.headers(1, RESP)),
        IN(data(1, b"x", end=True)), CALL("send_headers", 3, GET, end_stream=True),
        IN(w.headers(3, RESP, True))],
        expect=(("RST_STREAM", 1, "CANCEL"), ("RST_STREAM", 1, "STREAM_CLOSED"),
                ("RST_STREAM", 1, "STREAM_CLOSED")),
        core=(("RST_STREAM", 1, "CANCEL"), ("RST_STREAM", 1, "STREAM_CLOSED")),
        why="the server's response crossing our RST_STREAM: h2 answers its HEADERS with "
            "RST_STREAM STREAM_CLOSED, h2core discards them (both answer the DATA so); RFC "
            "9113 5.1 (closed: after sending RST_STREAM an endpoint MUST minimally process and "
            "then discard such frames) agrees with h2core"),
    response_case("headers-on-closed-stream", lambda w: [
        w.headers(1, RESP, True), w.headers(1, [(b"x-t", b"1")], True)],
        conn_error("STREAM_CLOSED"), (),
        "HEADERS on a stream closed by END_STREAM both ways, to a client: h2 sends GOAWAY "
        "STREAM_CLOSED, h2core discards them; RFC 9113 5.1 (closed: MAY be a connection error "
        "STREAM_CLOSED, minimal processing is allowed too) allows both"),
    response_case("data-on-closed-stream", lambda w: [
        w.headers(1, RESP, True), data(1, b"x", end=True)], stream_error(1, "STREAM_CLOSED")),
    response_case("response-101-then-final", lambda w: [
        w.headers(1, [(b":status", b"101")]), w.headers(1, RESP, True)]),
    # ------------------------------------------------------------ sending, through an h2 peer
    Case("send-response", False, peer={}, steps=lambda w: [
        PEER("send_headers", 1, GET, end_stream=True),
        CALL("send_headers", 1, RESP), CALL("send_data", 1, b"hello", end_stream=True),
        CALL("send_data", 1, b"more")]),
    Case("send-response-end-stream-call", False, peer={}, steps=lambda w: [
        PEER("send_headers", 1, POST), PEER("send_data", 1, b"body", end_stream=True),
        CALL("acknowledge_received_data", 4, 1),
        CALL("send_headers", 1, RESP), CALL("send_data", 1, b"a"), CALL("send_data", 1, b"b"),
        CALL("end_stream", 1), CALL("end_stream", 1)]),
    Case("send-response-trailers", False, peer={}, steps=lambda w: [
        PEER("send_headers", 1, GET, end_stream=True),
        CALL("send_headers", 1, RESP), CALL("send_data", 1, b"x" * 1000),
        CALL("send_headers", 1, [(b"grpc-status", b"0")], end_stream=True)]),
    Case("send-response-headers-only", False, peer={}, steps=lambda w: [
        PEER("send_headers", 1, GET, end_stream=True),
        CALL("send_headers", 1, [(b":status", b"204"), (b"date", b"x")], end_stream=True),
        PEER("send_headers", 3, GET, end_stream=True),
        CALL("send_headers", 3, [(b":status", b"304")], end_stream=True)]),
    Case("send-large-headers", False, peer={}, steps=lambda w: [
        PEER("send_headers", 1, GET, end_stream=True),
        CALL("send_headers", 1, [*RESP, (b"x-big", b"v" * 24000), (b"x-after", b"1")]),
        CALL("end_stream", 1)]),
    Case("send-reset", False, peer={}, steps=lambda w: [
        PEER("send_headers", 1, POST),
        CALL("reset_stream", 1, ErrorCodes.CANCEL), CALL("send_data", 1, b"x"),
        CALL("reset_stream", 1, ErrorCodes.CANCEL), PEER("send_headers", 3, GET),
        CALL("send_headers", 3, RESP), CALL("reset_stream", 3, ErrorCodes.INTERNAL_ERROR)],
        expect=(("RST_STREAM", 1, "CANCEL"), ("RST_STREAM", 3, "INTERNAL_ERROR"))),
    Case("send-flow-control", False, peer={SettingCodes.INITIAL_WINDOW_SIZE: 100}, steps=lambda w: [
        PEER("send_headers", 1, GET, end_stream=True), CALL("send_headers", 1, RESP),
        CALL("local_flow_control_window", 1), CALL("send_data", 1, b"a" * 60),
        CALL("local_flow_control_window", 1), CALL("send_data", 1, b"b" * 41),
        CALL("send_data", 1, b"b" * 40), CALL("local_flow_control_window", 1),
        PEER("increment_flow_control_window", 50, stream_id=1),
        CALL("local_flow_control_window", 1), CALL("send_data", 1, b"c" * 50, end_stream=True)]),
    Case("send-frame-too-large", False, peer={}, steps=lambda w: [
        PEER("send_headers", 1, GET, end_stream=True), CALL("send_headers", 1, RESP),
        GETATTR("max_outbound_frame_size"), CALL("send_data", 1, b"x" * 16385),
        CALL("send_data", 1, b"x" * 16384, end_stream=True)]),
    Case("send-acks", False, peer={}, steps=lambda w: [
        # 3 x 768 KiB: the streams' WINDOW_UPDATEs come at half their 1 MiB windows, the
        # connection's at half its 4 MiB.
        *(PEER("send_headers", sid, POST) for sid in (1, 3, 5)),
        *(PEER("send_data", sid, bytes([sid]) * 16384) for sid in (1, 3, 5) for _ in range(48)),
        *(CALL("acknowledge_received_data", 16 * 16384, sid) for sid in (1, 3, 5)
          for _ in range(3)),
        CALL("acknowledge_received_data", 0, 1),
        PEER("send_data", 1, b"", end_stream=True),
        CALL("acknowledge_received_data", 1 << 20, 1), PEER("send_data", 3, b"more")]),
    Case("send-request", True, peer={}, steps=lambda w: [
        GETATTR("open_outbound_streams"), CALL("get_next_available_stream_id"),
        CALL("send_headers", 1, GET, end_stream=True), GETATTR("open_outbound_streams"),
        CALL("get_next_available_stream_id"),
        PEER("send_headers", 1, RESP), PEER("send_data", 1, b"ok", end_stream=True),
        GETATTR("open_outbound_streams"), CALL("get_next_available_stream_id")]),
    Case("send-request-body", True, peer={}, steps=lambda w: [
        CALL("send_headers", 1, POST), CALL("send_data", 1, b"a" * 1000),
        CALL("send_data", 1, b"b"), CALL("end_stream", 1),
        PEER("send_headers", 1, RESP, end_stream=True), GETATTR("open_outbound_streams")]),
    Case("send-data-after-end-stream", True, peer={}, core=(), steps=lambda w: [
        CALL("send_headers", 1, POST), CALL("end_stream", 1), CALL("send_data", 1, b"late"),
        PEER("send_headers", 1, RESP, end_stream=True), GETATTR("open_outbound_streams")],
        expect=conn_error("STREAM_CLOSED"),
        why="send_data on a stream we ended: h2 raises ProtocolError and silently closes the "
            "stream (no RST_STREAM), then takes the server's response on it as a connection "
            "error (GOAWAY STREAM_CLOSED); h2core raises StreamClosedError and leaves the stream "
            "half-closed (local), the response arrives; RFC 9113 5.1 (half-closed (local): the "
            "peer may still send) agrees with h2core"),
    Case("send-request-trailers", True, peer={}, steps=lambda w: [
        CALL("send_headers", 1, POST), CALL("send_data", 1, b"grpc"),
        CALL("send_headers", 1, [(b"x-checksum", b"1")], end_stream=True),
        PEER("send_headers", 1, RESP), PEER("send_data", 1, b"x" * 16000),
        PEER("send_data", 1, b"y" * 16000), CALL("acknowledge_received_data", 32000, 1),
        PEER("send_data", 1, b"z" * 8000), CALL("acknowledge_received_data", 8000, 1),
        PEER("send_headers", 1, [(b"grpc-status", b"0")], end_stream=True)]),
    Case("send-request-concurrency", True, peer={SettingCodes.MAX_CONCURRENT_STREAMS: 2},
         steps=lambda w: [
        GETATTR("remote_settings.max_concurrent_streams"),
        CALL("send_headers", 1, GET, end_stream=True), CALL("send_headers", 3, POST),
        GETATTR("open_outbound_streams"), CALL("send_headers", 5, GET, end_stream=True),
        PEER("send_headers", 1, RESP, end_stream=True), GETATTR("open_outbound_streams"),
        CALL("send_headers", 5, GET, end_stream=True), CALL("reset_stream", 3, ErrorCodes.CANCEL),
        GETATTR("open_outbound_streams"), CALL("get_next_available_stream_id")],
        expect=(("RST_STREAM", 3, "CANCEL"),)),
    Case("send-request-flow-control", True, peer={SettingCodes.INITIAL_WINDOW_SIZE: 10},
         steps=lambda w: [
        CALL("send_headers", 1, POST), CALL("local_flow_control_window", 1),
        CALL("send_data", 1, b"x" * 11), CALL("send_data", 1, b"x" * 10),
        CALL("local_flow_control_window", 1), PEER("acknowledge_received_data", 10, 1),
        PEER("increment_flow_control_window", 100, stream_id=1),
        CALL("local_flow_control_window", 1), CALL("end_stream", 1)]),
]


def _check_names() -> None:
    names = [c.name for c in CASES]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, dup


_check_names()


def _params() -> list[Any]:
    out = []
    for case in CASES:
        modes = ["frames"] if case.peer is not None else ["frames", "joined"]
        if case.peer is None and case.dribble:
            modes.append("dribble")
        marks = [pytest.mark.xfail(strict=True, reason=case.why)] if case.core is not None else []
        out.extend(pytest.param(case, mode, id=f"{case.name}-{mode}", marks=marks)
                   for mode in modes)
    return out


def compare(ours: list[Any], reference: list[Any]) -> None:
    """Fails with the first record where the twins part (a short message, without pytest's
    diff of the whole traces nor its traceback: the xfail cases fail cheaply)."""
    if ours == reference:
        return
    i = next((i for i, (a, b) in enumerate(zip(ours, reference, strict=False)) if a != b),
             min(len(ours), len(reference)))
    before = "".join(f"\n    {t}" for t in reference[max(0, i - 3):i])
    pytest.fail(f"the twins part at record {i} (agreeing before it:{before or ' -'})\n"
                f"  h2:     {reference[i] if i < len(reference) else '(nothing)'}\n"
                f"  h2core: {ours[i] if i < len(ours) else '(nothing)'}", pytrace=False)


@pytest.mark.parametrize(("case", "mode"), _params())
def test_twins_agree(case: Case, mode: str) -> None:
    compare(run(case, "core", mode), run(case, "h2", mode))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_outcome(case: Case) -> None:
    """What each twin does with the case: h2 as ``expect`` says, h2core likewise or, where the
    twins disagree, as ``core`` says (the xfail reason of ``test_twins_agree``)."""
    assert outcome(run(case, "h2")) == case.expect
    assert outcome(run(case, "core")) == (case.expect if case.core is None else case.core)
