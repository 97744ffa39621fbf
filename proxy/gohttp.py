"""Go's ``*http.Request`` as a request-log template sees it, read from one of our exchanges.

Knative hands its request-log template the ``*http.Request`` Go's server built; this module
builds the same view of an exchange (``proxy.engine`` ``Exchange`` or ``H2Stream``) as
``proxy.gofmt`` Go values: ``Request`` (``*http.Request``), ``URL`` (``*url.URL``, parsed as
Go's ``url.ParseRequestURI`` parses a request target), ``Header`` (``http.Header``: canonical
keys, ``Host`` removed, as Go's server leaves it) and ``Values`` (``url.Values``).

Every field is computed on first use and kept: a template that reads ``.Request.Method`` pays
for the method only. Header values are the bytes the client sent, decoded as Go sees a string
(UTF-8, other bytes kept: ``gofmt.from_go_bytes``).

What Go has and this view does not (a template reading it fails, and the request log writes
Knative's "Invalid request log template" line): the request's ``Context``, ``Body`` contents,
``GetBody``, form parsing beyond the query string (``FormValue`` reads the query only: the body
was relayed, not kept), ``MultipartForm``, ``Write``; ``TLS`` carries only ``Version``,
``HandshakeComplete``, ``DidResume``, ``NegotiatedProtocol`` and ``ServerName``.
"""

from __future__ import annotations

from typing import Any

from _speedups import fields as F
from proxy.gofmt import (
    GoError,
    GoMap,
    GoSlice,
    GoStruct,
    Int64,
    Method,
    NilPointer,
    Uint16,
    from_go_bytes,
)

__all__ = ["Request", "URL", "Header", "Values", "canonical_header_key", "parse_request_uri",
           "parse_query"]


# --------------------------------------------------------------------------- net/url

_PATH_OK = frozenset("$&+,/:;=@-._~")
_QUERY_OK = frozenset("-._~")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEXD = frozenset("0123456789abcdefABCDEF")
_UPPERHEX = "0123456789ABCDEF"


def _should_escape(c: int, mode: str) -> bool:
    ch = chr(c)
    if ch in _ALNUM:
        return False
    if mode == "path":
        return ch not in _PATH_OK
    if mode == "query":
        return ch not in _QUERY_OK
    if mode == "fragment":
        return ch not in _PATH_OK and ch not in "!()*?" or ch == "#"
    if mode == "host":
        return ch not in "!$&'()*+,;=:[]<>\"-._~"
    return True


def _escape(s: str, mode: str) -> str:
    out = []
    for c in s.encode("utf-8", "surrogateescape"):
        if c == 0x20 and mode == "query":
            out.append("+")
        elif _should_escape(c, mode):
            out.append("%" + _UPPERHEX[c >> 4] + _UPPERHEX[c & 15])
        else:
            out.append(chr(c))
    return "".join(out)


class _EscapeError(Exception):
    pass


def _unescape(s: str, mode: str) -> str:
    if "%" not in s and ("+" not in s or mode != "query"):
        return s
    b = s.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x25:  # %
            if i + 2 >= len(b) or chr(b[i + 1]) not in _HEXD or chr(b[i + 2]) not in _HEXD:
                raise _EscapeError(s)
            out.append(int(b[i + 1:i + 3], 16))
            i += 3
            continue
        out.append(0x20 if c == 0x2B and mode == "query" else c)
        i += 1
    return from_go_bytes(bytes(out))


def _valid_encoded(s: str, mode: str) -> bool:
    for ch in s:
        if ch in "!$&'()*+,;=:@[]%":
            continue
        if ord(ch) > 0x7F or _should_escape(ord(ch), mode):
            return False
    return True


def _valid_optional_port(port: str) -> bool:
    if port == "":
        return True
    return port[0] == ":" and all("0" <= c <= "9" for c in port[1:])


