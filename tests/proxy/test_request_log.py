"""The request log (spec section 9): one line per request on stdout from ``requestLogTemplate``.

Behaviour is Knative's pkg/http/request_log.go: the template is a Go ``text/template`` executed
with ``.Request`` (Go's ``*http.Request``), ``.Response`` (``Code``, ``Size``, ``Latency``),
``.Revision`` and ``.TraceID``; a newline is appended only when the template does not end in one;
an empty template turns the log off; probes (``netheader.IsProbe``: a kubelet probe or any
non-empty ``K-Network-Probe``) are skipped unless ``enableProbeRequestLog``. A template that
does not parse leaves the queue-proxy running without a request log.

Three levels: ``compile_template`` against a stand-in exchange; a queue-proxy in this process
(``make_proxy``, both parser backends) with the log redirected to a buffer; and a real
``python -m proxy`` process whose stdout is read line by line with bounded waits.
"""

from __future__ import annotations

import io
import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from support import Client, knative_env, request, start_queue_proxy, wait_for

from _speedups import fields as F
from proxy.request_log import RequestLog, TemplateError, compile_template

# The template from the brief (Knative's default before .TraceID existed).
DEFAULT_TEMPLATE = (
    '{"httpRequest": {"requestMethod": "{{.Request.Method}}", "requestUrl": '
    '"{{js .Request.RequestURI}}", "requestSize": "{{.Request.ContentLength}}", "status": '
    '{{.Response.Code}}, "responseSize": "{{.Response.Size}}", "userAgent": '
    '"{{js .Request.UserAgent}}", "remoteIp": "{{js .Request.RemoteAddr}}", "serverIp": '
    '"{{.Revision.PodIP}}", "referer": "{{js .Request.Referer}}", "latency": '
    '"{{.Response.Latency}}s", "protocol": "{{.Request.Proto}}"}, "traceId": '
    '"{{index .Request.Header "X-B3-Traceid"}}"}'
)

# knative/serving config/core/configmaps/observability.yaml today (pkg/http/trace.go fills
# .TraceID from traceparent or X-B3-TraceId).
KNATIVE_DEFAULT_TEMPLATE_TODAY = DEFAULT_TEMPLATE.replace(
    '{{index .Request.Header "X-B3-Traceid"}}', "{{.TraceID}}"
)

REVISION = {"Name": "hello-00001", "Namespace": "default", "Service": "hello",
            "Configuration": "hello", "PodName": "hello-00001-deployment-abc",
            "PodIP": "10.0.0.7"}

HEALTH = [("User-Agent", "kube-probe/1.30"), ("K-Network-Probe", "queue")]


# ---------------------------------------------------------------------------- a stand-in exchange


def fake_exchange(method: str = "GET", target: str = "/", headers: list | None = None,
                  http10: bool = False, peer: str = "127.0.0.1:5555",
                  chunked: bool = False) -> Any:
    hs = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers or []]
    lnames = [n.lower() for n, _ in hs]
    fields: list = [None] * len(F.NAMES)
    for (_n, v), ln in zip(hs, lnames, strict=True):
        if ln in F.NAMES:
            i = F.NAMES.index(ln)
            if fields[i] is None:
                fields[i] = v
    return SimpleNamespace(
        method=method.encode(), target=target.encode("latin-1"), http10=http10, headers=hs,
        lnames=lnames, fields=fields, conn=SimpleNamespace(peer_addr=peer), chunked=chunked,
        resp_status=200, resp_bytes=0, started=0.0,
    )


def data(code: int = 200, size: int = 0, latency: float = 0.0) -> dict:
    return {"Response": {"Code": code, "Size": size, "Latency": latency}, "Revision": REVISION}


def render(template: str, ex: Any, d: dict | None = None) -> str:
    return compile_template(template)(ex, d or data())


# ---------------------------------------------------------------------------- compile_template


