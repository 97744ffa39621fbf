"""The request log's template language is Go's ``text/template``: a table checked against Go.

Every expected string in ``CASES`` was produced by Go (go1.27.3's ``text/template``, ``fmt``,
``net/http`` and ``net/url``), not written by hand: a small Go program, kept outside this
repository (it was /tmp/gotpl/main.go, standard library only), parses each template with
``template.New("requestLog").Parse`` as Knative's pkg/http/request_log.go does and executes it
over knative.dev/serving/pkg/http's ``RequestLogTemplateInput`` (the same type names, so ``%T``
and ``%#v`` match): ``Request`` is what ``http.ReadRequest`` (the parser Go's server uses) makes
of the raw head in ``REQUESTS`` with ``RemoteAddr`` set to ``REMOTE``; ``Response`` is
``{201, 17, 0.012345}``; ``Revision`` is ``REVISION``; ``TraceID`` is Knative's
``ExtractTraceID`` of the headers. The program prints, per template, the output, or the parse
or execution error; the same templates run here over ``proxy.gohttp``'s view of an exchange
built from the same head must give the same bytes and the same error text.

What is not in the table because Go's own output is not deterministic: a pointer nested in a
printed value (Go prints an address). The template-depth limit differs on purpose (Go: 100000
nested invocations; here 100, Python's stack being smaller).
"""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from _speedups import fields as F
from proxy.gotemplate import ExecError, ParseError, parse
from proxy.request_log import (
    DEFAULT_TEMPLATE,
    RequestLog,
    RequestLogRevision,
    template_input,
    trace_id,
)

REQUESTS = {
    "post": (
        "POST /api/v1/items%2Fx/caf%C3%A9!?id=7&name=a%20b&flag&x=1;y=2&q=%E2%9C%93+ok HTTP/1.1\n"
        "Host: hello.default.example.com\n"
        "User-Agent: curl/8.0 \"quoted\" <b>&'=\n"
        "Referer: https://example.com/page?a=1&b=2\n"
        "Content-Length: 11\n"
        "X-B3-Traceid: 463ac35c9f6413ad\n"
        "Accept: */*\n"
        "accept: text/html\n"
        "X-Empty:\n"
        "Cookie: session=abc123; theme=\"dark\"; bad name=1\n"
        "Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n"
        "x-custom-lower: MiXeD Value\n"
        "Pragma: no-cache\n"),
    "get10": "GET / HTTP/1.0\nUser-Agent: probe\n",
    "chunked": ("PUT /up?x HTTP/1.1\nHost: h.example:8080\nTransfer-Encoding: chunked\n"
                "Connection: close\n"),
    "abs": "GET http://other.example:81/p/a%20th?q=1 HTTP/1.1\nHost: ignored.example\n",
    "star": "OPTIONS * HTTP/1.1\nHost: h\n",
    "trailer": ("POST /t HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\nContent-Length: 5\n"
                "Trailer: x-checksum, Expires\n"),
    "dupcl": "POST /d HTTP/1.0\nContent-Length: 3\nContent-Length:  3\nConnection: keep-alive\n",
    "bytes": ("GET /\u00e9?x=%ff HTTP/1.1\nHost: h\n"
              "User-Agent: caf\u00e9 \udcff\udcfe\u2028 \U0001F600\nX-Ctl: a\tb\n"),
    "connect": "CONNECT example.com:443 HTTP/1.1\nHost: example.com:443\n",
}
REMOTE = "10.1.2.3:45678"
REVISION = {"Name": "hello-00001", "Namespace": "default", "Service": "hello",
            "Configuration": "hello", "PodName": "hello-00001-deployment-abc",
            "PodIP": "10.0.0.7"}
CODE, SIZE, LATENCY = 201, 17, 0.012345


def exchange(raw: str, remote: str = REMOTE, **extra: Any) -> Any:
    """A stand-in for the engine's exchange, from a raw head (bytes as Go's reader gets them)."""
    lines = raw.rstrip("\n").split("\n")
    method, target, proto = lines[0].split(" ")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.encode("latin-1"),
                        value.strip(" \t").encode("utf-8", "surrogateescape")))
    lnames = [n.lower() for n, _ in headers]
    fields: list[Any] = [None] * len(F.NAMES)
    for (_n, v), ln in zip(headers, lnames, strict=True):
        i = F.INDEX.get(ln)
        if i is None:
            continue
        if fields[i] is None:
            fields[i] = v
        elif i in F.JOINED:
            fields[i] += b", " + v
    ex = SimpleNamespace(
        method=method.encode(), target=target.encode("utf-8", "surrogateescape"),
        http10=proto == "HTTP/1.0", headers=headers, lnames=lnames, fields=fields,
        conn=SimpleNamespace(peer_addr=remote, transport=None),
        chunked=b"chunked" in (fields[F.TRANSFER_ENCODING] or b""), trailers=None,
        resp_status=CODE, resp_bytes=SIZE, started=0.0)
    for k, v in extra.items():
        setattr(ex, k, v)
    return ex


def render(template: str, request: str = "post") -> str:
    ex = exchange(REQUESTS[request])
    return parse(template).execute(template_input(ex, CODE, SIZE, LATENCY, REVISION))