def _split_host_port(host_port: str) -> tuple[str, str]:
    host, port = host_port, ""
    colon = host.rfind(":")
    if colon != -1 and _valid_optional_port(host[colon:]):
        host, port = host[:colon], host[colon + 1:]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def parse_query(query: str) -> Values:
    """Go's ``url.ParseQuery``, its errors ignored as ``URL.Query`` ignores them."""
    m = Values()
    for part in query.split("&"):
        if ";" in part or part == "":
            continue
        key, _, value = part.partition("=")
        try:
            key = _unescape(key, "query")
            value = _unescape(value, "query")
        except _EscapeError:
            continue
        m.setdefault(key, GoSlice()).append(value)
    return m


class Values(GoMap):
    go_type = "url.Values"

    def zero_elem(self) -> GoSlice:
        return GoSlice(is_nil=True)


def _values_get(v: Values, key: str) -> str:
    vs = v.get(key)
    return vs[0] if vs else ""


def _encode_values(v: Values) -> str:
    parts = []
    for k in sorted(v):
        ek = _escape(k, "query")
        for val in v[k]:
            parts.append(ek + "=" + _escape(val, "query"))
    return "&".join(parts)


Values.go_methods = {
    "Get": Method(_values_get, ("string",)),
    "Has": Method(lambda v, key: key in v, ("string",)),
    "Encode": Method(_encode_values),
}


# The request target carries no user info: always Go's nil *url.Userinfo, whose methods allow it.
_USERINFO = NilPointer("*url.Userinfo", (), {
    "String": Method(lambda u: "", nil_safe=True),
    "Username": Method(lambda u: "", nil_safe=True),
})


class URL(GoStruct):
    """Go's ``*url.URL``."""

    __slots__ = ("Scheme", "Opaque", "User", "Host", "Path", "Fragment", "RawQuery", "RawPath",
                 "RawFragment", "ForceQuery", "OmitHost")
    go_type = "*url.URL"
    go_fields = ("Scheme", "Opaque", "User", "Host", "Path", "Fragment", "RawQuery", "RawPath",
                 "RawFragment", "ForceQuery", "OmitHost")

    def __init__(self) -> None:
        self.Scheme = self.Opaque = self.Host = self.Path = self.RawPath = ""
        self.RawQuery = self.Fragment = self.RawFragment = ""
        self.User: Any = _USERINFO
        self.OmitHost = self.ForceQuery = False

    def escaped_path(self) -> str:
        if self.RawPath and _valid_encoded(self.RawPath, "path"):
            try:
                if _unescape(self.RawPath, "path") == self.Path:
                    return self.RawPath
            except _EscapeError:
                pass
        if self.Path == "*":
            return "*"
        return _escape(self.Path, "path")

    def escaped_fragment(self) -> str:
        if self.RawFragment and _valid_encoded(self.RawFragment, "fragment"):
            try:
                if _unescape(self.RawFragment, "fragment") == self.Fragment:
                    return self.RawFragment
            except _EscapeError:
                pass
        return _escape(self.Fragment, "fragment")

    def string(self) -> str:
        out = []
        if self.Scheme:
            out.append(self.Scheme + ":")
        if self.Opaque:
            out.append(self.Opaque)
        else:
            if self.Scheme or self.Host:
                if not (self.OmitHost and self.Host == ""):
                    if self.Host or self.Path:
                        out.append("//")
                    if self.Host:
                        out.append(_escape(self.Host, "host"))
            path = self.escaped_path()
            if self.OmitHost and self.Host == "" and path.startswith("//"):
                out.append("%2F")
                path = path[1:]
            if path and path[0] != "/" and self.Host:
                out.append("/")
            if not out and ":" in path.split("/", 1)[0]:
                out.append("./")
            out.append(path)
        if self.ForceQuery or self.RawQuery:
            out.append("?" + self.RawQuery)
        if self.Fragment:
            out.append("#" + self.escaped_fragment())
        return "".join(out)

    def request_uri(self) -> str:
        result = self.Opaque
        if not result:
            result = self.escaped_path() or "/"
        elif result.startswith("//"):
            result = self.Scheme + ":" + result
        if self.ForceQuery or self.RawQuery:
            result += "?" + self.RawQuery
        return result