def test_default_template_renders_valid_json() -> None:
    ex = fake_exchange(
        "POST", "/api/v1/items?id=7&name=a%20b",
        [("Host", "hello.default.example.com"), ("User-Agent", 'curl/8.0 "quoted"'),
         ("Referer", "https://example.com/page?a=1&b=2"), ("Content-Length", "11"),
         ("X-B3-TraceId", "463ac35c9f6413ad")],
        peer="10.1.2.3:45678",
    )
    line = render(DEFAULT_TEMPLATE, ex, data(201, 17, 0.012345))
    doc = json.loads(line)
    req = doc["httpRequest"]
    assert req["requestMethod"] == "POST"
    assert req["requestUrl"] == "/api/v1/items?id=7&name=a%20b"
    assert req["requestSize"] == "11"
    assert req["status"] == 201
    assert req["responseSize"] == "17"
    assert req["userAgent"] == 'curl/8.0 "quoted"'
    assert req["remoteIp"] == "10.1.2.3:45678"
    assert req["serverIp"] == "10.0.0.7"
    assert req["referer"] == "https://example.com/page?a=1&b=2"
    assert req["latency"] == "0.012345s"
    assert req["protocol"] == "HTTP/1.1"
    assert "traceId" in doc


def test_js_escapes_like_go() -> None:
    # Go's template.JSEscapeString: \ ' " < > & = escaped; the rest kept.
    ex = fake_exchange("GET", "/x?a=<b>&c='d'", [("User-Agent", 'a\\b"c')])
    assert render("{{js .Request.RequestURI}}", ex) == (
        r"/x?a\u003D\u003Cb\u003E\u0026c\u003D\'d\'")
    assert render("{{js .Request.UserAgent}}", ex) == r'a\\b\"c'


def test_js_control_characters_like_go() -> None:
    # Go (text/template funcs.go JSEscape): every byte < 0x20 other than the named ones is
    # written \u00XX with upper-case hex, tab included; DEL (0x7f) is not special.
    ex = fake_exchange("GET", "/", [("User-Agent", "a\tb\x01c\x7fd")])
    assert render("{{js .Request.UserAgent}}", ex) == "a\\u0009b\\u0001c\x7fd"


def test_other_functions() -> None:
    ex = fake_exchange("GET", "/a b?c=d&e", [("User-Agent", "<b>&x")])
    assert render("{{html .Request.UserAgent}}", ex) == "&lt;b&gt;&amp;x"
    # Go's url.QueryEscape.
    assert render("{{urlquery .Request.RequestURI}}", ex) == "%2Fa+b%3Fc%3Dd%26e"
    assert render("{{print .Request.Method}}", ex) == "GET"


def test_html_quotes_like_go() -> None:
    # Go (text/template HTMLEscape): " -> &#34;  ' -> &#39;
    ex = fake_exchange("GET", "/", [("User-Agent", "a\"b'c")])
    assert render("{{html .Request.UserAgent}}", ex) == "a&#34;b&#39;c"


def test_request_fields() -> None:
    ex = fake_exchange("PUT", "/p?q=1", [("Host", "h.example"), ("User-Agent", "ua/1"),
                                         ("Referer", "r")], peer="[::1]:8080")
    assert render("{{.Request.Method}} {{.Request.URL}} {{.Request.RequestURI}} "
                  "{{.Request.Proto}} {{.Request.Host}} {{.Request.RemoteAddr}} "
                  "{{.Request.UserAgent}} {{.Request.Referer}} {{.Request.ContentLength}}",
                  ex) == "PUT /p?q=1 /p?q=1 HTTP/1.1 h.example [::1]:8080 ua/1 r 0"
    assert render("{{.Request.Proto}}", fake_exchange(http10=True)) == "HTTP/1.0"
    assert render("{{.Request.ProtoMajor}}.{{.Request.ProtoMinor}}",
                  fake_exchange(http10=True)) == "1.0"
    chunked = fake_exchange("POST", "/", [("Transfer-Encoding", "chunked")], chunked=True)
    assert render("{{.Request.ContentLength}}", chunked) == "-1"