# (request, what Go did: ok / parse / exec, template, Go's output or error message)
CASES: list[tuple[str, str, str, str]] = [
    # ---- the request, the response, the revision; fmt's verbs
    ('post', 'ok',
     '{{.Request.Method}} {{.Request.URL}} {{.Request.URL.Path}} {{.Request.URL.RawPath}} {{.Re'
     'quest.URL.RawQuery}} {{.Request.URL.String}}',
     'POST /api/v1/items%2Fx/caf%C3%A9!?id=7&name=a%20b&flag&x=1;y=2&q=%E2%9C%93+ok /api/v1/ite'
     'ms/x/café! /api/v1/items%2Fx/caf%C3%A9! id=7&name=a%20b&flag&x=1;y=2&q=%E2%9C%93+ok /api/'
     'v1/items%2Fx/caf%C3%A9!?id=7&name=a%20b&flag&x=1;y=2&q=%E2%9C%93+ok'),
    ('post', 'ok',
     '{{.Request.Host}} {{.Request.Proto}} {{.Request.ProtoMajor}} {{.Request.ProtoMinor}} {{.R'
     'equest.RemoteAddr}} {{.Request.RequestURI}}',
     'hello.default.example.com HTTP/1.1 1 1 10.1.2.3:45678 /api/v1/items%2Fx/caf%C3%A9!?id=7&n'
     'ame=a%20b&flag&x=1;y=2&q=%E2%9C%93+ok'),
    ('post', 'ok',
     '{{.Request.ContentLength}} {{.Request.UserAgent}} {{.Request.Referer}} {{.Request.Close}}'
     ' {{.Request.TransferEncoding}}',
     '11 curl/8.0 "quoted" <b>&\'= https://example.com/page?a=1&b=2 false []'),
    ('post', 'ok',
     '{{.Request.Header}}',
     'map[Accept:[*/* text/html] Cache-Control:[no-cache] Content-Length:[11] Cookie:[session=a'
     'bc123; theme="dark"; bad name=1] Pragma:[no-cache] Referer:[https://example.com/page?a=1&'
     'b=2] Traceparent:[00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01] User-Agent:[cu'
     'rl/8.0 "quoted" <b>&\'=] X-B3-Traceid:[463ac35c9f6413ad] X-Custom-Lower:[MiXeD Value] X-E'
     'mpty:[]]'),
    ('post', 'ok',
     '{{.Request.Header.Get "accept"}}|{{.Request.Header.Accept}}|{{index .Request.Header "Acce'
     'pt"}}|{{index .Request.Header "accept"}}|{{.Request.Header.Nope}}',
     '*/*|[*/* text/html]|[*/* text/html]|[]|<no value>'),
    ('post', 'ok',
     '{{range $k, $v := .Request.Header}}{{$k}}={{$v}};{{end}}',
     'Accept=[*/* text/html];Cache-Control=[no-cache];Content-Length=[11];Cookie=[session=abc12'
     '3; theme="dark"; bad name=1];Pragma=[no-cache];Referer=[https://example.com/page?a=1&b=2]'
     ';Traceparent=[00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01];User-Agent=[curl/8'
     '.0 "quoted" <b>&\'=];X-B3-Traceid=[463ac35c9f6413ad];X-Custom-Lower=[MiXeD Value];X-Empty'
     '=[];'),
    ('post', 'ok',
     '{{.Response.Code}} {{.Response.Size}} {{.Response.Latency}} {{.Response}} {{.Revision}} {'
     '{.TraceID}}',
     '201 17 0.012345 {201 17 0.012345} {hello-00001 default hello hello hello-00001-deployment'
     '-abc 10.0.0.7} 4bf92f3577b34da6a3ce929d0e0e4736'),
    ('post', 'ok',
     '{{print .Response}} {{printf "%+v" .Revision}} {{printf "%#v" .Response}} {{printf "%T" .'
     'Request}}',
     '&{201 17 0.012345} &{Name:hello-00001 Namespace:default Service:hello Configuration:hello'
     ' PodName:hello-00001-deployment-abc PodIP:10.0.0.7} &http.RequestLogResponse{Code:201, Si'
     'ze:17, Latency:0.012345} *http.Request'),
    ('post', 'ok',
     '{{if .Request.TLS}}https{{else}}http{{end}} {{.Request.TLS}} {{.Request.Form}} {{.Request'
     '.MultipartForm}} {{.Request.Response}}',
     'http <nil> map[] <nil> <nil>'),
    ('post', 'ok',
     '{{.Request.URL.Query}} {{.Request.URL.Query.Get "name"}} {{.Request.URL.Hostname}} {{.Req'
     'uest.URL.Port}} {{.Request.URL.IsAbs}} {{.Request.URL.EscapedPath}} {{.Request.URL.Reques'
     'tURI}}',
     'map[flag:[] id:[7] name:[a b] q:[✓ ok]] a b   false /api/v1/items%2Fx/caf%C3%A9! /api/v1/'
     'items%2Fx/caf%C3%A9!?id=7&name=a%20b&flag&x=1;y=2&q=%E2%9C%93+ok'),
    ('post', 'ok',
     '{{printf "%s %d %v %q %x %f %.3f %t %%" .Request.Method .Response.Code .Response.Latency '
     '.Request.Method .Response.Code .Response.Latency .Response.Latency true}}',
     'POST 201 0.012345 "POST" c9 0.012345 0.012 true %'),
    ('post', 'ok',
     '{{printf "%5d|%-5d|%05d|%+d|%x|%X|%o|%O|%b|%c|%U|%#U|%q" 42 42 42 42 255 255 8 8 5 65 973'
     '1 9731 65}}',
     "   42|42   |00042|+42|ff|FF|10|0o10|101|A|U+2603|U+2603 '☃'|'A'"),
    ('post', 'ok',
     '{{printf "%e|%E|%g|%G|%.2e|%10.3f|%-10.3f|%+.1f|% .1f|%#g|%#.3g|%.0f" 1234.5678 1234.5678'
     ' 1234.5678 0.00001234 1234.5678 3.14159 3.14159 2.5 2.5 1.0 1.0 2.5}}',
     '1.234568e+03|1.234568E+03|1234.5678|1.234E-05|1.23e+03|     3.142|3.142     |+2.5| 2.5|1.'
     '00000|1.00|2'),
    ('post', 'ok',
     '{{printf "%v %v %v %v %v %v %v" 1e20 1e21 123456789.0 0.0001 0.00001 100000.0 1000000.0}}',
     '1e+20 1e+21 1.23456789e+08 0.0001 1e-05 100000 1e+06'),
    ('post', 'ok',
     '{{printf "%s|%10s|%-10s|%.2s|%q|%+q|%#q|%x|% x|%#x|%X" "héllo" "ab" "ab" "héllo" "a\\tb\\'
     'u00e9" "é" "a`b" "hi" "hi" "hi" "hi"}}',
     'héllo|        ab|ab        |hé|"a\\tbé"|"\\u00e9"|"a`b"|6869|68 69|0x6869|6869'),
    ('post', 'ok',
     '{{printf "%d %s" "x" 5}} {{printf "%d"}} {{printf "%d %d" 1}} {{printf "x" 1 "a"}} {{prin'
     'tf "%!"}} {{printf "%z" 3}}',
     '%!d(string=x) %!s(int=5) %!d(MISSING) 1 %!d(MISSING) x%!(EXTRA int=1, string=a) %!!(MISSI'
     'NG) %!z(int=3)'),
    ('post', 'ok',
     '{{printf "%v %v" .Request.Header.Accept .Request.URL.Query}}',
     '[*/* text/html] map[flag:[] id:[7] name:[a b] q:[✓ ok]]'),
    ('post', 'ok',
     '{{printf "%t %v %d" true false true}}',
     'true false %!d(bool=true)'),
    ('post', 'ok',
     '{{printf "%[2]d %[1]d %[3]d" 1 2}} {{printf "%*d|%-*d|%.*f" 5 1 5 1 2 3.14159}}',
     '2 1 %!d(BADINDEX)     1|1    |3.14'),
    # ---- text, trim, comments, control structures, variables, constants, builtins
    ('post', 'ok',
     'a  {{- .Request.Method -}}  b',
     'aPOSTb'),
    ('post', 'ok',
     'a {{- /* comment */ -}} b{{/* another */}}c',
     'abc'),
    ('post', 'ok',
     '{{23 -}} < {{- 45}}',
     '23<45'),
    ('post', 'ok',
     '{{-3}}',
     '-3'),
    ('post', 'ok',
     '{{ .Request.Method }}\n{{- "\\n" -}}\n{{.Request.Proto}}',
     'POST\nHTTP/1.1'),
    ('post', 'ok',
     '{{if eq .Response.Code 200}}ok{{else if ge .Response.Code 500}}error{{else}}other {{.Resp'
     'onse.Code}}{{end}}',
     'other 201'),
    ('post', 'exec',
     '{{if .Request.Header.Nope}}yes{{else}}no{{end}}|{{if .Request.URL.RawQuery}}q{{end}}|{{if'
     ' 0}}z{{end}}|{{if 0.0}}f{{end}}|{{if ""}}s{{end}}|{{if nil}}n{{end}}',
     'template: requestLog:1:144: executing "requestLog" at <nil>: nil is not a command'),
    ('post', 'exec',
     '{{if and .Request.Method (not .Request.TLS)}}plain{{end}} {{or .Request.Header.Nope "defa'
     'ult"}} {{and 1 0 2}} {{or 0 "" nil}} {{and}}',
     'template: requestLog:1:128: executing "requestLog" at <and>: wrong number of args for and'
     ': want at least 1 got 0'),
    ('post', 'ok',
     '{{with .Request.Header.Get "X-Empty"}}set{{else}}empty{{end}} {{with .Request.URL}}{{.Pat'
     'h}}{{end}} {{with $x := .Response.Code}}{{$x}}{{end}}',
     'empty /api/v1/items/x/café! 201'),
    ('post', 'ok',
     '{{with .Request.Header.Nope}}a{{else with .Request.Referer}}ref={{.}}{{else}}none{{end}}',
     'ref=https://example.com/page?a=1&b=2'),
    ('post', 'ok',
     '{{range .Request.Header.Accept}}<{{.}}>{{end}}{{range $i, $v := .Request.Header.Accept}}{'
     '{$i}}:{{$v}} {{end}}',
     '<*/*><text/html>0:*/* 1:text/html '),
    ('post', 'ok',
     '{{range .Request.Header.Nope}}x{{else}}nothing{{end}} {{range $x := .Request.URL.Query}}{'
     '{$x}}{{end}}',
     'nothing [][7][a b][✓ ok]'),
    ('post', 'exec',
     '{{range $i, $e := 5}}{{$i}}{{end}}',
     'template: requestLog:1:18: executing "requestLog" at <5>: can\'t use 5 to iterate over mo'
     're than one variable'),
    ('post', 'ok',
     '{{range 4}}{{.}}{{end}} {{range $i := 3}}[{{$i}}]{{end}} {{range 0}}x{{else}}empty{{end}}',
     '0123 [0][1][2] empty'),
    ('post', 'ok',
     '{{range $k, $v := .Request.Header}}{{if eq $k "Cookie"}}{{continue}}{{end}}{{if eq $k "Tr'
     'aceparent"}}{{break}}{{end}}{{$k}} {{end}}',
     'Accept Cache-Control Content-Length Pragma Referer '),
    ('post', 'exec',
     '{{range "abc"}}{{.}}{{end}}',
     'template: requestLog:1:8: executing "requestLog" at <"abc">: range can\'t iterate over abc'),
    ('post', 'ok',
     '{{$n := 0}}{{range .Request.Header.Accept}}{{$n = .}}{{end}}{{$n}}',
     'text/html'),
    ('post', 'ok',
     '{{range $x := .Request.Header.Nope}}{{else}}{{$x}}{{end}}',
     '<no value>'),
    ('post', 'ok',
     '{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}{{$x = 3}}{{$x}}',
     '213'),
    ('post', 'ok',
     '{{$.Request.Method}} {{with .Response}}{{$.Revision.Name}} {{.Code}}{{end}}',
     'POST hello-00001 201'),
    ('post', 'ok',
     '{{$x := .Response}}{{$x.Code}} {{$x.Latency}}',
     '201 0.012345'),
    ('post', 'ok',
     '{{.Request.Method | printf "%s!"}} {{"x" | printf "%s%s" "y"}} {{.Response.Code | print}}',
     'POST! yx 201'),
    ('post', 'ok',
     '{{printf "%q" (print "out" "put")}} {{(.Request.URL).Path}} {{(index .Request.Header "Acc'
     'ept") | len}}',
     '"output" /api/v1/items/x/café! 2'),
    ('post', 'ok',
     '{{"put" | printf "%s%s" "out" | printf "%q"}}',
     '"output"'),
    ('post', 'ok',
     '{{.Request.Header.Get "User-Agent" | js}} {{.Request.Header.Get "User-Agent" | html}} {{.'
     'Request.Header.Get "User-Agent" | urlquery}}',
     'curl/8.0 \\"quoted\\" \\u003Cb\\u003E\\u0026\\\'\\u003D curl/8.0 &#34;quoted&#34; &lt;b&g'
     't;&amp;&#39;= curl%2F8.0+%22quoted%22+%3Cb%3E%26%27%3D'),
    ('post', 'ok',
     '{{"a\\tb\\x41\\u00e9\\U0001F600\\101"}}|{{`raw\\n`}}|{{\'a\'}}|{{\'\\n\'}}|{{\'é\'}}|{{tr'
     'ue}}|{{false}}',
     'a\tbAé😀A|raw\\n|97|10|233|true|false'),
    ('post', 'ok',
     '{{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}} {{1.5}} {{1e3}} {{.5}} {{-7}} {{+7}} {{0x1p'
     '4}} {{1e-7}}',
     '31 15 15 5 1000 1.5 1000 0.5 -7 7 16 1e-07'),
    ('post', 'ok',
     '{{printf "%T %T %T %T %T %T" 1 1.0 "s" true \'a\' 1e3}} {{printf "%T" nil}}',
     'int float64 string bool int float64 <nil>'),
    ('post', 'ok',
     '{{2i}} {{1+2i}} {{printf "%T" 1i}} {{printf "%.1f" 1+2i}}',
     '(0+2i) (1+2i) complex128 (1.0+2.0i)'),
    ('post', 'ok',
     '{{len .Request.Header.Accept}} {{len "héllo"}} {{len .Request.Header}} {{len .Request.URL'
     '.Query}}',
     '2 6 11 4'),
    ('post', 'ok',
     '{{index .Request.Header.Accept 1}} {{index "abc" 1}} {{index .Request.URL.Query "name" 0}}',
     'text/html 98 a b'),
    ('post', 'ok',
     '{{slice "hello" 1 3}} {{slice .Request.Header.Accept 1}} {{slice "hello"}} {{slice "hello'
     '" 2}}',
     'el [text/html] hello llo'),
    ('post', 'ok',
     '{{print 1 2 "a" "b" 3 nil}}|{{println 1 "a"}}|{{print}}|{{print .Request.Header.Nope}}|{{'
     'print .Request.TLS}}',
     '1 2ab3 <nil>|1 a\n||<nil>|<nil>'),
    ('post', 'ok',
     '{{eq 1 1}} {{eq "a" "b" "a"}} {{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.'
     '5}} {{eq .Request.TLS nil}} {{eq nil nil}}',
     'true true true true true true false true true'),
    ('post', 'ok',
     '{{not 0}} {{not "x"}} {{not .Request.Header}} {{not nil}}',
     'true false false true'),
    ('post', 'ok',
     '{{html "<a href=\'x\'>&\\"\\x00"}} {{js "\\\\\'\\"<>&=\\t\\u2028é"}} {{urlquery "a b&c=d/'
     'é?"}} {{html 1 "a" 2}} {{js .Response.Code}}',
     '&lt;a href=&#39;x&#39;&gt;&amp;&#34;� \\\\\\\'\\"\\u003C\\u003E\\u0026\\u003D\\u0009\\u20'
     '28é a+b%26c%3Dd%2F%C3%A9%3F 1a2 201'),
    ('post', 'ok',
     '{{html .Request.Header.Nope}} {{js nil 1}} {{urlquery .Response}}',
     '&lt;no value&gt; \\u003Cno value\\u003E1 %7B201+17+0.012345%7D'),
    ('post', 'ok',
     '{{.Request.ProtoAtLeast 1 1}} {{.Request.ProtoAtLeast 2 0}} {{.Request.Header.Values "Acc'
     'ept"}} {{.Request.Header.Values "nope"}}',
     'true false [*/* text/html] []'),
    ('post', 'ok',
     '{{.Request.Cookie "session"}} {{(.Request.Cookie "theme").Value}} {{.Request.Cookies}} {{'
     'len .Request.Cookies}}',
     'session=abc123 dark [session=abc123 theme="dark"] 2'),
    ('post', 'ok',
     '{{.Request.FormValue "name"}}|{{.Request.PathValue "x"}}|{{.Request.URL.Query.Has "flag"}}',
     'a b||true'),
    ('post', 'ok',
     '{{define "T1"}}ONE{{end}}{{define "T2"}}TWO {{.}}{{end}}{{template "T1"}} {{template "T2"'
     ' .Request.Method}}',
     'ONE TWO POST'),
    ('post', 'ok',
     '{{block "b" .Response.Code}}code={{.}}{{end}}|{{template "b" 5}}',
     'code=201|code=5'),
    ('post', 'ok',
     '{{define "rec"}}{{if .}}{{len .}}{{template "rec" slice . 1}}{{end}}{{end}}{{template "re'
     'c" "abcd"}}',
     '4321'),
    ('post', 'ok',
     '{{define "requestLog"}}replaced {{.Request.Method}}{{end}}',
     'replaced POST'),
    # ---- templates Go refuses (parse errors) and executions that fail
    ('post', 'parse',
     '{{.Request.Method',
     'template: requestLog:1: unclosed action'),
    ('post', 'parse',
     '{"method": "{{.Request.Method"}',
     'template: requestLog:1: bad character U+0022 \'"\''),
    ('post', 'parse',
     '{{nope .Request.Method}}',
     'template: requestLog:1: function "nope" not defined'),
    ('post', 'parse',
     '{{$x}}',
     'template: requestLog:1: undefined variable "$x"'),
    ('post', 'parse',
     '{{if .Request.Method}}x',
     'template: requestLog:1: unexpected EOF'),
    ('post', 'parse',
     '{{end}}',
     'template: requestLog:1: unexpected {{end}}'),
    ('post', 'parse',
     '{{else}}',
     'template: requestLog:1: unexpected {{else}}'),
    ('post', 'parse',
     '{{if .A}}{{else}}{{else}}{{end}}',
     'template: requestLog:1: expected end; found {{else}}'),
    ('post', 'parse',
     '{{}}',
     'template: requestLog:1: missing value for command'),
    ('post', 'parse',
     '{{1 | 2}}',
     'template: requestLog:1: non executable command in pipeline stage 2'),
    ('post', 'parse',
     '{{.Request.Method | "x"}}',
     'template: requestLog:1: non executable command in pipeline stage 2'),
    ('post', 'parse',
     '{{break}}',
     'template: requestLog:1: {{break}} outside {{range}}'),
    ('post', 'parse',
     '{{range .A}}{{break 1}}{{end}}',
     'template: requestLog:1: unexpected "1" in {{break}}'),
    ('post', 'parse',
     '{{"unterminated}}',
     'template: requestLog:1: unterminated quoted string'),
    ('post', 'parse',
     '{{`raw}}',
     'template: requestLog:1: unterminated raw quoted string'),
    ('post', 'parse',
     "{{'ab'}}",
     "template: requestLog:1: malformed character constant: 'ab'"),
    ('post', 'parse',
     "{{''}}",
     'template: requestLog:1: invalid syntax'),
    ('post', 'parse',
     '{{"\\z"}}',
     'template: requestLog:1: invalid syntax'),
    ('post', 'parse',
     '{{0x}}',
     'template: requestLog:1: illegal number syntax: "0x"'),
    ('post', 'parse',
     '{{1a}}',
     'template: requestLog:1: bad number syntax: "1a"'),
    ('post', 'parse',
     '{{99999999999999999999}}',
     'template: requestLog:1: integer overflow: "99999999999999999999"'),
    ('post', 'parse',
     '{{089}}',
     'template: requestLog:1: integer overflow: "089"'),
    ('post', 'parse',
     '{{1e400}}',
     'template: requestLog:1: illegal number syntax: "1e400"'),
    ('post', 'parse',
     '{{.Request.Method-}}',
     "template: requestLog:1: bad character U+002D '-'"),
    ('post', 'parse',
     '{{/* unclosed }}',
     'template: requestLog:1: unclosed comment'),
    ('post', 'parse',
     '{{/* a */ .X}}',
     'template: requestLog:1: comment ends before closing delimiter'),
    ('post', 'parse',
     '{{(.A}}',
     'template: requestLog:1: unclosed left paren'),
    ('post', 'parse',
     '{{.A)}}',
     'template: requestLog:1: unexpected right paren'),
    ('post', 'parse',
     '{{range $a, $b, $c := .A}}{{end}}',
     'template: requestLog:1: too many declarations in range'),
    ('post', 'parse',
     '{{with $a, $b := .A}}{{end}}',
     'template: requestLog:1: too many declarations in with'),
    ('post', 'parse',
     '{{range $a, 1}}{{end}}',
     'template: requestLog:1: range can only initialize variables'),
    ('post', 'parse',
     '{{"a".B}}',
     'template: requestLog:1: unexpected . after term "\\"a\\""'),
    ('post', 'parse',
     '{{nil.B}}',
     'template: requestLog:1: unexpected . after term "nil"'),
    ('post', 'parse',
     '{{define "x"}}a{{end}}{{define "x"}}b{{end}}',
     'template: requestLog:1: template: multiple definition of template "x"'),
    ('post', 'parse',
     '{{define 1}}{{end}}',
     'template: requestLog:1: unexpected "1" in define clause'),
    ('post', 'parse',
     '{{template .X}}',
     'template: requestLog:1: unexpected ".X" in template clause'),
    ('post', 'parse',
     '{{.X :}}',
     'template: requestLog:1: expected :='),
    ('post', 'parse',
     '{{.X = 1}}',
     'template: requestLog:1: unexpected "=" in operand'),
    ('post', 'parse',
     '{{#}}',
     'template: requestLog:1: unexpected "#" in command'),
    ('post', 'parse',
     '{{é}}',
     'template: requestLog:1: function "é" not defined'),
    ('post', 'parse',
     '{{.Request\x01}}',
     'template: requestLog:1: bad character U+0001'),
    ('post', 'parse',
     'line1\n{{.A\nline2 }}',
     'template: requestLog:3: function "line2" not defined'),
    ('post', 'parse',
     'a\n{{if .A}}\nb\n{{end}}\n{{end}}',
     'template: requestLog:5: unexpected {{end}}'),
    ('post', 'parse',
     '{{if}}{{end}}',
     'template: requestLog:1: missing value for if'),
    ('post', 'parse',
     '{{with .A}}{{else if .B}}{{end}}',
     'template: requestLog:1: unexpected <if> in input'),
    ('post', 'exec',
     '{{.Request.Something}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.Something>: can\'t evaluat'
     'e field Something in type *http.Request'),
    ('post', 'exec',
     '{{.Response.Nope}}',
     'template: requestLog:1:11: executing "requestLog" at <.Response.Nope>: can\'t evaluate fi'
     'eld Nope in type *http.RequestLogResponse'),
    ('post', 'exec',
     'before {{.Request.ctx}} after',
     'template: requestLog:1:17: executing "requestLog" at <.Request.ctx>: ctx is an unexported'
     ' field of struct type *http.Request'),
    ('post', 'exec',
     '{{.Request.Method.Foo}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.Method.Foo>: can\'t evalua'
     'te field Foo in type string'),
    ('post', 'exec',
     '{{.Request.TLS.Version}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.TLS.Version>: nil pointer '
     'evaluating *tls.ConnectionState.Version'),
    ('post', 'exec',
     '{{.Request.TLS.Nope}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.TLS.Nope>: can\'t evaluate'
     ' field Nope in type *tls.ConnectionState'),
    ('post', 'exec',
     '{{.Request.Method "x"}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.Method>: Method has argume'
     'nts but cannot be invoked as function'),
    ('post', 'exec',
     '{{.Request.Header.Get}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.Header.Get>: wrong number '
     'of args for Get: want 1 got 0'),
    ('post', 'exec',
     '{{.Request.Header.Get 1}}',
     'template: requestLog:1:22: executing "requestLog" at <1>: expected string; found 1'),
    ('post', 'exec',
     '{{.Request.Header.Get .Response.Code}}',
     'template: requestLog:1:31: executing "requestLog" at <.Response.Code>: wrong type for val'
     'ue; expected string; got int'),
    ('post', 'exec',
     '{{.Request.Header.Get nil}}',
     'template: requestLog:1:22: executing "requestLog" at <nil>: cannot assign nil to string'),
    ('post', 'exec',
     '{{.Request.Header.Accept "x"}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.Header.Accept>: Accept is '
     'not a method but has arguments'),
    ('post', 'exec',
     '{{.Request.Header.Set "a" "b"}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.Header.Set>: function Set '
     'has 0 return values; should be 1 or 2'),
    ('post', 'exec',
     '{{.Request.BasicAuth}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.BasicAuth>: function Basic'
     'Auth has 3 return values; should be 1 or 2'),
    ('post', 'exec',
     '{{.Request.Cookie "nope"}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.Cookie>: error calling Coo'
     'kie: http: named cookie not present'),
    ('post', 'exec',
     '{{.Request.ProtoAtLeast "1" 1}}',
     'template: requestLog:1:24: executing "requestLog" at <"1">: expected integer; found "1"'),
    ('post', 'exec',
     '{{index .Request.Header.Accept 5}}',
     'template: requestLog:1:2: executing "requestLog" at <index .Request.Header.Accept 5>: err'
     'or calling index: index out of range: 5'),
    ('post', 'exec',
     '{{index .Request.Header.Accept 2}}',
     'template: requestLog:1:2: executing "requestLog" at <index .Request.Header.Accept 2>: err'
     'or calling index: reflect: slice index out of range'),
    ('post', 'exec',
     '{{index .Request.Header.Accept "x"}}',
     'template: requestLog:1:2: executing "requestLog" at <index .Request.Header.Accept "x">: e'
     'rror calling index: cannot index slice/array with type string'),
    ('post', 'exec',
     '{{index .Request.Header 1}}',
     'template: requestLog:1:2: executing "requestLog" at <index .Request.Header 1>: error call'
     'ing index: value has type int; should be string'),
    ('post', 'exec',
     '{{index nil 1}}',
     'template: requestLog:1:2: executing "requestLog" at <index nil 1>: error calling index: i'
     'ndex of untyped nil'),
    ('post', 'exec',
     '{{index .Response.Code 1}}',
     'template: requestLog:1:2: executing "requestLog" at <index .Response.Code 1>: error calli'
     "ng index: can't index item of type int"),
    ('post', 'exec',
     '{{slice "abc" 2 1}}',
     'template: requestLog:1:2: executing "requestLog" at <slice "abc" 2 1>: error calling slic'
     'e: invalid slice index: 2 > 1'),
    ('post', 'exec',
     '{{slice "abc" 1 2 3}}',
     'template: requestLog:1:2: executing "requestLog" at <slice "abc" 1 2 3>: error calling sl'
     'ice: cannot 3-index slice a string'),
    ('post', 'exec',
     '{{len .Response.Code}}',
     'template: requestLog:1:2: executing "requestLog" at <len .Response.Code>: error calling l'
     'en: len of type int'),
    ('post', 'exec',
     '{{len nil}}',
     'template: requestLog:1:2: executing "requestLog" at <len nil>: error calling len: reflect'
     ': call of reflect.Value.Type on zero Value'),
    ('post', 'exec',
     '{{eq .Response.Code "200"}}',
     'template: requestLog:1:2: executing "requestLog" at <eq .Response.Code "200">: error call'
     'ing eq: incompatible types for comparison: int and string'),
    ('post', 'exec',
     '{{eq .Response.Latency 0}}',
     'template: requestLog:1:2: executing "requestLog" at <eq .Response.Latency 0>: error calli'
     'ng eq: incompatible types for comparison: float64 and int'),
    ('post', 'exec',
     '{{lt true false}}',
     'template: requestLog:1:2: executing "requestLog" at <lt true false>: error calling lt: in'
     'valid type for comparison'),
    ('post', 'exec',
     '{{lt nil 1}}',
     'template: requestLog:1:2: executing "requestLog" at <lt nil 1>: error calling lt: invalid'
     ' type for comparison'),
    ('post', 'exec',
     '{{eq 1}}',
     'template: requestLog:1:2: executing "requestLog" at <eq 1>: error calling eq: missing arg'
     'ument for comparison'),
    ('post', 'exec',
     '{{ne 1}}',
     'template: requestLog:1:2: executing "requestLog" at <ne>: wrong number of args for ne: wa'
     'nt 2 got 1'),
    ('post', 'exec',
     '{{not 1 2}}',
     'template: requestLog:1:2: executing "requestLog" at <not>: wrong number of args for not: '
     'want 1 got 2'),
    ('post', 'exec',
     '{{eq .Request.Header .Request.Header}}',
     'template: requestLog:1:2: executing "requestLog" at <eq .Request.Header .Request.Header>:'
     ' error calling eq: non-comparable type map[Accept:[*/* text/html] Cache-Control:[no-cache'
     '] Content-Length:[11] Cookie:[session=abc123; theme="dark"; bad name=1] Pragma:[no-cache]'
     ' Referer:[https://example.com/page?a=1&b=2] Traceparent:[00-4bf92f3577b34da6a3ce929d0e0e4'
     '736-00f067aa0ba902b7-01] User-Agent:[curl/8.0 "quoted" <b>&\'=] X-B3-Traceid:[463ac35c9f6'
     '413ad] X-Custom-Lower:[MiXeD Value] X-Empty:[]]: http.Header'),
    ('post', 'exec',
     '{{nil}}',
     'template: requestLog:1:2: executing "requestLog" at <nil>: nil is not a command'),
    ('post', 'exec',
     '{{"x" 1}}',
     'template: requestLog:1:2: executing "requestLog" at <"x">: can\'t give argument to non-fu'
     'nction "x"'),
    ('post', 'exec',
     '{{. 1}}',
     'template: requestLog:1:2: executing "requestLog" at <.>: can\'t give argument to non-func'
     'tion .'),
    ('post', 'exec',
     '{{printf 3}}',
     'template: requestLog:1:9: executing "requestLog" at <3>: expected string; found 3'),
    ('post', 'exec',
     '{{printf .Response.Code}}',
     'template: requestLog:1:18: executing "requestLog" at <.Response.Code>: wrong type for val'
     'ue; expected string; got int'),
    ('post', 'exec',
     '{{printf}}',
     'template: requestLog:1:2: executing "requestLog" at <printf>: wrong number of args for pr'
     'intf: want at least 1 got 0'),
    ('post', 'exec',
     '{{call .Request.UserAgent}}',
     'template: requestLog:1:2: executing "requestLog" at <call .Request.UserAgent>: error call'
     'ing call: non-function .Request.UserAgent of type string'),
    ('post', 'exec',
     '{{call nil}}',
     'template: requestLog:1:2: executing "requestLog" at <call nil>: error calling call: call '
     'of nil'),
    ('post', 'exec',
     '{{"x" | call}}',
     'template: requestLog:1:8: executing "requestLog" at <call>: error calling call: non-funct'
     'ion x of type string'),
    ('post', 'exec',
     '{{template "nope"}}',
     'template: requestLog:1:11: executing "requestLog" at <{{template "nope"}}>: template "nop'
     'e" not defined'),
    ('post', 'exec',
     '{{$x = 1}}',
     'template: requestLog:1:7: executing "requestLog" at <1>: undefined variable: $x'),
    ('post', 'ok',
     '{{if true}}{{$x := 1}}{{else}}{{$x}}{{end}}',
     ''),
    ('post', 'exec',
     '{{if false}}{{$y := 1}}{{else}}{{$y}}{{end}}',
     'template: requestLog:1:33: executing "requestLog" at <$y>: undefined variable: $y'),
    ('post', 'exec',
     '{{18446744073709551615}}',
     'template: requestLog:1:2: executing "requestLog" at <18446744073709551615>: 1844674407370'
     '9551615 overflows int'),
    ('post', 'ok',
     '{{.Request.Header.Nope.Deeper}}',
     '<no value>'),
    ('post', 'exec',
     '{{range .Response}}{{end}}',
     'template: requestLog:1:8: executing "requestLog" at <.Response>: range can\'t iterate ove'
     'r {201 17 0.012345}'),
    ('post', 'exec',
     '{{range .Request.TLS}}{{end}}',
     'template: requestLog:1:16: executing "requestLog" at <.Request.TLS>: range can\'t iterate'
     ' over <nil>'),
    ('post', 'exec',
     '{{with .Request.Header.Get}}{{end}}',
     'template: requestLog:1:15: executing "requestLog" at <.Request.Header.Get>: wrong number '
     'of args for Get: want 1 got 0'),
    ('post', 'exec',
     '{{.Request.URL.Query.Get}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.URL.Query.Get>: wrong numb'
     'er of args for Get: want 1 got 0'),
    ('post', 'exec',
     '{{(1).X}}',
     'template: requestLog:1:3: executing "requestLog" at <1>: can\'t evaluate field X in type '
     'int'),
    ('post', 'exec',
     '{{$x := 1}}{{$x.Y}}',
     'template: requestLog:1:15: executing "requestLog" at <$x.Y>: can\'t evaluate field Y in t'
     'ype int'),
    ('post', 'exec',
     '{{.Response.Code.X}}',
     'template: requestLog:1:11: executing "requestLog" at <.Response.Code.X>: can\'t evaluate '
     'field X in type int'),
    ('post', 'exec',
     '{{and 1 (index "a" 5)}}',
     'template: requestLog:1:9: executing "requestLog" at <index "a" 5>: error calling index: i'
     'ndex out of range: 5'),
    ('post', 'ok',
     '{{or 1 (index "a" 5)}}',
     '1'),
    # ---- other requests; Knative's templates; more of fmt
    ('get10', 'ok',
     '{{.Request.Method}}|{{.Request.URL}}|{{.Request.URL.Scheme}}|{{.Request.URL.Host}}|{{.Req'
     'uest.URL.Path}}|{{.Request.URL.RawQuery}}|{{.Request.URL.ForceQuery}}|{{.Request.URL.Omit'
     'Host}}|{{.Request.Host}}|{{.Request.Proto}}|{{.Request.ContentLength}}|{{.Request.Transfe'
     'rEncoding}}|{{.Request.Close}}|{{.Request.UserAgent}}|{{.Request.Header}}|{{.Request.URL.'
     'RequestURI}}|{{.Request.URL.Hostname}}|{{.Request.URL.Port}}|{{.Request.URL.IsAbs}}|{{.Tr'
     'aceID}}',
     'GET|/|||/||false|false||HTTP/1.0|0|[]|true|probe|map[User-Agent:[probe]]|/|||false|'),
    ('chunked', 'ok',
     '{{.Request.Method}}|{{.Request.URL}}|{{.Request.URL.Scheme}}|{{.Request.URL.Host}}|{{.Req'
     'uest.URL.Path}}|{{.Request.URL.RawQuery}}|{{.Request.URL.ForceQuery}}|{{.Request.URL.Omit'
     'Host}}|{{.Request.Host}}|{{.Request.Proto}}|{{.Request.ContentLength}}|{{.Request.Transfe'
     'rEncoding}}|{{.Request.Close}}|{{.Request.UserAgent}}|{{.Request.Header}}|{{.Request.URL.'
     'RequestURI}}|{{.Request.URL.Hostname}}|{{.Request.URL.Port}}|{{.Request.URL.IsAbs}}|{{.Tr'
     'aceID}}',
     'PUT|/up?x|||/up|x|false|false|h.example:8080|HTTP/1.1|-1|[chunked]|true||map[Connection:['
     'close]]|/up?x|||false|'),
    ('abs', 'ok',
     '{{.Request.Method}}|{{.Request.URL}}|{{.Request.URL.Scheme}}|{{.Request.URL.Host}}|{{.Req'
     'uest.URL.Path}}|{{.Request.URL.RawQuery}}|{{.Request.URL.ForceQuery}}|{{.Request.URL.Omit'
     'Host}}|{{.Request.Host}}|{{.Request.Proto}}|{{.Request.ContentLength}}|{{.Request.Transfe'
     'rEncoding}}|{{.Request.Close}}|{{.Request.UserAgent}}|{{.Request.Header}}|{{.Request.URL.'
     'RequestURI}}|{{.Request.URL.Hostname}}|{{.Request.URL.Port}}|{{.Request.URL.IsAbs}}|{{.Tr'
     'aceID}}',
     'GET|http://other.example:81/p/a%20th?q=1|http|other.example:81|/p/a th|q=1|false|false|ot'
     'her.example:81|HTTP/1.1|0|[]|false||map[]|/p/a%20th?q=1|other.example|81|true|'),
    ('star', 'ok',
     '{{.Request.Method}}|{{.Request.URL}}|{{.Request.URL.Scheme}}|{{.Request.URL.Host}}|{{.Req'
     'uest.URL.Path}}|{{.Request.URL.RawQuery}}|{{.Request.URL.ForceQuery}}|{{.Request.URL.Omit'
     'Host}}|{{.Request.Host}}|{{.Request.Proto}}|{{.Request.ContentLength}}|{{.Request.Transfe'
     'rEncoding}}|{{.Request.Close}}|{{.Request.UserAgent}}|{{.Request.Header}}|{{.Request.URL.'
     'RequestURI}}|{{.Request.URL.Hostname}}|{{.Request.URL.Port}}|{{.Request.URL.IsAbs}}|{{.Tr'
     'aceID}}',
     'OPTIONS|*|||*||false|false|h|HTTP/1.1|0|[]|false||map[]|*|||false|'),
    ('post', 'ok',
     '{"httpRequest": {"requestMethod": "{{.Request.Method}}", "requestUrl": "{{js .Request.Req'
     'uestURI}}", "requestSize": "{{.Request.ContentLength}}", "status": {{.Response.Code}}, "r'
     'esponseSize": "{{.Response.Size}}", "userAgent": "{{js .Request.UserAgent}}", "remoteIp":'
     ' "{{js .Request.RemoteAddr}}", "serverIp": "{{.Revision.PodIP}}", "referer": "{{js .Reque'
     'st.Referer}}", "latency": "{{.Response.Latency}}s", "protocol": "{{.Request.Proto}}"}, "t'
     'raceId": "{{.TraceID}}"}\n',
     '{"httpRequest": {"requestMethod": "POST", "requestUrl": "/api/v1/items%2Fx/caf%C3%A9!?id'
     '\\u003D7\\u0026name\\u003Da%20b\\u0026flag\\u0026x\\u003D1;y\\u003D2\\u0026q\\u003D%E2%9C'
     '%93+ok", "requestSize": "11", "status": 201, "responseSize": "17", "userAgent": "curl/8.0'
     ' \\"quoted\\" \\u003Cb\\u003E\\u0026\\\'\\u003D", "remoteIp": "10.1.2.3:45678", "serverIp'
     '": "10.0.0.7", "referer": "https://example.com/page?a\\u003D1\\u0026b\\u003D2", "latency"'
     ': "0.012345s", "protocol": "HTTP/1.1"}, "traceId": "4bf92f3577b34da6a3ce929d0e0e4736"}\n'),
    ('get10', 'ok',
     '{"httpRequest": {"requestMethod": "{{.Request.Method}}", "requestUrl": "{{js .Request.Req'
     'uestURI}}", "requestSize": "{{.Request.ContentLength}}", "status": {{.Response.Code}}, "r'
     'esponseSize": "{{.Response.Size}}", "userAgent": "{{js .Request.UserAgent}}", "remoteIp":'
     ' "{{js .Request.RemoteAddr}}", "serverIp": "{{.Revision.PodIP}}", "referer": "{{js .Reque'
     'st.Referer}}", "latency": "{{.Response.Latency}}s", "protocol": "{{.Request.Proto}}"}, "t'
     'raceId": "{{.TraceID}}"}\n',
     '{"httpRequest": {"requestMethod": "GET", "requestUrl": "/", "requestSize": "0", "status":'
     ' 201, "responseSize": "17", "userAgent": "probe", "remoteIp": "10.1.2.3:45678", "serverIp'
     '": "10.0.0.7", "referer": "", "latency": "0.012345s", "protocol": "HTTP/1.0"}, "traceId":'
     ' ""}\n'),
    ('post', 'ok',
     '{"httpRequest": {"requestMethod": "{{.Request.Method}}", "requestUrl": "{{js .Request.Req'
     'uestURI}}", "requestSize": "{{.Request.ContentLength}}", "status": {{.Response.Code}}, "r'
     'esponseSize": "{{.Response.Size}}", "userAgent": "{{js .Request.UserAgent}}", "remoteIp":'
     ' "{{js .Request.RemoteAddr}}", "serverIp": "{{.Revision.PodIP}}", "referer": "{{js .Reque'
     'st.Referer}}", "latency": "{{.Response.Latency}}s", "protocol": "{{.Request.Proto}}"}, "t'
     'raceId": "{{index .Request.Header "X-B3-Traceid"}}"}\n',
     '{"httpRequest": {"requestMethod": "POST", "requestUrl": "/api/v1/items%2Fx/caf%C3%A9!?id'
     '\\u003D7\\u0026name\\u003Da%20b\\u0026flag\\u0026x\\u003D1;y\\u003D2\\u0026q\\u003D%E2%9C'
     '%93+ok", "requestSize": "11", "status": 201, "responseSize": "17", "userAgent": "curl/8.0'
     ' \\"quoted\\" \\u003Cb\\u003E\\u0026\\\'\\u003D", "remoteIp": "10.1.2.3:45678", "serverIp'
     '": "10.0.0.7", "referer": "https://example.com/page?a\\u003D1\\u0026b\\u003D2", "latency"'
     ': "0.012345s", "protocol": "HTTP/1.1"}, "traceId": "[463ac35c9f6413ad]"}\n'),
    ('post', 'ok',
     '{{- /* access log */ -}}\n{\n  "method": "{{ .Request.Method }}",\n  "path": "{{ .Request'
     '.URL.Path }}",\n  "status": {{ .Response.Code }}\n}\n',
     '{\n  "method": "POST",\n  "path": "/api/v1/items/x/café!",\n  "status": 201\n}\n'),
    ('post', 'ok',
     '{{.Request.Method}} {{.Request.URL.Path}} {{.Response.Code}} {{printf "%.3f" .Response.La'
     'tency}}s {{.Response.Size}}B "{{.Request.UserAgent}}"',
     'POST /api/v1/items/x/café! 201 0.012s 17B "curl/8.0 "quoted" <b>&\'="'),
    ('post', 'ok',
     '{{with .Request.Header.Get "X-Request-Id"}}{{.}}{{else}}-{{end}} {{.Revision.Namespace}}/'
     '{{.Revision.Name}} {{.Revision.Service}}/{{.Revision.Configuration}} {{.Revision.PodName}'
     '}',
     '- default/hello-00001 hello/hello hello-00001-deployment-abc'),
    ('post', 'parse',
     '{{range $k, $v := .Request.Header}}{{if hasPrefix $k "X-"}}{{end}}{{end}}',
     'template: requestLog:1: function "hasPrefix" not defined'),
    ('post', 'ok',
     '{{printf "%v|%+v|%#v|%T" .Request.Header.Accept .Request.Header.Accept .Request.Header.Ac'
     'cept .Request.Header.Accept}}',
     '[*/* text/html]|[*/* text/html]|[]string{"*/*", "text/html"}|[]string'),
    ('post', 'ok',
     '{{printf "%#v|%#v|%#v|%#v|%#v" "s" 1 1.5 true .Request.URL.Query}}',
     '"s"|1|1.5|true|url.Values{"flag":[]string{""}, "id":[]string{"7"}, "name":[]string{"a b"}'
     ', "q":[]string{"✓ ok"}}'),
    ('post', 'ok',
     '{{printf "%#v %#v" .Revision .Request.TLS}}',
     '&http.RequestLogRevision{Name:"hello-00001", Namespace:"default", Service:"hello", Config'
     'uration:"hello", PodName:"hello-00001-deployment-abc", PodIP:"10.0.0.7"} (*tls.Connection'
     'State)(nil)'),
    ('post', 'ok',
     '{{printf "%v %d %s" .Request.TLS .Request.TLS .Request.TLS}}',
     '<nil> 0 %!s(*tls.ConnectionState=<nil>)'),
    ('post', 'ok',
     '{{printf "%x %X %o %b %e" 3.5 -3.5 8.5 1.0 0.0}}',
     '0x1.cp+01 -0X1.CP+01 %!o(float64=8.5) 4503599627370496p-52 0.000000e+00'),
    ('post', 'ok',
     '{{printf "%8.3e|%-8.2g|%08.3f|%+08.3f|%x|%.0e" 1234.5678 0.000012345 -3.14159 3.14159 1e-'
     '300 5e5}}',
     '1.235e+03|1.2e-05 |-003.142|+003.142|0x1.56e1fc2f8f359p-997|5e+05'),
    ('post', 'ok',
     '{{printf "%v %v %v %v" 0.1 0.7 1e-320 5e-324}}',
     '0.1 0.7 1e-320 5e-324'),
    ('post', 'ok',
     '{{printf "%5t|%-7t|%q|%v" true false true nil}}',
     ' true|false  |%!q(bool=true)|<nil>'),
    ('post', 'ok',
     '{{printf "%c%c%c" 72 105 0x1F600}} {{printf "%q %+q %#q" 0x1F600 0x1F600 \'x\'}} {{printf'
     ' "%U" -1}}',
     "Hi😀 '😀' '\\U0001f600' 'x' U+FFFFFFFFFFFFFFFF"),
    ('post', 'ok',
     '{{printf "%6.2s|%-6.2q|%06s|%-06d|%x" "abcdef" "abcdef" "ab" 5 -255}}',
     '    ab|"ab"  |0000ab|5     |-ff'),
    ('post', 'ok',
     '{{printf "%s" .Request.Header}}',
     'map[Accept:[*/* text/html] Cache-Control:[no-cache] Content-Length:[11] Cookie:[session=a'
     'bc123; theme="dark"; bad name=1] Pragma:[no-cache] Referer:[https://example.com/page?a=1&'
     'b=2] Traceparent:[00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01] User-Agent:[cu'
     'rl/8.0 "quoted" <b>&\'=] X-B3-Traceid:[463ac35c9f6413ad] X-Custom-Lower:[MiXeD Value] X-E'
     'mpty:[]]'),
    ('post', 'ok',
     '{{printf "%d" .Request.Header.Accept}} {{printf "%s" .Response.Code}} {{printf "%v" .Resp'
     'onse}}',
     '[%!d(string=*/*) %!d(string=text/html)] %!s(int=201) &{201 17 0.012345}'),
    ('post', 'ok',
     '{{printf "%-10v|%10v" .Response.Code .Request.Method}}',
     '201       |      POST'),
    ('post', 'ok',
     '{{println}}{{println "a" 1 2 "b"}}',
     '\na 1 2 b\n'),
    ('post', 'ok',
     '{{js "\\u00e9\\u200b\\x7f\\x1b"}}|{{html "\\u00e9\\x00"}}|{{urlquery "~-._ !*\'()"}}',
     'é\\u200B\x7f\\u001B|é�|~-._+%21%2A%27%28%29'),
    ('post', 'ok',
     '{{.Request.URL.Query.Encode}}',
     'flag=&id=7&name=a+b&q=%E2%9C%93+ok'),
    ('post', 'ok',
     '{{len .Request.URL.Query.name}} {{.Request.URL.Query.name}} {{index .Request.URL.Query "x'
     '"}}',
     '1 [a b] []'),
    ('post', 'exec',
     '{{ .Request.Method | len }} {{ "abc" | slice 1 }}',
     'template: requestLog:1:39: executing "requestLog" at <slice 1>: error calling slice: can'
     "'t slice item of type int"),
    ('post', 'exec',
     '{{slice .Request.Header.Accept 0 1 2}} {{slice .Request.Header.Accept 0 3}}',
     'template: requestLog:1:41: executing "requestLog" at <slice .Request.Header.Accept 0 3>: '
     'error calling slice: index out of range: 3'),
    ('post', 'exec',
     '{{index .Request.Header.Accept -1}}',
     'template: requestLog:1:2: executing "requestLog" at <index .Request.Header.Accept -1>: er'
     'ror calling index: index out of range: -1'),
    ('post', 'exec',
     '{{index . "x"}}',
     'template: requestLog:1:2: executing "requestLog" at <index . "x">: error calling index: c'
     "an't index item of type http.RequestLogTemplateInput"),
    ('post', 'ok',
     '{{$x := .Request.Header.Accept}}{{index $x 0}} {{$x}}',
     '*/* [*/* text/html]'),
    ('post', 'ok',
     '{{range $i, $v := .Request.Header.Accept}}{{if $i}}, {{end}}{{$v}}{{end}}',
     '*/*, text/html'),
    ('post', 'ok',
     '{{range .Request.URL.Query}}{{.}}{{end}}',
     '[][7][a b][✓ ok]'),
    ('post', 'ok',
     '{{if not (eq .Request.Method "GET" "HEAD")}}mutating{{end}} {{if and (ge .Response.Code 2'
     '00) (lt .Response.Code 300)}}2xx{{end}}',
     'mutating 2xx'),
    ('post', 'ok',
     '{{eq .Request.ContentLength 11}} {{eq .Request.ProtoMajor 1}} {{printf "%T %T" .Request.C'
     'ontentLength .Request.ProtoMajor}}',
     'true true int64 int'),
    ('post', 'ok',
     '{{eq .Request.URL.Path "/x"}} {{ne .TraceID ""}} {{lt .Response.Latency 1.0}} {{gt .Respo'
     'nse.Latency 0.01}}',
     'false true true true'),
    ('post', 'ok',
     '{{ .Request.Header.Get "Content-Length" | printf "%s bytes" }}',
     '11 bytes'),
    ('post', 'exec',
     '{{.Request.Trailer}} {{.Request.Body}} {{.Request.Pattern}}|{{.Request.Cancel}}',
     'template: requestLog:1:62: executing "requestLog" at <{{.Request.Cancel}}>: can\'t print '
     '{{.Request.Cancel}} of type <-chan struct {}'),
    ('post', 'ok',
     '{{.Request.Header.Values "Cache-Control"}} {{.Request.Header.Pragma}}',
     '[no-cache] [no-cache]'),
    ('post', 'ok',
     '{{.Request.Cookie "theme"}} {{printf "%v" (.Request.Cookie "session")}}',
     'theme="dark" session=abc123'),
    ('trailer', 'ok',
     '{{.Request.Header}} {{.Request.Trailer}} {{.Request.ContentLength}}',
     'map[] map[Expires:[] X-Checksum:[]] -1'),
    ('dupcl', 'ok',
     '{{.Request.Header}} {{.Request.Close}} {{.Request.ContentLength}}',
     'map[Connection:[keep-alive] Content-Length:[3]] false 3'),
    ('get10', 'ok',
     '{{.Request.Body}}',
     '{}'),
    ('post', 'ok',
     '{{print .Request.Cancel}} {{if .Request.Cancel}}y{{else}}n{{end}} {{printf "%v" .Request.'
     'GetBody}}',
     '<nil> n <nil>'),
    ('post', 'exec',
     '{{.Request.GetBody}}',
     'template: requestLog:1:2: executing "requestLog" at <{{.Request.GetBody}}>: can\'t print '
     '{{.Request.GetBody}} of type func() (io.ReadCloser, error)'),
    ('post', 'exec',
     '{{len .Response}}',
     'template: requestLog:1:2: executing "requestLog" at <len .Response>: error calling len: l'
     'en of type http.RequestLogResponse'),
    ('post', 'exec',
     '{{slice .Response 1}}',
     'template: requestLog:1:2: executing "requestLog" at <slice .Response 1>: error calling sl'
     "ice: can't slice item of type http.RequestLogResponse"),
    ('connect', 'ok',
     '{{.Request.Method}}|{{.Request.URL}}|{{.Request.URL.Scheme}}|{{.Request.URL.Host}}|{{.Req'
     'uest.URL.Path}}|{{.Request.URL.RawQuery}}|{{.Request.URL.ForceQuery}}|{{.Request.URL.Omit'
     'Host}}|{{.Request.Host}}|{{.Request.Proto}}|{{.Request.ContentLength}}|{{.Request.Transfe'
     'rEncoding}}|{{.Request.Close}}|{{.Request.UserAgent}}|{{.Request.Header}}|{{.Request.URL.'
     'RequestURI}}|{{.Request.URL.Hostname}}|{{.Request.URL.Port}}|{{.Request.URL.IsAbs}}|{{.Tr'
     'aceID}}',
     'CONNECT|//example.com:443||example.com:443|||false|false|example.com:443|HTTP/1.1|0|[]|fa'
     'lse||map[]|/|example.com|443|false|'),
    # ---- bytes that are not UTF-8, non-ASCII text
    ('bytes', 'ok',
     '{{.Request.UserAgent}}|{{js .Request.UserAgent}}|{{html .Request.UserAgent}}|{{urlquery .'
     'Request.UserAgent}}|{{printf "%q|%+q|%x|%.3s|%5.2s" .Request.UserAgent .Request.UserAgent'
     ' .Request.UserAgent .Request.UserAgent .Request.UserAgent}}|{{len .Request.UserAgent}}|{{'
     'slice .Request.UserAgent 3 5}}|{{index .Request.UserAgent 3}}',
     'café \udcff\udcfe\u2028 😀|café \udcff\udcfe\\u2028 😀|café \udcff\udcfe\u2028 😀|caf%C3%A9+'
     '%FF%FE%E2%80%A8+%F0%9F%98%80|"café \\xff\\xfe\\u2028 😀"|"caf\\u00e9 \\xff\\xfe\\u2028 \\U'
     '0001f600"|636166c3a920fffee280a820f09f9880|caf|   ca|16|é|195'),
    ('bytes', 'ok',
     '{{.Request.URL.Path}}|{{.Request.URL.RawPath}}|{{.Request.URL}}|{{.Request.URL.Query}}|{{'
     '.Request.RequestURI}}|{{js .Request.RequestURI}}|{{.Request.Header}}|{{printf "%q" .Reque'
     'st.Header}}',
     '/é|/é|/%C3%A9?x=%ff|map[x:[\udcff]]|/é?x=%ff|/é?x\\u003D%ff|map[User-Agent:[café \udcff'
     '\udcfe\u2028 😀] X-Ctl:[a\tb]]|map["User-Agent":["café \\xff\\xfe\\u2028 😀"] "X-Ctl":["a\\'
     'tb"]]'),
    ('bytes', 'exec',
     '{{printf "%v|%q|%x" .Request.Header.Get "X-Ctl" .Request.Header.Get "X-Ctl"}}',
     'template: requestLog:1:28: executing "requestLog" at <.Request.Header.Get>: wrong number '
     'of args for Get: want 1 got 0'),
    ('bytes', 'ok',
     '{{printf "%q" (.Request.Header.Get "X-Ctl")}} {{js (.Request.Header.Get "X-Ctl")}}',
     '"a\\tb" a\\u0009b'),
    ('post', 'exec',
     'é {{.Request.Nope}}',
     'template: requestLog:1:13: executing "requestLog" at <.Request.Nope>: can\'t evaluate fie'
     'ld Nope in type *http.Request'),
    ('post', 'exec',
     'ligne\nzwei é {{.Request.Nope}}',
     'template: requestLog:2:18: executing "requestLog" at <.Request.Nope>: can\'t evaluate fie'
     'ld Nope in type *http.Request'),
    ('post', 'ok',
     '{{/* é */}}{{printf "%s %q %x % X %U" "€" "€" "€" "€" \'€\'}}',
     '€ "€" e282ac E2 82 AC U+20AC'),
    ('post', 'ok',
     '{{"\\xff\\xfe" | printf "%q %x %v"}} {{len "\\xff"}}',
     '"\\xff\\xfe" %!x(MISSING) %!v(MISSING) 1'),
    ('post', 'ok',
     '{{printf "%.2q|%6q|%-6q|%06q" "héllo" "é" "é" "é"}}',
     '"hé"|   "é"|"é"   |000"é"'),
    ('post', 'ok',
     '{{printf "%c|%q|%U" 0xD800 0xD800 0xD800}}',
     "�|'�'|U+D800"),
    # ---- named templates: define, template, block
    ('post', 'exec',
     '{{define "x"}}in x {{.Nope}}{{end}}{{template "x" .Request}}',
     'template: requestLog:1:21: executing "x" at <.Nope>: can\'t evaluate field Nope in type *'
     'http.Request'),
    ('post', 'exec',
     '{{define "x"}}{{index . 9}}{{end}}a{{template "x" .Request.Header.Accept}}',
     'template: requestLog:1:16: executing "x" at <index . 9>: error calling index: index out o'
     'f range: 9'),
    ('post', 'exec',
     '{{block "b" .}}{{.Response.Nope}}{{end}}',
     'template: requestLog:1:26: executing "b" at <.Response.Nope>: can\'t evaluate field Nope '
     'in type *http.RequestLogResponse'),
    ('post', 'ok',
     '{{template "x"}}{{define "x"}}nil dot: {{.}} {{print .}}{{end}}',
     'nil dot: <no value> <nil>'),
    ('post', 'ok',
     '{{define "x"}}{{end}}{{template "x" .}}done',
     'done'),
    ('post', 'ok',
     '{{define "x"}} {{/* only space */}} {{end}}{{define "x"}}second{{end}}{{template "x"}}',
     'second'),
    ('post', 'ok',
     '{{define "x"}}first{{end}}{{define "x"}}  {{end}}{{template "x"}}',
     'first'),
    # ---- methods: nil receivers, pipelines into methods, cookies, URL forms
    ('post', 'ok',
     '[{{.Request.URL.User}}] [{{.Request.URL.User.Username}}] {{if .Request.URL.User}}u{{else}'
     '}nou{{end}} {{printf "%v|%s|%d" .Request.URL.User .Request.URL.User .Request.URL.User}}',
     '[] [] nou ||0'),
    ('post', 'ok',
     '{{.Request.Header.Clone}} {{len .Request.Header.Clone}}',
     'map[Accept:[*/* text/html] Cache-Control:[no-cache] Content-Length:[11] Cookie:[session=a'
     'bc123; theme="dark"; bad name=1] Pragma:[no-cache] Referer:[https://example.com/page?a=1&'
     'b=2] Traceparent:[00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01] User-Agent:[cu'
     'rl/8.0 "quoted" <b>&\'=] X-B3-Traceid:[463ac35c9f6413ad] X-Custom-Lower:[MiXeD Value] X-E'
     'mpty:[]] 11'),
    ('post', 'exec',
     '{{.Request.Header.Get "Accept" "x"}}',
     'template: requestLog:1:10: executing "requestLog" at <.Request.Header.Get>: wrong number '
     'of args for Get: want 1 got 2'),
    ('post', 'ok',
     '{{"Accept" | .Request.Header.Get}}',
     '*/*'),
    ('post', 'ok',
     '{{.Request.URL.Query.Get "id" | printf "%s-%s" "x"}}',
     'x-7'),
    ('post', 'ok',
     '{{with $h := .Request.Header}}{{range $k, $v := $h}}{{if eq $k "Accept"}}{{index $v 0}}{{'
     'end}}{{end}}{{end}}',
     '*/*'),
    ('post', 'ok',
     '{{range $i, $c := .Request.Cookies}}{{$i}}:{{$c.Name}}={{$c.Value}} {{end}}',
     '0:session=abc123 1:theme=dark '),
    ('post', 'ok',
     '{{printf "%v" .Request.Cookies}}',
     '[session=abc123 theme="dark"]'),
    ('post', 'ok',
     '{{.Request.URL.Query.Encode}}',
     'flag=&id=7&name=a+b&q=%E2%9C%93+ok'),
    ('abs', 'ok',
     '{{.Request.URL}} {{.Request.URL.Hostname}} {{.Request.URL.Port}} {{.Request.URL.Redacted}'
     '} {{.Request.URL.RequestURI}}',
     'http://other.example:81/p/a%20th?q=1 other.example 81 http://other.example:81/p/a%20th?q='
     '1 /p/a%20th?q=1'),
    ('connect', 'ok',
     '{{.Request.URL}}|{{.Request.URL.Path}}|{{.Request.URL.Host}}|{{.Request.Host}}|{{.Request'
     '.RequestURI}}',
     '//example.com:443||example.com:443|example.com:443|example.com:443'),
]


