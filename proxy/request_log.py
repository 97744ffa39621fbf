"""The request log: one line per request on stdout from Knative's ``requestLogTemplate``.

Knative renders a Go ``text/template`` (pkg/http/request_log.go) with ``.Request`` (the Go
``*http.Request``), ``.Response`` (``Code``, ``Size``, ``Latency`` in seconds), ``.Revision``
(``Name``, ``Namespace``, ``Service``, ``Configuration``, ``PodName``, ``PodIP``) and ``.TraceID``
(W3C ``traceparent``, else ``X-B3-Traceid``). We compile the template once into literal pieces and
getters. Supported actions: a field reference (``{{.Request.Method}}``), the functions ``js``,
``html``, ``urlquery`` and ``print`` applied to one, ``{{index .Request.Header "Name"}}``,
comments, and the ``{{-``/``-}}`` trim markers. A template Go would not parse is refused when
compiled (the queue-proxy then runs without a request log, as Knative does); a field that does
not exist fails when rendered, and the line says so the way Knative's does. An empty template
means no request log; a newline is added unless the template ends with one.
"""

from __future__ import annotations

import re
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any, TextIO

__all__ = [
    "DEFAULT_TEMPLATE", "RequestLog", "TemplateError", "compile_template", "go_js_escape",
    "go_html_escape",
]

# Knative's observability.DefaultRequestLogTemplate: the queue-proxy's template when
# OBSERVABILITY_CONFIG turns the request log on and names none.
DEFAULT_TEMPLATE = (
    '{"httpRequest": {"requestMethod": "{{.Request.Method}}", "requestUrl": '
    '"{{js .Request.RequestURI}}", "requestSize": "{{.Request.ContentLength}}", "status": '
    '{{.Response.Code}}, "responseSize": "{{.Response.Size}}", "userAgent": '
    '"{{js .Request.UserAgent}}", "remoteIp": "{{js .Request.RemoteAddr}}", "serverIp": '
    '"{{.Revision.PodIP}}", "referer": "{{js .Request.Referer}}", "latency": '
    '"{{.Response.Latency}}s", "protocol": "{{.Request.Proto}}"}, "traceId": "{{.TraceID}}"}'
)


class TemplateError(ValueError):
    pass


class _ExecError(Exception):
    pass


_HEX = "0123456789ABCDEF"
_JS_SPECIAL = {
    "\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
    "=": "\\u003D",
}


def go_js_escape(s: str) -> str:
    """Go's ``template.JSEscapeString``."""
    out = []
    for c in s:
        special = _JS_SPECIAL.get(c)
        if special is not None:
            out.append(special)
        elif c < " ":
            o = ord(c)
            out.append("\\u00" + _HEX[o >> 4] + _HEX[o & 15])
        elif ord(c) >= 0x80 and not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


_HTML = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\x00": "\ufffd"}


def go_html_escape(s: str) -> str:
    """Go's ``template.HTMLEscapeString``."""
    return "".join(_HTML.get(c, c) for c in s)


_FUNCS: dict[str, Callable[[str], str]] = {
    "js": go_js_escape,
    "html": go_html_escape,
    "urlquery": lambda s: urllib.parse.quote_plus(s),
    "print": lambda s: s,
}