def test_revision_and_response_fields() -> None:
    t = ("{{.Revision.Name}}, {{.Revision.Namespace}}, {{.Revision.Service}}, "
         "{{.Revision.Configuration}}, {{.Revision.PodName}}, {{.Revision.PodIP}}")
    assert render(t, fake_exchange()) == (
        "hello-00001, default, hello, hello, hello-00001-deployment-abc, 10.0.0.7")
    t = "{{.Response.Code}} {{.Response.Size}} {{.Response.Latency}}"
    assert render(t, fake_exchange(), data(503, 27, 0.5)) == "503 27 0.5"
    # Go prints float64 with %v: whole numbers without a point, small ones in e-notation.
    assert render(t, fake_exchange(), data(200, 0, 2.0)) == "200 0 2"
    assert render(t, fake_exchange(), data(200, 0, 0.0)) == "200 0 0"
    assert render(t, fake_exchange(), data(200, 0, 1e-05)) == "200 0 1e-05"
    assert render(t, fake_exchange(), data(200, 0, 0.0001)) == "200 0 0.0001"


def test_literal_text_and_trim_markers() -> None:
    ex = fake_exchange("GET")
    assert render("method={{ .Request.Method }};", ex) == "method=GET;"


def test_trim_markers_trim_whitespace() -> None:
    assert render("a \n {{- .Request.Method -}} \n b", fake_exchange()) == "aGETb"


def test_go_template_language() -> None:
    # The whole of Go's text/template (tests/proxy/test_request_log_template.py checks it
    # against Go): what the subset this replaced refused now renders.
    ex = fake_exchange("POST", "/p?q=1", [("X-A", "1"), ("X-A", "2"), ("Referer", "r")])
    assert render("{{if .Request.Method}}x{{end}}", ex) == "x"
    assert render("{{range $k, $v := .Request.Header}}{{$k}}={{$v}};{{end}}", ex) == (
        "Referer=[r];X-A=[1 2];")
    assert render('{{printf "%s %5.2f" .Request.Method .Response.Latency}}', ex,
                  data(latency=0.5)) == "POST  0.50"
    assert render("{{with .Request}}{{.Method}} {{.URL.Path}} {{.URL.RawQuery}}{{end}}",
                  ex) == "POST /p q=1"
    assert render('{{$x := .Request.Method}}{{$x}} {{.Request.Header.Get "x-a"}}', ex) == (
        "POST 1")
    assert render("{{index .Request.Header}}", ex) == "map[Referer:[r] X-A:[1 2]]"


@pytest.mark.parametrize("template", [
    "{{}}",
    "{{if .Request.Method}}x",
    "{{nope .Request.Method}}",
    "{{$x}}",
    "{{end}}",
    "{{.Request.Method | 3}}",
    '{{printf "%s" .Request.Method',
])
def test_templates_go_refuses_raise(template: str) -> None:
    with pytest.raises(TemplateError, match="^template: requestLog:1: "):
        compile_template(template)


def test_unclosed_action_raises() -> None:
    with pytest.raises(TemplateError):
        compile_template('{"method": "{{.Request.Method"}')