@pytest.mark.parametrize(("request_name", "kind", "template", "expected"), CASES,
                         ids=[f"{i:03d}" for i in range(len(CASES))])
def test_template_renders_as_go(request_name: str, kind: str, template: str,
                                expected: str) -> None:
    if kind == "parse":
        with pytest.raises(ParseError) as refused:
            parse(template)
        assert str(refused.value) == expected
        return
    compiled = parse(template)
    ex = exchange(REQUESTS[request_name])
    data = template_input(ex, CODE, SIZE, LATENCY, REVISION)
    if kind == "exec":
        with pytest.raises(ExecError) as failed:
            compiled.execute(data)
        assert str(failed.value) == expected
        return
    assert compiled.execute(data) == expected


def test_the_table_covers_the_language() -> None:
    assert len(CASES) >= 200
    kinds = {kind for _, kind, _, _ in CASES}
    assert kinds == {"ok", "parse", "exec"}
    text = " ".join(t for _, _, t, _ in CASES)
    for word in ("if", "else if", "with", "else with", "range", "break", "continue", "define",
                 "template", "block", "and", "or", "not", "len", "index", "slice", "print",
                 "printf", "println", "eq", "ne", "lt", "le", "gt", "ge", "html", "js",
                 "urlquery", "call", ":=", " = ", "|", "{{-", "-}}", "/*", "`"):
        assert word in text, word


