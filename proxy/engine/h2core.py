"""A lean HTTP/2 connection (RFC 9113), sans-IO, for the engine: the subset of the ``h2``
library's ``H2Connection`` interface that ``proxy.engine.h2`` uses, with the same events,
exceptions and error codes, and none of its generality (no priority tree, no server push, no
text headers, no user-visible settings negotiation beyond what a proxy needs).

Why: ``h2`` runs a state machine, a validation pipeline and frame objects per frame; that was
nearly all of an HTTP/2 request's cost here (``bench/run.py --protocol h2c``). This core reads
and writes frames straight from and into byte strings and keeps per-stream state in small
lists. ``h2`` remains the reference (``tests/h2`` run against both, selected by
``proxy.engine.h2.core``) and the pure-mode twin.

What it checks, as ``h2`` does (and RFC 9113 asks): the client preface and the first SETTINGS;
frame sizes against SETTINGS_MAX_FRAME_SIZE; stream ids (odd from clients, increasing);
SETTINGS_MAX_CONCURRENT_STREAMS; header blocks (CONTINUATION on the same stream, nothing in
between, a bounded number); pseudo-headers (known, once, first, the required ones); header names
(lower case, no connection-specific fields, TE only "trailers"); header values (no NUL, CR or
LF, no surrounding whitespace); flow control windows both ways; frames on closed streams.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from h2.errors import ErrorCodes
from h2.exceptions import (
    FlowControlError,
    FrameTooLargeError,
    ProtocolError,
    StreamClosedError,
    TooManyStreamsError,
)

from _speedups.head import h2_frame
from _speedups.hpack import Decoder, Encoder

__all__ = ["Core", "Settings"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)
MAX_WINDOW = (1 << 31) - 1
RESET_MEMORY = 256  # reset streams remembered (their late frames are not connection errors)
MAX_CONTINUATIONS = 64  # header blocks longer than this many frames: a CONTINUATION flood

# Stream states
OPEN, HALF_LOCAL, HALF_REMOTE, CLOSED = 1, 2, 3, 4

_U32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")
_GOAWAY = struct.Struct(">LL")

_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})


def _u32(b: bytes, i: int) -> int:
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


# --------------------------------------------------------------------------------------------
# Events: the attributes proxy.engine.h2 reads, named as h2's


class Event:
    __slots__ = ()


class RequestReceived(Event):
    __slots__ = ("stream_id", "headers", "stream_ended")

    def __init__(self, sid: int, headers: list, ended: bool) -> None:
        self.stream_id = sid
        self.headers = headers
        self.stream_ended = True if ended else None


class ResponseReceived(RequestReceived):
    __slots__ = ()


class TrailersReceived(Event):
    __slots__ = ("stream_id", "headers")

    def __init__(self, sid: int, headers: list) -> None:
        self.stream_id = sid
        self.headers = headers


class DataReceived(Event):
    __slots__ = ("stream_id", "data", "flow_controlled_length", "stream_ended")

    def __init__(self, sid: int, data: bytes, n: int, ended: bool) -> None:
        self.stream_id = sid
        self.data = data
        self.flow_controlled_length = n
        self.stream_ended = True if ended else None


class StreamEnded(Event):
    __slots__ = ("stream_id",)

    def __init__(self, sid: int) -> None:
        self.stream_id = sid


class StreamReset(Event):
    __slots__ = ("stream_id", "error_code")

    def __init__(self, sid: int, code: int) -> None:
        self.stream_id = sid
        self.error_code = code


class WindowUpdated(Event):
    __slots__ = ("stream_id", "delta")

    def __init__(self, sid: int, delta: int) -> None:
        self.stream_id = sid
        self.delta = delta


class RemoteSettingsChanged(Event):
    __slots__ = ()


class PingReceived(Event):
    __slots__ = ()


class PriorityUpdated(Event):
    __slots__ = ()


class UnknownFrameReceived(Event):
    __slots__ = ()


class ConnectionTerminated(Event):
    __slots__ = ("error_code", "last_stream_id")

    def __init__(self, code: int, last: int) -> None:
        self.error_code = code
        self.last_stream_id = last


# PERF: the events of every request, made without a call to their class (no argument parsing).


def _request_event(sid: int, headers: list, ended: bool) -> RequestReceived:
    ev = RequestReceived.__new__(RequestReceived)
    ev.stream_id = sid
    ev.headers = headers
    ev.stream_ended = True if ended else None
    return ev


def _response_event(sid: int, headers: list, ended: bool) -> ResponseReceived:
    ev = ResponseReceived.__new__(ResponseReceived)
    ev.stream_id = sid
    ev.headers = headers
    ev.stream_ended = True if ended else None
    return ev


def _data_event(sid: int, data: bytes, n: int, ended: bool) -> DataReceived:
    ev = DataReceived.__new__(DataReceived)
    ev.stream_id = sid
    ev.data = data
    ev.flow_controlled_length = n
    ev.stream_ended = True if ended else None
    return ev


def _ended_event(sid: int) -> StreamEnded:
    ev = StreamEnded.__new__(StreamEnded)
    ev.stream_id = sid
    return ev


# --------------------------------------------------------------------------------------------


class Settings:
    """The peer's settings, by name (the attributes proxy.engine.h2 reads)."""

    __slots__ = ("header_table_size", "max_concurrent_streams", "initial_window_size",
                 "max_frame_size", "max_header_list_size")

    def __init__(self) -> None:
        self.header_table_size = 4096
        self.max_concurrent_streams = 1 << 31
        self.initial_window_size = 65535
        self.max_frame_size = 16384
        self.max_header_list_size = 1 << 31