def canonical(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey`` for ASCII token names."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def _header_values(ex: Any, name: str) -> list[str]:
    """Values of header ``name`` as Go's Header map holds them: keys are canonical."""
    return [v.decode("latin-1") for n, v in ex.headers if canonical(n.decode("latin-1")) == name]


def _first(ex: Any, lname: bytes) -> str:
    for (_n, v), ln in zip(ex.headers, ex.lnames, strict=True):
        if ln == lname:
            return v.decode("latin-1")
    return ""


def trace_id(ex: Any) -> str:
    """Knative's ``ExtractTraceID``: traceparent's second field, else X-B3-Traceid."""
    tp = _first(ex, b"traceparent")
    if tp:
        parts = tp.split("-", 2)
        if len(parts) >= 2:
            return parts[1]
    return _first(ex, b"x-b3-traceid")


def _s(b: bytes | None) -> str:
    return (b or b"").decode("latin-1")


def _proto(ex: Any) -> tuple[str, int, int]:
    if getattr(ex, "sid", 0):  # a stream of an HTTP/2 connection (proxy.engine.h2.H2Stream)
        return "HTTP/2.0", 2, 0
    return ("HTTP/1.0", 1, 0) if ex.http10 else ("HTTP/1.1", 1, 1)


_REQUEST: dict[str, Callable[[Any], Any]] = {
    "Method": lambda ex: _s(ex.method),
    "URL": lambda ex: _s(ex.target),
    "RequestURI": lambda ex: _s(ex.target),
    "Proto": lambda ex: _proto(ex)[0],
    "ProtoMajor": lambda ex: _proto(ex)[1],
    "ProtoMinor": lambda ex: _proto(ex)[2],
    "Host": lambda ex: _s(ex.fields[0]),
    "RemoteAddr": lambda ex: ex.conn.peer_addr,
    "UserAgent": lambda ex: _s(ex.fields[1]),
    "Referer": lambda ex: _first(ex, b"referer"),
    "ContentLength": lambda ex: int(ex.fields[6]) if ex.fields[6] else (-1 if ex.chunked else 0),
}


def _field(path: str) -> Callable[[Any, dict], Any]:
    parts = path[1:].split(".")
    if parts == ["TraceID"]:
        return lambda ex, d: trace_id(ex)
    if len(parts) == 2 and parts[0] == "Request":
        getter = _REQUEST.get(parts[1])
        if getter is not None:
            req_getter: Callable[[Any], Any] = getter
            return lambda ex, d: req_getter(ex)
    if len(parts) == 2 and parts[0] in ("Response", "Revision"):
        root, name = parts

        def get(ex: Any, data: dict) -> Any:
            value = data[root].get(name)
            if value is None:
                raise _ExecError(f"can't evaluate field {name}")
            return value

        return get

    def missing(ex: Any, data: dict) -> Any:
        raise _ExecError(f"can't evaluate field {path}")

    return missing


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')


def _action(body: str) -> Callable[[Any, dict], str] | None:
    if body.startswith("/*"):
        if not body.endswith("*/"):
            raise TemplateError("unclosed comment")
        return None
    words = _TOKEN.findall(body)
    if len(words) == 1 and words[0].startswith("."):
        getter = _field(words[0])
        return lambda ex, d: _fmt(getter(ex, d))
    if len(words) == 2 and words[0] in _FUNCS and words[1].startswith("."):
        fn, getter = _FUNCS[words[0]], _field(words[1])
        return lambda ex, d: fn(_fmt(getter(ex, d)))
    if len(words) == 3 and words[0] == "index" and words[1] == ".Request.Header" \
            and words[2].startswith('"'):
        name = words[2][1:-1]
        return lambda ex, d: "[" + " ".join(_header_values(ex, name)) + "]"
    raise TemplateError(f"unsupported action {{{{{body}}}}}")


def compile_template(text: str) -> Callable[[Any, dict], str]:
    """Compiles a template (the trailing newline rule is ``RequestLog``'s)."""
    pieces: list[Any] = []
    pos = 0
    literal_trim_next = False
    while True:
        start = text.find("{{", pos)
        literal = text[pos:] if start < 0 else text[pos:start]
        if literal_trim_next:
            literal = literal.lstrip(" \t\r\n")
        if start < 0:
            pieces.append(literal)
            break
        end = text.find("}}", start + 2)
        if end < 0:
            raise TemplateError("unclosed action")
        body = text[start + 2 : end]
        if body.startswith("- ") or body == "-" or body.startswith("-\n") or body.startswith("-\t"):
            literal = literal.rstrip(" \t\r\n")
            body = body[1:]
        literal_trim_next = False
        if body.endswith(" -") or body.endswith("\n-") or body.endswith("\t-"):
            literal_trim_next = True
            body = body[:-1]
        pieces.append(literal)
        action = _action(body.strip())
        if action is not None:
            pieces.append(action)
        pos = end + 2

    def render(ex: Any, data: dict) -> str:
        return "".join(p if isinstance(p, str) else p(ex, data) for p in pieces)

    return render


class RequestLog:
    """Writes one rendered line per request; ``probes`` says whether probes are logged."""

    def __init__(self, template: str, revision: dict[str, str], probes: bool = False,
                 out: TextIO | None = None) -> None:
        self.enabled = bool(template)  # Knative: an empty template turns the log off
        if template and not template.endswith("\n"):
            template += "\n"
        self.render = compile_template(template)
        self.revision = revision
        self.probes = probes
        self.out = out or sys.stdout

    def log(self, ex: Any, now: float) -> None:
        if not self.enabled:
            return
        code = ex.resp_status or 502
        latency = max(0.0, now - ex.started)
        data = {
            "Response": {"Code": code, "Size": ex.resp_bytes, "Latency": latency},
            "Revision": self.revision,
        }
        try:
            line = self.render(ex, data)
        except _ExecError:
            line = (
                f"Invalid request log template: method: {_s(ex.method)}, response code: "
                f"{code}, latency: {_fmt(latency)}, url: {_s(ex.target)}\n"
            )
        self.out.write(line)
        self.out.flush()