# ---------------------------------------------------------------------------- beyond the table


def test_trace_id_as_knative() -> None:
    assert trace_id(exchange(REQUESTS["post"])) == "4bf92f3577b34da6a3ce929d0e0e4736"
    b3 = exchange("GET / HTTP/1.1\nX-B3-TraceId: 463ac35c9f6413ad\nTraceparent: nodash\n")
    assert trace_id(b3) == "463ac35c9f6413ad"
    assert trace_id(exchange(REQUESTS["get10"])) == ""


def test_compiled_once_executed_many_times() -> None:
    compiled = parse('{{range $i, $v := .}}{{if $i}},{{end}}{{$v}}{{end}}')
    assert compiled.execute(["a", "b"]) == "a,b"
    assert compiled.execute([]) == ""
    assert compiled.execute(["c"]) == "c"


def test_executing_parses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The text is lexed and parsed once, when compiled; an execution only runs closures."""
    import proxy.gotemplate as gotemplate

    compiled = parse(DEFAULT_TEMPLATE + "{{range .Request.Header.Accept}}{{.}}{{end}}")

    def no_parsing(*args: Any) -> None:
        raise AssertionError("parsed while executing")

    monkeypatch.setattr(gotemplate, "_Lexer", no_parsing)
    monkeypatch.setattr(gotemplate, "_Parser", no_parsing)
    ex = exchange(REQUESTS["post"])
    line = compiled.execute(template_input(ex, CODE, SIZE, LATENCY, REVISION))
    assert line.endswith('"traceId": "4bf92f3577b34da6a3ce929d0e0e4736"}*/*text/html')


def test_plain_python_values_are_go_maps_and_slices() -> None:
    """An input of dicts and lists, as another component may pass: Go's map[string]any."""
    compiled = parse('{{.name}} {{.missing}} {{index .tags 1}} {{len .tags}} '
                     '{{range $k, $v := .m}}{{$k}}={{$v}} {{end}}{{printf "%v %T" .m .tags}}')
    out = compiled.execute({"name": "x", "tags": ["a", "b"], "m": {"z": 1, "a": 2.5}})
    assert out == "x <no value> b 2 a=2.5 z=1 map[a:2.5 z:1] []interface {}"


