"""The request log: one line per request on stdout from Knative's ``requestLogTemplate``.

Knative renders a Go ``text/template`` (pkg/http/request_log.go) with ``.Request`` (the Go
``*http.Request``), ``.Response`` (``Code``, ``Size``, ``Latency`` in seconds) and ``.Revision``
(``Name``, ``Namespace``, ``Service``, ``Configuration``, ``PodName``, ``PodIP``). We compile the
template once into literal pieces and field getters. Supported actions: a field reference
(``{{.Request.Method}}``), the functions ``js``, ``html``, ``urlquery`` and ``print`` applied to one,
and ``{{index .Request.Header "Name"}}``. Anything else is refused when the template is compiled,
and the queue-proxy then runs without a request log, as Knative does.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.parse
from collections.abc import Callable
from html import escape as html_escape
from typing import Any, TextIO

__all__ = ["RequestLog", "TemplateError", "compile_template"]


class TemplateError(ValueError):
    pass


_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
_JS_ESCAPES = {
    "\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
    "=": "\\u003D", "\n": "\\n", "\r": "\\r", "\t": "\\t",
}


def _js(s: str) -> str:
    return "".join(_JS_ESCAPES.get(c, c if c.isprintable() else f"\\u{ord(c):04X}") for c in s)


_FUNCS: dict[str, Callable[[str], str]] = {
    "js": _js,
    "html": lambda s: html_escape(s, quote=True),
    "urlquery": lambda s: urllib.parse.quote_plus(s),
    "print": lambda s: s,
}


def _header(ex: Any, name: str) -> bytes:
    lname = name.lower().encode()
    for (n, v), ln in zip(ex.headers, ex.lnames):
        if ln == lname:
            return v
    return b""


def _request_field(name: str) -> Callable[[Any, dict], Any]:
    def s(b: bytes | None) -> str:
        return (b or b"").decode("latin-1")

    getters: dict[str, Callable[[Any, dict], Any]] = {
        "Method": lambda ex, r: s(ex.method),
        "URL": lambda ex, r: s(ex.target),
        "RequestURI": lambda ex, r: s(ex.target),
        "Proto": lambda ex, r: "HTTP/1.0" if ex.http10 else "HTTP/1.1",
        "ProtoMajor": lambda ex, r: 1,
        "ProtoMinor": lambda ex, r: 0 if ex.http10 else 1,
        "Host": lambda ex, r: s(ex.fields[0]),
        "RemoteAddr": lambda ex, r: ex.conn.peer_addr,
        "UserAgent": lambda ex, r: s(ex.fields[1]),
        "Referer": lambda ex, r: s(_header(ex, "referer")),
        "ContentLength": lambda ex, r: int(ex.fields[6] or 0) if ex.fields[6] else (
            -1 if ex.chunked else 0),
    }
    if name not in getters:
        raise TemplateError(f"unsupported field .Request.{name}")
    return getters[name]


def _field(path: str) -> Callable[[Any, dict], Any]:
    parts = path.lstrip(".").split(".")
    if len(parts) != 2:
        raise TemplateError(f"unsupported field {path}")
    root, name = parts
    if root == "Request":
        return _request_field(name)
    if root in ("Response", "Revision"):
        def get(ex: Any, data: dict, root: str = root, name: str = name) -> Any:
            value = data[root].get(name)
            if value is None:
                raise TemplateError(f"unknown field .{root}.{name}")
            return value

        return get
    raise TemplateError(f"unsupported field {path}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e21 else str(int(value))
    return str(value)


def compile_template(text: str) -> Callable[[Any, dict], str]:
    pieces: list[Any] = []
    pos = 0
    for m in _ACTION.finditer(text):
        pieces.append(text[pos : m.start()])
        pos = m.end()
        words = m.group(1).split()
        if len(words) == 1 and words[0].startswith("."):
            getter = _field(words[0])
            pieces.append(lambda ex, d, g=getter: _fmt(g(ex, d)))
        elif len(words) == 2 and words[0] in _FUNCS and words[1].startswith("."):
            fn, getter = _FUNCS[words[0]], _field(words[1])
            pieces.append(lambda ex, d, f=fn, g=getter: f(_fmt(g(ex, d))))
        elif len(words) == 3 and words[0] == "index" and words[1] == ".Request.Header":
            name = json.loads(words[2])
            pieces.append(lambda ex, d, n=name: _header(ex, n).decode("latin-1"))
        else:
            raise TemplateError(f"unsupported action {{{{{m.group(1)}}}}}")
    pieces.append(text[pos:])

    def render(ex: Any, data: dict) -> str:
        return "".join(p if isinstance(p, str) else p(ex, data) for p in pieces)

    return render


class RequestLog:
    """Writes one rendered line per request; ``probes`` says whether probes are logged."""

    def __init__(self, template: str, revision: dict[str, str], probes: bool = False,
                 out: TextIO | None = None) -> None:
        self.render = compile_template(template)
        self.revision = revision
        self.probes = probes
        self.out = out or sys.stdout

    def log(self, ex: Any, now: float) -> None:
        data = {
            "Response": {
                "Code": ex.resp_status or 502,
                "Size": ex.resp_bytes,
                "Latency": max(0.0, now - ex.started),
            },
            "Revision": self.revision,
        }
        try:
            line = self.render(ex, data)
        except Exception as exc:  # a bad field shows once per request, not as a crash
            line = f"request log template error: {exc}"
        self.out.write(line + "\n")
        self.out.flush()