URL.go_methods = {
    "String": Method(URL.string),
    "EscapedPath": Method(URL.escaped_path),
    "EscapedFragment": Method(URL.escaped_fragment),
    "Hostname": Method(lambda u: _split_host_port(u.Host)[0]),
    "Port": Method(lambda u: _split_host_port(u.Host)[1]),
    "IsAbs": Method(lambda u: u.Scheme != ""),
    "Query": Method(lambda u: parse_query(u.RawQuery)),
    "RequestURI": Method(URL.request_uri),
    "Redacted": Method(URL.string),
}
URL._build_getters()


def parse_request_uri(raw: str, method: str = "GET") -> URL:
    """Go's ``url.ParseRequestURI`` as its server applies it to a request target.

    A target Go would refuse (its server answers 400 before any handler, so Knative never logs
    it) is kept whole in ``Path``, split at ``?``.
    """
    u = URL()
    just_authority = method == "CONNECT" and not raw.startswith("/")
    try:
        _parse_into(u, "http://" + raw if just_authority else raw)
    except _EscapeError:
        u = URL()
        u.Path, _, u.RawQuery = raw.partition("?")
    if just_authority:
        u.Scheme = ""
    return u


def _parse_into(u: URL, raw: str) -> None:
    if raw == "*":
        u.Path = "*"
        return
    rest = raw
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if c.isdigit() or c in "+-.":
            if i == 0:
                break
            continue
        if c == ":" and i > 0:
            u.Scheme, rest = raw[:i].lower(), raw[i + 1:]
        break
    if rest.endswith("?") and rest.count("?") == 1:
        u.ForceQuery = True
        rest = rest[:-1]
    else:
        rest, _, u.RawQuery = rest.partition("?")
    if not rest.startswith("/"):
        if u.Scheme:
            u.Opaque = rest
            return
        raise _EscapeError(raw)
    if u.Scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        if "@" in authority:
            authority = authority[authority.rfind("@") + 1:]  # userinfo: not modelled
        u.Host = _unescape(authority, "host")
    elif u.Scheme:
        u.OmitHost = True
    u.Path = _unescape(rest, "path")
    u.RawPath = "" if _escape(u.Path, "path") == rest else rest


