"""The request log: one line per request on stdout from Knative's ``requestLogTemplate``.

Knative (pkg/http/request_log.go) parses the template with Go's ``text/template`` once, when the
queue-proxy starts, and executes it after each request over a ``RequestLogTemplateInput``:
``.Request`` (Go's ``*http.Request``), ``.Response`` (``Code``, ``Size``, ``Latency`` in
seconds), ``.Revision`` (``Name``, ``Namespace``, ``Service``, ``Configuration``, ``PodName``,
``PodIP``) and ``.TraceID`` (W3C ``traceparent``, else ``X-B3-Traceid``). We do the same with
``proxy.gotemplate`` (Go's template language, compiled to closures) over ``proxy.gohttp``'s view
of the exchange.

As Knative: an empty template means no request log; a newline is added unless the template ends
with one; a template Go would not parse is refused when ``RequestLog`` is built (the
queue-proxy then runs without a request log and says why); a template that fails when executed
(a field that is not there, say) writes, instead of its partial output, the line Knative writes
("Invalid request log template: method: GET, response code: 200, ...").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from proxy.gofmt import GoStruct, format_float_v, from_go_bytes
from proxy.gohttp import Request
from proxy.gotemplate import (
    ExecError,
    Template,
    TemplateError,
    html_escape,
    js_escape,
    parse,
)

__all__ = [
    "DEFAULT_TEMPLATE", "RequestLog", "TemplateError", "ExecError", "compile_template",
    "go_js_escape", "go_html_escape", "template_input", "RequestLogRevision",
    "RequestLogResponse", "RequestLogTemplateInput", "trace_id",
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

TEMPLATE_NAME = "requestLog"  # Knative's: it is in Go's error messages

go_js_escape = js_escape
go_html_escape = html_escape


class RequestLogRevision(GoStruct):
    __slots__ = ("Name", "Namespace", "Service", "Configuration", "PodName", "PodIP")
    go_type = "*http.RequestLogRevision"
    go_fields = ("Name", "Namespace", "Service", "Configuration", "PodName", "PodIP")

    def __init__(self, Name: str = "", Namespace: str = "", Service: str = "",  # noqa: N803
                 Configuration: str = "", PodName: str = "", PodIP: str = "") -> None:  # noqa: N803
        self.Name, self.Namespace, self.Service = Name, Namespace, Service
        self.Configuration, self.PodName, self.PodIP = Configuration, PodName, PodIP


class RequestLogResponse(GoStruct):
    __slots__ = ("Code", "Size", "Latency")
    go_type = "*http.RequestLogResponse"
    go_fields = ("Code", "Size", "Latency")

    def __init__(self, code: int, size: int, latency: float) -> None:
        self.Code, self.Size, self.Latency = code, size, latency


class RequestLogTemplateInput(GoStruct):
    __slots__ = ("Request", "Response", "Revision", "TraceID")
    go_type = "*http.RequestLogTemplateInput"
    go_fields = ("Request", "Response", "Revision", "TraceID")

    def __init__(self, request: Any, response: RequestLogResponse,
                 revision: RequestLogRevision, trace: str) -> None:
        self.Request, self.Response, self.Revision, self.TraceID = (request, response, revision,
                                                                    trace)


for _cls in (RequestLogRevision, RequestLogResponse, RequestLogTemplateInput):
    _cls._build_getters()


def _first(ex: Any, lname: bytes) -> str:
    for (_n, v), ln in zip(ex.headers, ex.lnames, strict=True):
        if ln == lname:
            return from_go_bytes(v)
    return ""


def trace_id(ex: Any) -> str:
    """Knative's ``ExtractTraceID``: traceparent's second field, else X-B3-Traceid."""
    tp = _first(ex, b"traceparent")
    if tp:
        parts = tp.split("-", 2)
        if len(parts) >= 2:
            return parts[1]
    return _first(ex, b"x-b3-traceid")


def _revision(revision: dict[str, str] | RequestLogRevision) -> RequestLogRevision:
    if isinstance(revision, RequestLogRevision):
        return revision
    return RequestLogRevision(**{k: v for k, v in revision.items()
                                 if k in RequestLogRevision.go_fields})


def template_input(ex: Any, code: int, size: int, latency: float,
                   revision: dict[str, str] | RequestLogRevision) -> RequestLogTemplateInput:
    """Knative's ``RequestLogTemplateInput`` for one exchange (the template's ``.``)."""
    return RequestLogTemplateInput(Request(ex), RequestLogResponse(code, size, latency),
                                   _revision(revision), trace_id(ex))


def compile_template(text: str) -> Callable[[Any, dict[str, Any]], str]:
    """Parses and compiles ``text``; the result renders ``(exchange, data)``.

    ``data`` holds ``Response`` (``Code``, ``Size``, ``Latency``) and ``Revision`` (a dict or a
    ``RequestLogRevision``). ``TemplateError`` when Go would not parse it; the renderer raises
    ``ExecError`` when Go's execution fails. The trailing newline rule is ``RequestLog``'s.
    """
    tmpl = parse(text, TEMPLATE_NAME)

    def render(ex: Any, data: dict[str, Any]) -> str:
        resp = data["Response"]
        return tmpl.execute(template_input(ex, resp["Code"], resp["Size"], resp["Latency"],
                                           data["Revision"]))

    return render


class RequestLog:
    """Writes one rendered line per request; ``probes`` says whether probes are logged.

    ``revision`` is the revision every line names (the queue-proxy's own); ``log`` takes another
    for one request (the activator's, which serves many revisions). ``trace_ids``: fill
    ``.TraceID`` (the queue-proxy's input getter does; the activator's leaves it empty).
    """

    def __init__(self, template: str, revision: dict[str, str] | RequestLogRevision,
                 probes: bool = False, out: TextIO | None = None,
                 trace_ids: bool = True) -> None:
        self.enabled = False
        self.template: Template | None = None
        self.set_template(template)
        self.revision = _revision(revision)
        self.probes = probes
        self.out = out or sys.stdout
        self.trace_ids = trace_ids

    def set_template(self, template: str) -> None:
        """Knative's ``SetTemplate``: ``TemplateError`` (and the template in use kept) when Go
        would not parse it; an empty one turns the log off."""
        if not template:
            self.enabled, self.template = False, None
            return
        if not template.endswith("\n"):
            template += "\n"
        self.template = parse(template, TEMPLATE_NAME)
        self.enabled = True

    def log(self, ex: Any, now: float,
            revision: dict[str, str] | RequestLogRevision | None = None) -> None:
        template = self.template
        if template is None:
            return
        code = ex.resp_status or 502
        latency = max(0.0, now - ex.started)
        data = RequestLogTemplateInput(
            request := Request(ex), RequestLogResponse(code, ex.resp_bytes, latency),
            self.revision if revision is None else _revision(revision),
            trace_id(ex) if self.trace_ids else "")
        try:
            line = template.execute(data)
        except ExecError:
            # Knative writes this instead of the partial output.
            line = (
                f"Invalid request log template: method: {request.go_field('Method')}, response "
                f"code: {code}, latency: {format_float_v(latency)}, url: "
                f"{request.go_field('URL').string()}\n"
            )
        self._write(line)

    def _write(self, line: str) -> None:
        out = self.out
        try:
            out.write(line)
        except UnicodeEncodeError:
            # Bytes that are not UTF-8 (a header's): Go writes them as they came.
            buffer = getattr(out, "buffer", None)
            raw = line.encode("utf-8", "surrogateescape")
            if buffer is not None:
                out.flush()
                buffer.write(raw)
            else:
                out.write(raw.decode("utf-8", "replace"))
        out.flush()