def test_a_variable_out_of_its_scope_fails_as_in_go() -> None:
    # Go's parser accepts $x in the else branch (declared earlier in the same if), its
    # executor does not: the if branch did not run.
    compiled = parse("{{if .}}{{$x := 1}}{{$x}}{{else}}{{$x}}{{end}}")
    assert compiled.execute(True) == "1"
    with pytest.raises(ExecError, match=r"undefined variable: \$x"):
        compiled.execute(False)
    in_loop = parse("{{range .}}{{if .}}{{$y := .}}{{else}}{{$y}}{{end}}{{end}}")
    with pytest.raises(ExecError, match=r"undefined variable: \$y"):
        in_loop.execute([1, 0])


def test_template_depth_is_bounded() -> None:
    compiled = parse('{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}')
    with pytest.raises(ExecError, match="exceeded maximum template depth"):
        compiled.execute(1)


def test_http2_request() -> None:
    ex = exchange("POST /h2 HTTP/1.1\ncookie: a=1\ncookie: b=2\ncontent-length: 3\n", sid=1)
    assert render_ex("{{.Request.Proto}} {{.Request.ProtoMajor}}.{{.Request.ProtoMinor}} "
                     "{{.Request.Header.Cookie}} {{.Request.ContentLength}} "
                     "{{.Request.Close}} {{.Request.ProtoAtLeast 2 0}}", ex) == (
        "HTTP/2.0 2.0 [a=1; b=2] 3 false true")