class _Stream:
    __slots__ = ("state", "send_window", "recv_window", "unacked", "got_head", "ended_in")

    def __init__(self, send_window: int, recv_window: int) -> None:
        self.state = OPEN
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0
        self.got_head = False
        self.ended_in = False


class Core:
    """One HTTP/2 connection, either side. ``local`` are the settings we announce (by code)."""

    def __init__(self, client: bool, local: dict[int, int]) -> None:
        self.client = client
        self.announce = {int(k): v for k, v in local.items()}  # sent in our SETTINGS
        if client:
            self.announce.setdefault(ENABLE_PUSH, 0)
        else:
            self.announce.pop(ENABLE_PUSH, None)  # a server never sends it (RFC 9113 6.5.2)
        self.local = {HEADER_TABLE_SIZE: 4096, MAX_CONCURRENT_STREAMS: 1 << 31,
                      INITIAL_WINDOW_SIZE: 65535, MAX_FRAME_SIZE: 16384,
                      MAX_HEADER_LIST_SIZE: 1 << 20, **self.announce}
        self.remote_settings = Settings()
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.decoder.max_header_list_size = self.local[MAX_HEADER_LIST_SIZE]
        self.local_window = self.local[INITIAL_WINDOW_SIZE]
        self.local_max_frame = self.local[MAX_FRAME_SIZE]
        self.streams: dict[int, _Stream] = {}
        self.out: list[bytes] = []
        self.buf = b""
        self.preface = not client  # a server first reads the client's preface
        self.first_settings = True  # the peer's first frame must be SETTINGS
        self.send_window = 65535  # connection level, ours to the peer
        self.recv_window = 65535  # connection level, the peer's to us
        self.recv_max = 65535
        self.unacked = 0
        self.highest_inbound_stream_id = 0
        self.highest_outbound = 0
        self.closed = False
        self.open_inbound = 0
        self.open_outbound_streams = 0
        self.reset_sids: dict[int, None] = {}  # streams reset either way, the last few
        # A header block being read: [stream id, flags of its HEADERS, fragments, count]
        self.block: list[Any] | None = None

    # ------------------------------------------------------------------ setup

    def initiate_connection(self) -> None:
        if self.client:
            self.out.append(PREFACE)
        payload = b"".join(_SETTING.pack(k, v) for k, v in self.announce.items())
        self.out.append(h2_frame(SETTINGS, 0, 0, payload))

    def initiate_upgrade_connection(self, settings_header: bytes) -> None:
        """Server side of an h2c upgrade: the client's HTTP2-Settings are its first settings,
        and stream 1 (the upgraded request) is half-closed (remote)."""
        raw = base64.urlsafe_b64decode(settings_header + b"=" * (-len(settings_header) % 4))
        self._apply_settings(raw)
        self.initiate_connection()
        st = self.streams[1] = _Stream(self.remote_settings.initial_window_size,
                                       self.local_window)
        st.state = HALF_REMOTE
        st.got_head = True
        self.highest_inbound_stream_id = 1
        self.open_inbound += 1

    def increment_flow_control_window(self, increment: int) -> None:
        self.recv_window += increment
        self.recv_max += increment
        self.out.append(h2_frame(WINDOW_UPDATE, 0, 0, _U32.pack(increment)))

    # ------------------------------------------------------------------ sending

    def data_to_send(self) -> bytes:
        if not self.out:
            return b""
        data = b"".join(self.out)
        self.out = []
        return data

    @property
    def max_outbound_frame_size(self) -> int:
        return self.remote_settings.max_frame_size

    def get_next_available_stream_id(self) -> int:
        return self.highest_outbound + 2 if self.highest_outbound else (1 if self.client else 2)

    def _stream(self, sid: int) -> _Stream:
        st = self.streams.get(sid)
        if st is None or st.state == CLOSED:
            raise StreamClosedError(sid)
        return st

    def send_headers(self, sid: int, headers: list, end_stream: bool = False) -> None:
        if self.closed:
            raise ProtocolError("connection closed")
        st = self.streams.get(sid)
        if st is None:
            if not self.client or sid <= self.highest_outbound:
                raise StreamClosedError(sid)
            if self.open_outbound_streams >= self.remote_settings.max_concurrent_streams:
                raise TooManyStreamsError("the peer's MAX_CONCURRENT_STREAMS is reached")
            st = self.streams[sid] = _Stream(self.remote_settings.initial_window_size,
                                             self.local_window)
            self.highest_outbound = sid
            self.open_outbound_streams += 1
        elif st.state in (CLOSED, HALF_LOCAL):
            raise StreamClosedError(sid)
        block = self.encoder.encode(headers)
        size = self.remote_settings.max_frame_size
        flags = END_STREAM if end_stream else 0
        if len(block) <= size:
            self.out.append(h2_frame(HEADERS, flags | END_HEADERS, sid, block))
        else:
            self.out.append(h2_frame(HEADERS, flags, sid, block[:size]))
            rest = block[size:]
            while rest:
                part, rest = rest[:size], rest[size:]
                self.out.append(h2_frame(CONTINUATION, 0 if rest else END_HEADERS, sid, part))
        if end_stream:
            self._end_local(sid, st)

    def send_data(self, sid: int, data: bytes, end_stream: bool = False) -> None:
        st = self._stream(sid)
        if st.state == HALF_LOCAL:
            raise StreamClosedError(sid)
        n = len(data)
        if n > self.remote_settings.max_frame_size:
            raise FrameTooLargeError("DATA larger than the peer's SETTINGS_MAX_FRAME_SIZE")
        if n > st.send_window or n > self.send_window:
            raise FlowControlError("DATA over the flow control window")
        st.send_window -= n
        self.send_window -= n
        self.out.append(h2_frame(DATA, END_STREAM if end_stream else 0, sid, data))
        if end_stream:
            self._end_local(sid, st)

    def end_stream(self, sid: int) -> None:
        st = self._stream(sid)
        if st.state == HALF_LOCAL:
            raise StreamClosedError(sid)
        self.out.append(h2_frame(DATA, END_STREAM, sid))
        self._end_local(sid, st)

    def _end_local(self, sid: int, st: _Stream) -> None:
        if st.state == HALF_REMOTE:
            self._close(sid, st)
        else:
            st.state = HALF_LOCAL

    def _close(self, sid: int, st: _Stream) -> None:
        if st.state != CLOSED:
            st.state = CLOSED
            if (sid & 1) == (1 if self.client else 0):
                self.open_outbound_streams -= 1
            else:
                self.open_inbound -= 1
        self.streams.pop(sid, None)

    def _was_reset(self, sid: int) -> None:
        """Remembers (the last RESET_MEMORY of) the streams reset either way."""
        reset = self.reset_sids
        reset[sid] = None
        if len(reset) > RESET_MEMORY:
            del reset[next(iter(reset))]

    def reset_stream(self, sid: int, error_code: int = 0) -> None:
        st = self.streams.get(sid)
        if st is None or st.state == CLOSED:
            raise StreamClosedError(sid)
        self.out.append(h2_frame(RST_STREAM, 0, sid, _U32.pack(int(error_code))))
        self._close(sid, st)
        self._was_reset(sid)

    def local_flow_control_window(self, sid: int) -> int:
        st = self._stream(sid)
        return min(st.send_window, self.send_window)

    def acknowledge_received_data(self, n: int, sid: int) -> None:
        """``n`` flow-controlled bytes of ``sid`` are consumed: WINDOW_UPDATEs once half of a
        window is, for the connection and (while it is open) the stream."""
        if n <= 0:
            return
        self.unacked += n
        if self.unacked >= self.recv_max // 2:
            self.recv_window += self.unacked
            self.out.append(h2_frame(WINDOW_UPDATE, 0, 0, _U32.pack(self.unacked)))
            self.unacked = 0
        st = self.streams.get(sid)
        if st is not None and st.state in (OPEN, HALF_LOCAL) and not st.ended_in:
            st.unacked += n
            if st.unacked >= self.local_window // 2:
                st.recv_window += st.unacked
                self.out.append(h2_frame(WINDOW_UPDATE, 0, sid, _U32.pack(st.unacked)))
                st.unacked = 0

    def close_connection(self, error_code: int = 0, last_stream_id: int | None = None) -> None:
        last = self.highest_inbound_stream_id if last_stream_id is None else last_stream_id
        self.out.append(h2_frame(GOAWAY, 0, 0, _GOAWAY.pack(last, int(error_code))))
        self.closed = True

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> list[Event]:
        """The events in ``data``. A connection error raises ``ProtocolError`` (its
        ``error_code`` says which); the caller answers it with ``close_connection``."""
        buf = self.buf + data if self.buf else data
        events: list[Event] = []
        pos = 0
        if self.preface:
            if len(buf) < 24:
                if not PREFACE.startswith(buf):
                    raise ProtocolError("Invalid HTTP/2 preamble.")
                self.buf = buf
                return events
            if buf[:24] != PREFACE:
                raise ProtocolError("Invalid HTTP/2 preamble.")
            self.preface = False
            pos = 24
        limit = self.local_max_frame
        end = len(buf)
        while end - pos >= 9:
            n = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            if n > limit:
                raise self._error(f"frame of {n} bytes over SETTINGS_MAX_FRAME_SIZE",
                                  ErrorCodes.FRAME_SIZE_ERROR)
            if end - pos - 9 < n:
                break
            kind = buf[pos + 3]
            flags = buf[pos + 4]
            sid = ((buf[pos + 5] & 0x7F) << 24) | (buf[pos + 6] << 16) | (buf[pos + 7] << 8) \
                | buf[pos + 8]
            payload = buf[pos + 9:pos + 9 + n]
            pos += 9 + n
            self._frame_in(kind, flags, sid, payload, events)
        self.buf = buf[pos:] if pos < end else b""
        return events

    def _error(self, message: str, code: int = ErrorCodes.PROTOCOL_ERROR) -> ProtocolError:
        e = ProtocolError(message)
        e.error_code = code  # type: ignore[assignment]
        return e

    def _frame_in(self, kind: int, flags: int, sid: int, payload: bytes,
                  events: list[Event]) -> None:
        if self.first_settings:
            if kind != SETTINGS or flags & ACK:
                raise self._error("the first frame must be SETTINGS")
            self.first_settings = False
        block = self.block
        if block is not None and (kind != CONTINUATION or sid != block[0]):
            raise self._error("a header block was interrupted")
        if kind == DATA:
            self._data(flags, sid, payload, events)
        elif kind == HEADERS:
            self._headers(flags, sid, payload, events)
        elif kind == CONTINUATION:
            if block is None:
                raise self._error("CONTINUATION without a header block")
            block[2].append(payload)
            block[3] += 1
            if block[3] > MAX_CONTINUATIONS:
                raise self._error("too many CONTINUATION frames", ErrorCodes.ENHANCE_YOUR_CALM)
            if flags & END_HEADERS:
                self.block = None
                self._header_block(block[0], block[1], b"".join(block[2]), events)
        elif kind == SETTINGS:
            if sid:
                raise self._error("SETTINGS on a stream")
            if flags & ACK:
                if payload:
                    raise self._error("SETTINGS ACK with a payload",
                                      ErrorCodes.FRAME_SIZE_ERROR)
                return
            if len(payload) % 6:
                raise self._error("SETTINGS of a bad length", ErrorCodes.FRAME_SIZE_ERROR)
            delta = self._apply_settings(payload)
            if delta:
                for st in self.streams.values():
                    st.send_window += delta
                    if st.send_window > MAX_WINDOW:
                        raise self._error("window over 2^31-1", ErrorCodes.FLOW_CONTROL_ERROR)
            self.out.append(h2_frame(SETTINGS, ACK, 0))
            events.append(RemoteSettingsChanged())
        elif kind == WINDOW_UPDATE:
            if len(payload) != 4:
                raise self._error("WINDOW_UPDATE of a bad length", ErrorCodes.FRAME_SIZE_ERROR)
            inc = _u32(payload, 0) & MAX_WINDOW
            if sid == 0:
                if inc == 0:
                    raise self._error("WINDOW_UPDATE of 0")
                self.send_window += inc
                if self.send_window > MAX_WINDOW:
                    raise self._error("window over 2^31-1", ErrorCodes.FLOW_CONTROL_ERROR)
            else:
                wst = self.streams.get(sid)
                if wst is None:
                    self._check_idle(sid)
                    return
                if inc == 0:
                    self._reset(sid, wst, ErrorCodes.PROTOCOL_ERROR, events)
                    return
                wst.send_window += inc
                if wst.send_window > MAX_WINDOW:
                    self._reset(sid, wst, ErrorCodes.FLOW_CONTROL_ERROR, events)
                    return
            events.append(WindowUpdated(sid, inc))
        elif kind == RST_STREAM:
            if len(payload) != 4:
                raise self._error("RST_STREAM of a bad length", ErrorCodes.FRAME_SIZE_ERROR)
            if sid == 0:
                raise self._error("RST_STREAM on stream 0")
            rst = self.streams.get(sid)
            if rst is None:
                self._check_idle(sid)
                return
            self._close(sid, rst)
            self._was_reset(sid)
            events.append(StreamReset(sid, _u32(payload, 0)))
        elif kind == PING:
            if sid:
                raise self._error("PING on a stream")
            if len(payload) != 8:
                raise self._error("PING of a bad length", ErrorCodes.FRAME_SIZE_ERROR)
            if not flags & ACK:
                self.out.append(h2_frame(PING, ACK, 0, payload))
                events.append(PingReceived())
        elif kind == GOAWAY:
            if sid:
                raise self._error("GOAWAY on a stream")
            if len(payload) < 8:
                raise self._error("GOAWAY of a bad length", ErrorCodes.FRAME_SIZE_ERROR)
            events.append(ConnectionTerminated(_u32(payload, 4), _u32(payload, 0) & MAX_WINDOW))
        elif kind == PRIORITY:
            if sid == 0:
                raise self._error("PRIORITY on stream 0")
            if len(payload) != 5:
                raise self._error("PRIORITY of a bad length", ErrorCodes.FRAME_SIZE_ERROR)
            events.append(PriorityUpdated())
        elif kind == PUSH_PROMISE:
            raise self._error("PUSH_PROMISE is not accepted")
        else:
            events.append(UnknownFrameReceived())

    def _check_idle(self, sid: int) -> None:
        """A frame for a stream we do not hold: fine if it once was (closed), an error if it
        never was (idle)."""
        highest = self.highest_inbound_stream_id if (sid & 1) != (1 if self.client else 0) \
            else self.highest_outbound
        if sid > highest:
            raise self._error(f"frame on idle stream {sid}")

    def _reset(self, sid: int, st: _Stream, code: int, events: list[Event]) -> None:
        self.out.append(h2_frame(RST_STREAM, 0, sid, _U32.pack(code)))
        self._close(sid, st)
        self._was_reset(sid)
        events.append(StreamReset(sid, code))

    def _apply_settings(self, payload: bytes) -> int:
        rs = self.remote_settings
        delta = 0
        for i in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, i)
            if key == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise self._error("INITIAL_WINDOW_SIZE over 2^31-1",
                                      ErrorCodes.FLOW_CONTROL_ERROR)
                delta += value - rs.initial_window_size
                rs.initial_window_size = value
            elif key == MAX_FRAME_SIZE:
                if not 16384 <= value <= (1 << 24) - 1:
                    raise self._error("MAX_FRAME_SIZE out of range")
                rs.max_frame_size = value
            elif key == MAX_CONCURRENT_STREAMS:
                rs.max_concurrent_streams = value
            elif key == HEADER_TABLE_SIZE:
                rs.header_table_size = value
                self.encoder.header_table_size = value
            elif key == ENABLE_PUSH:
                if value > 1:
                    raise self._error("ENABLE_PUSH not 0 or 1")
            elif key == MAX_HEADER_LIST_SIZE:
                rs.max_header_list_size = value
        return delta

    def _data(self, flags: int, sid: int, payload: bytes, events: list[Event]) -> None:
        if sid == 0:
            raise self._error("DATA on stream 0")
        n = len(payload)
        data = payload
        if flags & PADDED:
            if not payload or payload[0] >= n:
                raise self._error("DATA padding too long")
            data = payload[1:n - payload[0]]
        self.recv_window -= n
        if self.recv_window < 0:
            raise self._error("DATA over the connection window", ErrorCodes.FLOW_CONTROL_ERROR)
        st = self.streams.get(sid)
        if st is None or st.state in (HALF_REMOTE, CLOSED) or not st.got_head:
            # Flow control still counts it (the connection's window is given back); the
            # stream is told it is closed.
            self.acknowledge_received_data(n, 0)
            if st is None:
                self._check_idle(sid)
                self.out.append(h2_frame(RST_STREAM, 0, sid, _U32.pack(ErrorCodes.STREAM_CLOSED)))
            else:
                self._reset(sid, st, ErrorCodes.STREAM_CLOSED, events)
            return
        st.recv_window -= n
        if st.recv_window < 0:
            self._reset(sid, st, ErrorCodes.FLOW_CONTROL_ERROR, events)
            return
        end = bool(flags & END_STREAM)
        events.append(_data_event(sid, data, n, end))
        if end:
            self._end_remote(sid, st, events)

    def _end_remote(self, sid: int, st: _Stream, events: list[Event]) -> None:
        st.ended_in = True
        events.append(_ended_event(sid))
        if st.state == HALF_LOCAL:
            self._close(sid, st)
        else:
            st.state = HALF_REMOTE

    def _headers(self, flags: int, sid: int, payload: bytes, events: list[Event]) -> None:
        if sid == 0:
            raise self._error("HEADERS on stream 0")
        data = payload
        if flags & PADDED:
            if not data or data[0] >= len(data):
                raise self._error("HEADERS padding too long")
            data = data[1:len(data) - data[0]]
        if flags & PRIORITY_FLAG:
            if len(data) < 5:
                raise self._error("HEADERS priority cut short", ErrorCodes.FRAME_SIZE_ERROR)
            data = data[5:]
        if flags & END_HEADERS:
            self._header_block(sid, flags, data, events)
        else:
            self.block = [sid, flags, [data], 0]

    def _header_block(self, sid: int, flags: int, block: bytes, events: list[Event]) -> None:
        try:
            headers = self.decoder.decode(block, raw=True)
        except Exception as exc:  # hpack's errors: the connection's compression state is lost
            raise self._error(f"header block: {exc}", ErrorCodes.COMPRESSION_ERROR) from None
        end = bool(flags & END_STREAM)
        st = self.streams.get(sid)
        inbound = (sid & 1) != (1 if self.client else 0)
        if st is None:
            if not inbound or self.client:
                # A client gets HEADERS only on streams it opened (no push).
                self._check_idle(sid)
                return  # a closed stream: ignored
            if sid <= self.highest_inbound_stream_id:
                if sid in self.reset_sids:
                    # Reset (RFC 9113 5.1): the client's trailers crossing our RST_STREAM, or
                    # a client that goes on after its own. A stream error, as h2 answers it.
                    self.out.append(
                        h2_frame(RST_STREAM, 0, sid, _U32.pack(ErrorCodes.STREAM_CLOSED)))
                    return
                raise self._error(f"stream {sid} is closed", ErrorCodes.STREAM_CLOSED)
            self.highest_inbound_stream_id = sid
            if self.open_inbound >= self.local[MAX_CONCURRENT_STREAMS]:
                self.out.append(h2_frame(RST_STREAM, 0, sid, _U32.pack(ErrorCodes.REFUSED_STREAM)))
                return
            st = self.streams[sid] = _Stream(self.remote_settings.initial_window_size,
                                             self.local_window)
            self.open_inbound += 1
        elif st.state in (HALF_REMOTE, CLOSED):
            self._reset(sid, st, ErrorCodes.STREAM_CLOSED, events)
            return
        if not st.got_head:
            why = _check_head(headers, not self.client)
            if why is not None:
                self._reset(sid, st, ErrorCodes.PROTOCOL_ERROR, events)
                return
            st.got_head = True
            if not self.client:
                events.append(_request_event(sid, _join_cookies(headers), end))
            else:
                status = headers[0][1] if headers else b""
                if status[:1] == b"1" and len(status) == 3:
                    if end:  # RFC 9113 8.1: a 1xx ends nothing; with END_STREAM, malformed
                        self._reset(sid, st, ErrorCodes.PROTOCOL_ERROR, events)
                        return
                    st.got_head = False  # 1xx: informational, the real head is still to come
                    return
                events.append(_response_event(sid, headers, end))
        else:
            if not end or _check_trailers(headers) is not None:
                self._reset(sid, st, ErrorCodes.PROTOCOL_ERROR, events)
                return
            events.append(TrailersReceived(sid, headers))
        if end:
            self._end_remote(sid, st, events)