# --------------------------------------------------------------------------- http.Header

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def canonical_header_key(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: a name with a non-token byte is kept as is."""
    for c in name:
        if c not in _TOKEN:
            return name
    out = []
    upper = True
    for c in name:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


class Header(GoMap):
    go_type = "http.Header"

    def zero_elem(self) -> GoSlice:
        return GoSlice(is_nil=True)


def _header_get(h: Header, key: str) -> str:
    vs = h.get(canonical_header_key(key))
    return vs[0] if vs else ""


def _header_values(h: Header, key: str) -> GoSlice:
    vs = h.get(canonical_header_key(key))
    return vs if vs is not None else GoSlice(is_nil=True)


def _no_results(*_: Any) -> None:
    raise AssertionError("unreachable: a method without results is refused before the call")


Header.go_methods = {
    "Get": Method(_header_get, ("string",)),
    "Values": Method(_header_values, ("string",)),
    "Clone": Method(lambda h: Header({k: GoSlice(v) for k, v in h.items()})),
    "Add": Method(_no_results, ("string", "string"), results=0),
    "Set": Method(_no_results, ("string", "string"), results=0),
    "Del": Method(_no_results, ("string",), results=0),
}


# --------------------------------------------------------------------------- *http.Request


class _NoBody(GoStruct):
    __slots__ = ()
    go_type = "http.noBody"


class _Body(GoStruct):
    __slots__ = ()
    go_type = "*http.body"


class ConnectionState(GoStruct):
    """The parts of Go's ``tls.ConnectionState`` an ``ssl`` object tells."""

    __slots__ = ("Version", "HandshakeComplete", "DidResume", "NegotiatedProtocol",
                 "ServerName")
    go_type = "*tls.ConnectionState"
    go_fields = ("Version", "HandshakeComplete", "DidResume", "NegotiatedProtocol",
                 "ServerName")

    def __init__(self, ssl_object: Any) -> None:
        versions = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
        self.Version = Uint16(versions.get(ssl_object.version() or "", 0))
        self.HandshakeComplete = True
        self.DidResume = bool(getattr(ssl_object, "session_reused", False))
        self.NegotiatedProtocol = ssl_object.selected_alpn_protocol() or ""
        self.ServerName = getattr(ssl_object, "server_hostname", None) or ""


ConnectionState._build_getters()

_NIL_TLS = NilPointer("*tls.ConnectionState", ConnectionState.go_fields)
_NIL_RESPONSE = NilPointer("*http.Response", ("Status", "StatusCode", "Proto", "ProtoMajor",
                                               "ProtoMinor", "Header", "Body", "ContentLength",
                                               "TransferEncoding", "Close", "Uncompressed",
                                               "Trailer", "Request", "TLS"))
_NIL_FORM = NilPointer("*multipart.Form", ("Value", "File"))
_NIL_CHAN = NilPointer("<-chan struct {}", kind="chan")
_NIL_GET_BODY = NilPointer("func() (io.ReadCloser, error)", kind="func")
_NOT_MODELLED = "not available in this request log (the Python data plane)"


def _text(b: bytes | None) -> str:
    return from_go_bytes(b) if b else ""


def _has_token(value: str, token: str) -> bool:
    return any(t.strip().lower() == token for t in value.split(","))


class Request(GoStruct):
    """Go's ``*http.Request`` for one exchange, each field computed on first use."""

    __slots__ = ("_ex", "_cache")
    go_type = "*http.Request"
    go_fields = ("Method", "URL", "Proto", "ProtoMajor", "ProtoMinor", "Header", "Body",
                 "GetBody", "ContentLength", "TransferEncoding", "Close", "Host", "Form",
                 "PostForm", "MultipartForm", "Trailer", "RemoteAddr", "RequestURI", "TLS",
                 "Cancel", "Response", "Pattern")
    go_unexported = frozenset({"ctx", "pat", "matches", "otherValues"})

    def __init__(self, ex: Any) -> None:
        self._ex = ex
        self._cache: dict[str, Any] = {}

    def go_field(self, name: str) -> Any:
        return self.go_getters[name](self)

    # the fields
    def proto(self) -> tuple[str, int, int]:
        ex = self._ex
        if getattr(ex, "sid", 0):  # a stream of an HTTP/2 connection
            return "HTTP/2.0", 2, 0
        return ("HTTP/1.0", 1, 0) if ex.http10 else ("HTTP/1.1", 1, 1)

    def header(self) -> Header:
        """The header map as Go's server leaves it (its readRequest and readTransfer)."""
        h = Header()
        for (name, value) in self._ex.headers:
            key = canonical_header_key(name.decode("latin-1"))
            if key == "Host":
                continue
            h.setdefault(key, GoSlice()).append(from_go_bytes(value))
        if "Pragma" in h and "Cache-Control" not in h and h["Pragma"][0] == "no-cache":
            h["Cache-Control"] = GoSlice(["no-cache"])  # fixPragmaCacheControl
        if self.proto()[1] == 2:
            if len(h.get("Cookie", ())) > 1:
                h["Cookie"] = GoSlice(["; ".join(h["Cookie"])])  # the HTTP/2 server joins them
            return h
        h.pop("Transfer-Encoding", None)
        lengths = h.get("Content-Length")
        if lengths is not None and (self._ex.chunked or len(lengths) > 1):
            if self._ex.chunked:
                del h["Content-Length"]
            else:
                h["Content-Length"] = GoSlice([lengths[0].strip(" \t")])
        trailer = h.get("Trailer")
        if trailer is not None and self._ex.chunked:
            del h["Trailer"]
            keys = Header()
            for line in trailer:
                for key in line.split(","):
                    key = key.strip(" \t")
                    if key:
                        keys[canonical_header_key(key)] = GoSlice(is_nil=True)
            self._cache["Trailer"] = keys if keys else Header(is_nil=True)
        return h

    def user_agent(self) -> str:
        return _text(self._ex.fields[F.USER_AGENT])

    def referer(self) -> str:
        # Header.Get("Referer") without building the map: every name Go canonicalizes to
        # "Referer" is "referer" in lower case (PERF: the default template reads it).
        ex = self._ex
        for (_n, v), ln in zip(ex.headers, ex.lnames, strict=True):
            if ln == b"referer":
                return from_go_bytes(v)
        return ""


def _url(ex: Any, r: Request) -> URL:
    return parse_request_uri(_text(ex.target), _text(ex.method))


def _host(ex: Any, r: Request) -> str:
    u = r.go_field("URL")
    return u.Host if u.Host else _text(ex.fields[F.HOST])


def _content_length(ex: Any, r: Request) -> Int64:
    cl = ex.fields[F.CONTENT_LENGTH]
    if cl and not ex.chunked:
        try:
            return Int64(int(cl))
        except ValueError:
            pass
    return Int64(-1 if ex.chunked else 0)


def _close(ex: Any, r: Request) -> bool:
    if r.proto()[1] == 2:
        return False
    conn = _text(ex.fields[F.CONNECTION])
    if ex.http10:
        return _has_token(conn, "close") or not _has_token(conn, "keep-alive")
    return _has_token(conn, "close")


def _trailer(ex: Any, r: Request) -> Header:
    """Go's req.Trailer once the body is read: the declared keys, with the values that came."""
    r.go_field("Header")  # reading the header declares the trailer's keys
    trailer = r._cache.get("Trailer")
    received = getattr(ex, "trailers", None)
    if received:
        merged = Header(trailer or {})
        got: dict[str, GoSlice] = {}
        for name, value in received:
            got.setdefault(canonical_header_key(name.decode("latin-1")), GoSlice()).append(
                from_go_bytes(value))
        merged.update(got)
        return merged
    return trailer if trailer is not None else Header(is_nil=True)


def _tls(ex: Any, r: Request) -> Any:
    transport = getattr(getattr(ex, "conn", None), "transport", None)
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return ConnectionState(ssl_object) if ssl_object is not None else _NIL_TLS


def _body(ex: Any, r: Request) -> Any:
    if ex.chunked or ex.fields[F.CONTENT_LENGTH] not in (None, b"0"):
        return _Body()
    return _NoBody()


_FIELDS: dict[str, Any] = {
    "Method": lambda ex, r: _text(ex.method),
    "URL": _url,
    "Proto": lambda ex, r: r.proto()[0],
    "ProtoMajor": lambda ex, r: r.proto()[1],
    "ProtoMinor": lambda ex, r: r.proto()[2],
    "Header": lambda ex, r: r.header(),
    "Body": _body,
    "GetBody": lambda ex, r: _NIL_GET_BODY,
    "ContentLength": _content_length,
    "TransferEncoding": lambda ex, r: GoSlice(["chunked"]) if ex.chunked
    and r.proto()[1] == 1 else GoSlice(is_nil=True),
    "Close": _close,
    "Host": _host,
    "Form": lambda ex, r: Values(is_nil=True),
    "PostForm": lambda ex, r: Values(is_nil=True),
    "MultipartForm": lambda ex, r: _NIL_FORM,
    "Trailer": _trailer,
    "RemoteAddr": lambda ex, r: ex.conn.peer_addr,
    "RequestURI": lambda ex, r: _text(ex.target),
    "TLS": _tls,
    "Cancel": lambda ex, r: _NIL_CHAN,
    "Response": lambda ex, r: _NIL_RESPONSE,
    "Pattern": lambda ex, r: "",
}


def _not_modelled(*_: Any) -> Any:
    raise GoError(_NOT_MODELLED)


def _proto_at_least(r: Request, major: int, minor: int) -> bool:
    _, ma, mi = r.proto()
    return ma > major or ma == major and mi >= minor


def _form_value(r: Request, key: str) -> str:
    return _values_get(r.go_field("URL").go_methods["Query"].fn(r.go_field("URL")), key)


class Cookie(GoStruct):
    """The ``Name`` and ``Value`` of Go's ``*http.Cookie`` (what a request's cookies carry)."""

    __slots__ = ("Name", "Value", "Quoted")
    go_type = "*http.Cookie"
    go_fields = ("Name", "Value", "Quoted")

    def __init__(self, name: str, value: str, quoted: bool) -> None:
        self.Name, self.Value, self.Quoted = name, value, quoted


Cookie.go_methods = {
    "String": Method(lambda c: c.Name + "=" + (f'"{c.Value}"' if c.Quoted or " " in c.Value
                                               or "," in c.Value else c.Value)),
}
Cookie._build_getters()

_COOKIE_VALUE_BAD = frozenset('";\\,') | frozenset(chr(c) for c in range(0x20)) | {"\x7f"}


def _read_cookies(r: Request, want: str | None) -> list[Cookie]:
    cookies = []
    for line in r.go_field("Header").get("Cookie", ()):
        for part in line.strip().split(";"):
            part = part.strip(" ")
            if not part:
                continue
            name, eq, value = part.partition("=")
            if not name or any(c not in _TOKEN for c in name):
                continue
            if want is not None and name != want:
                continue
            quoted = len(value) > 1 and value[0] == value[-1] == '"'
            if quoted:
                value = value[1:-1]
            if any(c in _COOKIE_VALUE_BAD or c > "\x7e" for c in value):
                continue
            cookies.append(Cookie(name, value, quoted))
    return cookies


def _cookie(r: Request, name: str) -> Cookie:
    found = _read_cookies(r, name)
    if not found:
        raise GoError("http: named cookie not present")
    return found[0]


Request.go_methods = {
    "UserAgent": Method(Request.user_agent),
    "Referer": Method(Request.referer),
    "ProtoAtLeast": Method(_proto_at_least, ("int", "int")),
    "Cookie": Method(_cookie, ("string",), results=2),
    "Cookies": Method(lambda r: GoSlice(_read_cookies(r, None), "[]*http.Cookie")),
    "CookiesNamed": Method(lambda r, n: GoSlice(_read_cookies(r, n), "[]*http.Cookie"),
                           ("string",)),
    "FormValue": Method(_form_value, ("string",)),
    "PostFormValue": Method(lambda r, key: "", ("string",)),
    "PathValue": Method(lambda r, name: "", ("string",)),
    "BasicAuth": Method(_not_modelled, results=3),
    "Context": Method(_not_modelled),
    "MultipartReader": Method(_not_modelled, results=2),
    "ParseForm": Method(_not_modelled),
    "Clone": Method(_not_modelled, ("context.Context",)),
    "WithContext": Method(_not_modelled, ("context.Context",)),
}
Request._build_getters()
for _name, _m in Request.go_methods.items():
    if _m.fn is _not_modelled:  # it fails: the slow path words the error as Go's call would
        Request.go_getters.pop(_name, None)


def _request_getter(name: str, compute: Any) -> Any:
    if name not in _CACHED:
        return lambda r: compute(r._ex, r)

    def cached(r: Request) -> Any:
        cache = r._cache
        v = cache.get(name, cache)
        if v is cache:
            v = cache[name] = compute(r._ex, r)
        return v

    return cached


# Fields kept once computed: those that build a value (the others read the exchange directly,
# which costs less than a cache: PERF).
_CACHED = frozenset({"URL", "Header", "Host", "Trailer", "TLS", "Body"})
Request.go_getters.update({name: _request_getter(name, f) for name, f in _FIELDS.items()})