def test_trailers_once_the_body_ended() -> None:
    # Go fills req.Trailer in as the proxied body ends: the declared keys, with what came.
    ex = exchange(REQUESTS["trailer"], trailers=[(b"x-checksum", b"abc"), (b"X-Other", b"1")])
    assert render_ex("{{.Request.Trailer}}", ex) == (
        "map[Expires:[] X-Checksum:[abc] X-Other:[1]]")


def test_tls_connection_state() -> None:
    ssl_object = SimpleNamespace(version=lambda: "TLSv1.3", selected_alpn_protocol=lambda: "h2",
                                 session_reused=False)
    transport = SimpleNamespace(get_extra_info=lambda key: ssl_object
                                if key == "ssl_object" else None)
    ex = exchange(REQUESTS["get10"])
    ex.conn.transport = transport
    assert render_ex('{{if .Request.TLS}}https{{end}} {{printf "%x" .Request.TLS.Version}} '
                     "{{.Request.TLS.HandshakeComplete}} {{.Request.TLS.NegotiatedProtocol}}",
                     ex) == "https 304 true h2"


def test_what_the_python_request_does_not_carry_fails_the_line() -> None:
    with pytest.raises(ExecError, match="error calling Context: not available"):
        render("{{.Request.Context}}")


def test_request_log_per_request_revision() -> None:
    """The activator's use: one template, a revision per request."""
    out = io.StringIO()
    log = RequestLog("{{.Revision.Namespace}}/{{.Revision.Name}} {{.Response.Code}}", REVISION,
                     out=out)
    ex = exchange(REQUESTS["get10"])
    log.log(ex, 0.25)
    log.log(ex, 0.25, revision={"Name": "other-00002", "Namespace": "ns"})
    log.log(ex, 0.25, revision=RequestLogRevision(Name="third", Namespace="ns3"))
    assert out.getvalue().splitlines() == ["default/hello-00001 201", "ns/other-00002 201",
                                           "ns3/third 201"]