# RFC 9110 5.6.2: the bytes of a token (a field name), lower case only (RFC 9113 8.2.1).
_NAME_BYTES = bytes(
    1 if chr(c) in "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz" else 0
    for c in range(256))


def _check_fields(headers: list, start: int) -> str | None:
    ok = _NAME_BYTES
    for i in range(start, len(headers)):
        name, value = headers[i]
        if not name or name[0] == 58:  # ":"
            return "a pseudo-header after a regular one"
        for c in name:
            if not ok[c]:
                return "a forbidden header name"
        if name in _CONNECTION_SPECIFIC:
            return "a forbidden header name"
        if name == b"te" and value != b"trailers":
            return "TE other than trailers"
        n = len(value)
        if n:
            c = value[0]
            if c == 32 or c == 9:
                return "a malformed header value"
            c = value[n - 1]
            if c == 32 or c == 9:
                return "a malformed header value"
            for c in value:
                if c == 0 or c == 10 or c == 13:
                    return "a malformed header value"
    return None


def _check_head(headers: list, request: bool) -> str | None:
    """RFC 9113 8.3: pseudo-headers first, each once, the required ones; then regular fields."""
    seen = 0  # bits: 1 :method, 2 :scheme, 4 :path, 8 :authority, 16 :status
    connect = False
    i = 0
    n = len(headers)
    while i < n:
        name, value = headers[i]
        if not name or name[0] != 58:  # ":"
            break
        if not request:
            if name != b":status":
                return "an unknown pseudo-header"
            bit = 16
        elif name == b":method":
            bit = 1
            connect = value == b"CONNECT"
        elif name == b":path":
            if not value:
                return "an empty :path"
            bit = 4
        elif name == b":scheme":
            bit = 2
        elif name == b":authority":
            bit = 8
        else:
            return "an unknown pseudo-header"
        if seen & bit:
            return "a repeated pseudo-header"
        seen |= bit
        i += 1
    if request:
        if not seen & 1:
            return "no :method"
        if not connect and (seen & 6) != 6:
            return "no :scheme or :path"
    elif not seen & 16:
        return "no :status"
    return _check_fields(headers, i)


def _check_trailers(headers: list) -> str | None:
    return _check_fields(headers, 0)


def _join_cookies(headers: list) -> list:
    """RFC 9113 8.2.3: cookie crumbs become one field (for an HTTP/1.1 hop)."""
    crumbs = [v for n, v in headers if n == b"cookie"]
    if len(crumbs) < 2:
        return headers
    out = [(n, v) for n, v in headers if n != b"cookie"]
    out.append((b"cookie", b"; ".join(crumbs)))
    return out