def test_knative_default_template_today_with_trace_id() -> None:
    render_fn = compile_template(KNATIVE_DEFAULT_TEMPLATE_TODAY)
    w3c = fake_exchange("GET", "/", [
        ("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("X-B3-TraceId", "ignored")])
    assert json.loads(render_fn(w3c, data()))["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    b3 = fake_exchange("GET", "/", [("X-B3-TraceId", "463ac35c9f6413ad")])
    assert json.loads(render_fn(b3, data()))["traceId"] == "463ac35c9f6413ad"
    assert json.loads(render_fn(fake_exchange(), data()))["traceId"] == ""


def test_index_header_prints_go_slice() -> None:
    # http.Header is map[string][]string: index gives the []string, printed by fmt as [v1 v2].
    t = '{{index .Request.Header "X-B3-Traceid"}}'
    assert render(t, fake_exchange("GET", "/", [("X-B3-TraceId", "abc")])) == "[abc]"
    assert render(t, fake_exchange()) == "[]"


@pytest.mark.parametrize("template", ["{{.Request.Something}}", "{{.Response.Nope}}"])
def test_execution_error_line_like_knative(template: str) -> None:
    # knative/serving pkg/http/request_log_test.go TestFailedTemplateExecution.
    out = io.StringIO()
    log = RequestLog(template, REVISION, out=out)  # Go's Parse accepts it
    ex = fake_exchange("GET", "/p")
    ex.resp_status, ex.resp_bytes, ex.started = 200, 0, 1.0
    log.log(ex, 1.5)
    line = out.getvalue()
    assert line.startswith("Invalid request log template: method: GET, response code: 200, "
                           "latency: 0.5, url: /p"), line
    assert line.endswith("\n") and line.count("\n") == 1


# ---------------------------------------------------------------------------- RequestLog


def test_request_log_appends_newline() -> None:
    out = io.StringIO()
    log = RequestLog("{{.Request.Method}}", REVISION, out=out)
    ex = fake_exchange("DELETE")
    ex.resp_status, ex.resp_bytes, ex.started = 204, 0, 10.0
    log.log(ex, 10.25)
    assert out.getvalue() == "DELETE\n"


def test_request_log_response_data() -> None:
    out = io.StringIO()
    log = RequestLog("{{.Response.Code}} {{.Response.Size}} {{.Response.Latency}}", REVISION,
                     out=out)
    ex = fake_exchange()
    ex.resp_status, ex.resp_bytes, ex.started = 404, 9, 100.0
    log.log(ex, 100.5)
    assert out.getvalue() == "404 9 0.5\n"


def test_request_log_template_with_newline_not_doubled() -> None:
    out = io.StringIO()
    log = RequestLog("{{.Request.Method}}\n", REVISION, out=out)
    log.log(fake_exchange("GET"), 0.0)
    assert out.getvalue() == "GET\n"


def test_request_log_empty_template_writes_nothing() -> None:
    out = io.StringIO()
    log = RequestLog("", REVISION, out=out)
    log.log(fake_exchange("GET"), 0.0)
    assert out.getvalue() == ""


# ---------------------------------------------------------------------------- in-process proxy


def obs(template: str = DEFAULT_TEMPLATE, probes: bool | None = None) -> dict:
    o: dict[str, Any] = {"enableRequestLog": True, "requestLogTemplate": template}
    if probes is not None:
        o["enableProbeRequestLog"] = probes
    return o


def logged(make_proxy: Any, **cfg: Any) -> tuple[Any, io.StringIO]:
    """A queue-proxy whose request log writes into a buffer."""
    proxy = make_proxy(pod_ip="10.0.0.7", **cfg)
    buf = io.StringIO()
    rl = proxy.qp.request_log

    def redirect() -> None:
        if rl is not None:
            rl.out = buf

    proxy.call(redirect)
    return proxy, buf


def lines_of(proxy: Any, buf: io.StringIO) -> list[str]:
    # On the proxy's loop, the line is written in the same callback that ends the response;
    # a round trip through the loop makes sure it is there.
    return proxy.call(lambda: buf.getvalue()).splitlines()


def test_proxy_logs_one_line_per_request(make_proxy: Any, app: Any) -> None:
    proxy, buf = logged(make_proxy, observability=obs())
    r = request(proxy.port, "GET", "/echo?x=1", [("User-Agent", "test-ua/1"),
                                                  ("Referer", "http://ref/"),
                                                  ("X-B3-TraceId", "abc123")])
    assert r.status == 200, r
    r2 = request(proxy.port, "GET", "/status?code=404")
    assert r2.status == 404
    lines = lines_of(proxy, buf)
    assert len(lines) == 2, lines
    one = json.loads(lines[0])["httpRequest"]
    assert one["requestMethod"] == "GET"
    assert one["requestUrl"] == "/echo?x=1"
    assert one["status"] == 200
    assert one["responseSize"] == str(len(r.body))
    assert one["userAgent"] == "test-ua/1"
    assert one["referer"] == "http://ref/"
    assert one["remoteIp"].startswith("127.0.0.1:")
    assert one["serverIp"] == "10.0.0.7"
    assert one["protocol"] == "HTTP/1.1"
    assert one["requestSize"] == "0"
    assert one["latency"].endswith("s")
    assert 0 <= float(one["latency"][:-1]) < 5
    two = json.loads(lines[1])["httpRequest"]
    assert two["status"] == 404
    assert two["responseSize"] == str(len(r2.body))


def test_proxy_logs_request_sizes(make_proxy: Any, app: Any) -> None:
    proxy, buf = logged(make_proxy, observability=obs(
        "{{.Request.Method}} {{.Request.ContentLength}} {{.Response.Code}}"))
    assert request(proxy.port, "POST", "/echo", body=b"hello world").status == 200
    with Client(proxy.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\n\r\n")
        assert c.read_response().status == 200
    assert lines_of(proxy, buf) == ["POST 11 200", "POST -1 200"]


def test_proxy_go_template_over_a_real_exchange(make_proxy: Any, app: Any) -> None:
    """Go's template language over the engine's own exchanges (both parser backends)."""
    template = (
        '{{if eq .Response.Code 200}}ok{{else}}{{.Response.Code}}{{end}} '
        '{{printf "%q" .Request.URL.Path}} {{.Request.URL.Query.Get "a"}} '
        '{{range $k, $v := .Request.Header}}{{if eq $k "X-Tag"}}{{$v}}{{end}}{{end}} '
        '{{.Request.Header.Get "x-tag"}} {{len (index .Request.Header "X-Tag")}}'
    )
    proxy, buf = logged(make_proxy, observability=obs(template))
    assert request(proxy.port, "GET", "/echo?a=1&a=2", [("X-Tag", "one"),
                                                       ("x-tag", "two")]).status == 200
    assert request(proxy.port, "GET", "/status?code=404").status == 404
    assert lines_of(proxy, buf) == ['ok "/echo" 1 [one two] one 2', '404 "/status"    0']


def test_proxy_probes_not_logged_by_default(make_proxy: Any, app: Any) -> None:
    proxy, buf = logged(make_proxy, observability=obs("{{.Request.RequestURI}} "
                                                      "{{.Response.Code}}"))
    assert request(proxy.port, "GET", "/health", HEALTH).status == 200
    assert request(proxy.port, "GET", "/np", [("K-Network-Probe", "probe"),
                                              ("K-Network-Hash", "h")]).status == 200
    # to the app (404 there), a probe for the log (Knative's IsProbe)
    assert request(proxy.port, "GET", "/kp", [("K-Kubelet-Probe", "1"),
                                              ("K-Network-Probe", "queue")]).status == 404
    assert request(proxy.port, "GET", "/echo").status == 200
    assert lines_of(proxy, buf) == ["/echo 200"]


@pytest.mark.parametrize("flag", [True, False])
def test_proxy_probe_logging_flag(make_proxy: Any, app: Any, flag: bool) -> None:
    proxy, buf = logged(make_proxy, observability=obs("{{.Request.RequestURI}} "
                                                      "{{.Response.Code}} {{.Response.Size}}",
                                                      probes=flag))
    assert request(proxy.port, "GET", "/health", HEALTH).status == 200
    assert request(proxy.port, "GET", "/np", [("K-Network-Probe", "probe"),
                                              ("K-Network-Hash", "h")]).status == 200
    assert request(proxy.port, "GET", "/echo").status == 200
    lines = lines_of(proxy, buf)
    if flag:
        assert lines[:2] == ["/health 200 5", "/np 200 0"]
        assert lines[2].startswith("/echo 200 ")
        assert len(lines) == 3
    else:
        assert len(lines) == 1 and lines[0].startswith("/echo 200 ")


def test_proxy_other_k_network_probe_value_not_logged(make_proxy: Any, app: Any) -> None:
    proxy, buf = logged(make_proxy, observability=obs("{{.Request.RequestURI}}"))
    assert request(proxy.port, "GET", "/echo", [("K-Network-Probe", "activator")]).status == 200
    assert len(app.requests) == 1  # it was proxied
    assert lines_of(proxy, buf) == []


def test_proxy_rejected_and_failed_requests_logged(make_proxy: Any, app: Any) -> None:
    from support import free_port

    proxy, buf = logged(make_proxy, observability=obs("{{.Response.Code}} {{.Response.Size}}"),
                        user_port=free_port())
    r = request(proxy.port, "GET", "/echo")
    assert r.status == 502, r
    assert lines_of(proxy, buf) == [f"502 {len(r.body)}"]


def test_proxy_bad_template_means_no_request_log(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(observability=obs("{{if .Request.Method}}x"))
    assert proxy.qp.request_log is None
    assert request(proxy.port, "GET", "/echo").status == 200


def test_proxy_request_log_off(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(observability={"enableRequestLog": False,
                                      "requestLogTemplate": DEFAULT_TEMPLATE})
    assert proxy.qp.request_log is None
    proxy = make_proxy(observability={"requestLogTemplate": DEFAULT_TEMPLATE})
    assert proxy.qp.request_log is None


def test_proxy_empty_template_logs_nothing(make_proxy: Any, app: Any) -> None:
    proxy, buf = logged(make_proxy, observability=obs(""))
    assert request(proxy.port, "GET", "/echo").status == 200
    assert proxy.call(lambda: buf.getvalue()) == ""


# ---------------------------------------------------------------------------- a real process


class Proc:
    """``python -m proxy`` with its stdout read line by line in a thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc = start_queue_proxy(env)
        # The stats port is bound after the serving and admin ports: start-up ran through.
        try:
            wait_for(self._stats_up, timeout=10)
        except AssertionError as exc:
            exc.proc = self.proc  # type: ignore[attr-defined]
            if self.proc.poll() is None:
                self.proc.kill()
            raise
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout_closed = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.stderr = b""

    def _stats_up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"queue-proxy exited with {self.proc.returncode}")
        try:
            return request(int(self.env["QUEUE_METRICS_PORT"]), "GET", "/metrics").status == 200
        except OSError:
            return False

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.stdout_closed.set()

    @property
    def port(self) -> int:
        return int(self.env["QUEUE_SERVING_PORT"])

    def line(self, timeout: float = 5.0) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no request log line within {timeout}s") from None

    def stop(self) -> list[str]:
        """Kills the process; returns the lines not read yet."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            _, err = self.proc.communicate(timeout=5)
            self.stderr = err or b""
        except (subprocess.TimeoutExpired, ValueError):  # pragma: no cover
            pass
        self.stdout_closed.wait(5)
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get_nowait())
        return rest


@pytest.fixture
def spawn() -> Iterator[Any]:
    procs: list[Proc] = []

    def start(app_port: int, observability: dict) -> Proc:
        for attempt in range(3):
            env = knative_env(app_port, OBSERVABILITY_CONFIG=json.dumps(observability),
                              SERVING_POD_IP="10.0.0.7")
            try:
                p = Proc(env)
            except AssertionError as exc:
                # The ports are picked free and released before the process binds them: a
                # client connection may take one in between (once in CI, on the metrics port).
                # Try fresh ports; any other start-up failure is reported with its stderr.
                proc = getattr(exc, "proc", None)
                err = proc.stderr.read().decode("utf-8", "replace") if proc else ""
                if "address already in use" not in (str(exc) + err).lower() or attempt == 2:
                    raise AssertionError(f"{exc}: {err}") from None
                continue
            procs.append(p)
            return p
        raise AssertionError("unreachable")  # pragma: no cover

    yield start
    for p in procs:
        p.stop()


def test_process_writes_one_json_line_per_request(spawn: Any, app: Any) -> None:
    p = spawn(app.port, obs())
    r = request(p.port, "GET", "/echo?a=1", [("User-Agent", "proc-test/1")])
    assert r.status == 200, r
    doc = json.loads(p.line())
    assert doc["httpRequest"]["requestMethod"] == "GET"
    assert doc["httpRequest"]["requestUrl"] == "/echo?a=1"
    assert doc["httpRequest"]["status"] == 200
    assert doc["httpRequest"]["userAgent"] == "proc-test/1"
    assert doc["httpRequest"]["serverIp"] == "10.0.0.7"
    r = request(p.port, "POST", "/status?code=500", body=b"abc")
    assert r.status == 500
    doc = json.loads(p.line())
    assert doc["httpRequest"]["status"] == 500
    assert doc["httpRequest"]["requestSize"] == "3"
    assert p.stop() == []


def test_process_skips_probes(spawn: Any, app: Any) -> None:
    p = spawn(app.port, obs("{{.Request.RequestURI}} {{.Response.Code}}"))
    assert request(p.port, "GET", "/health", HEALTH).status == 200
    assert request(p.port, "GET", "/np", [("K-Network-Probe", "probe"),
                                          ("K-Network-Hash", "h")]).status == 200
    assert request(p.port, "GET", "/after").status == 404
    # The probes were answered before /after was sent: had they been logged, their lines
    # would come first.
    assert p.line() == "/after 404"
    assert p.stop() == []


def test_process_logs_probes_when_enabled(spawn: Any, app: Any) -> None:
    p = spawn(app.port, obs("{{.Request.RequestURI}} {{.Response.Code}}", probes=True))
    assert request(p.port, "GET", "/health", HEALTH).status == 200
    assert p.line() == "/health 200"
    assert request(p.port, "GET", "/np", [("K-Network-Probe", "probe"),
                                          ("K-Network-Hash", "h")]).status == 200
    assert p.line() == "/np 200"
    assert request(p.port, "GET", "/echo").status == 200
    assert p.line() == "/echo 200"
    assert p.stop() == []


def test_process_bad_template_runs_without_log(spawn: Any, app: Any) -> None:
    p = spawn(app.port, obs("{{if .Request.Method}}x"))
    assert request(p.port, "GET", "/echo").status == 200
    assert request(p.port, "GET", "/echo").status == 200
    rest = p.stop()
    assert rest == []
    assert b"Request logs will be unavailable" in p.stderr, p.stderr


def test_process_lines_are_whole_under_concurrency(spawn: Any, app: Any) -> None:
    p = spawn(app.port, obs())
    n = 20
    threads = [threading.Thread(target=request, args=(p.port, "GET", f"/echo?i={i}"))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    got = sorted(json.loads(p.line())["httpRequest"]["requestUrl"] for _ in range(n))
    assert got == sorted(f"/echo?i={i}" for i in range(n))
    assert p.stop() == []


def test_proxy_request_log_on_without_a_template_uses_knatives_default(make_proxy: Any,
                                                                       app: Any) -> None:
    """Knative unmarshals OBSERVABILITY_CONFIG over observability.DefaultConfig(): no
    ``requestLogTemplate`` key leaves DefaultRequestLogTemplate in place (an empty one is off:
    ``test_proxy_empty_template_logs_nothing``)."""
    from proxy.request_log import DEFAULT_TEMPLATE as OURS

    assert OURS == KNATIVE_DEFAULT_TEMPLATE_TODAY
    proxy, buf = logged(make_proxy, observability={"enableRequestLog": True})
    assert request(proxy.port, "GET", "/echo?q=1", [("User-Agent", "ua/1")]).status == 200
    (line,) = lines_of(proxy, buf)
    doc = json.loads(line)
    assert doc["httpRequest"]["requestUrl"] == "/echo?q=1"
    assert doc["httpRequest"]["status"] == 200
    assert doc["httpRequest"]["userAgent"] == "ua/1"
    assert doc["httpRequest"]["serverIp"] == "10.0.0.7"