def test_request_log_set_template_as_knative() -> None:
    """SetTemplate: a template Go refuses keeps the one in use; an empty one turns the log off;
    the activator's input has no trace id."""
    out = io.StringIO()
    log = RequestLog("{{.Request.Method}}", REVISION, out=out, trace_ids=False)
    ex = exchange(REQUESTS["post"])
    with pytest.raises(ParseError):
        log.set_template("{{if .Request.Method}}")
    log.log(ex, 0.0)
    log.set_template("[{{.TraceID}}] {{.Request.Method}}")
    log.log(ex, 0.0)
    log.set_template("")
    log.log(ex, 0.0)
    assert out.getvalue() == "POST\n[] POST\n"


def test_request_log_writes_header_bytes_as_they_came() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")
    log = RequestLog("{{.Request.UserAgent}}", REVISION, out=out)
    log.log(exchange(REQUESTS["bytes"]), 0.0)
    assert raw.getvalue() == "caf\u00e9 ".encode() + b"\xff\xfe" + "\u2028 \U0001F600\n".encode()


def test_request_log_failed_execution_writes_knatives_line() -> None:
    out = io.StringIO()
    log = RequestLog("partial {{.Request.Nope}}", REVISION, out=out)
    ex = exchange(REQUESTS["post"])
    log.log(ex, 0.5)
    assert out.getvalue() == (
        "Invalid request log template: method: POST, response code: 201, latency: 0.5, url: "
        "/api/v1/items%2Fx/caf%C3%A9!?id=7&name=a%20b&flag&x=1;y=2&q=%E2%9C%93+ok\n")


def render_ex(template: str, ex: Any) -> str:
    return parse(template).execute(template_input(ex, CODE, SIZE, LATENCY, REVISION))
