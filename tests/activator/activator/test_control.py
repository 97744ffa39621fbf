"""The activator's control API, sans-IO: route, body and validation tables. No sockets, no loop."""

from __future__ import annotations

import json
from typing import Any

import pytest

from activator.activator.control import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_CONTAINER_CONCURRENCY,
    MAX_TIMEOUT_SECONDS,
    ControlError,
    RevisionSpec,
    Route,
    error_body,
    normalize_address,
    parse_activators,
    parse_endpoints,
    parse_endpoints_and_cluster,
    parse_revision,
    parse_target,
    status_body,
)


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def refused(call: Any, *args: Any) -> ControlError:
    with pytest.raises(ControlError) as info:
        call(*args)
    return info.value


# --------------------------------------------------------------------------- ControlError


def test_control_error_defaults_and_is_a_value_error() -> None:
    e = ControlError("nope")
    assert isinstance(e, ValueError)
    assert (e.reason, e.status, e.allow, str(e)) == ("nope", 400, (), "nope")


# --------------------------------------------------------------------------- RevisionSpec


def test_revision_spec_defaults_are_knatives() -> None:
    spec = RevisionSpec()
    assert spec == RevisionSpec(0, 300, 0, 0)
    assert (MAX_CONTAINER_CONCURRENCY, MAX_TIMEOUT_SECONDS, DEFAULT_TIMEOUT_SECONDS) == (
        1000, 3600, 300)


def test_revision_spec_is_frozen() -> None:
    with pytest.raises(AttributeError):
        RevisionSpec().container_concurrency = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"container_concurrency": 0},
        {"container_concurrency": 1},
        {"container_concurrency": 1000},
        {"timeout_seconds": 1},
        {"timeout_seconds": 3600},
        {"timeout_seconds": 10, "response_start_timeout_seconds": 10},
        {"timeout_seconds": 10, "idle_timeout_seconds": 10},
        {"timeout_seconds": 3600, "response_start_timeout_seconds": 3600,
         "idle_timeout_seconds": 3600},
        {"response_start_timeout_seconds": 0, "idle_timeout_seconds": 0},
    ],
)
def test_revision_spec_accepts_range_edges(kwargs: dict[str, int]) -> None:
    spec = RevisionSpec(**kwargs)
    for attr, value in kwargs.items():
        assert getattr(spec, attr) == value


REVISION_SPEC_ERRORS = [
    ({"container_concurrency": -1}, "expected 0 <= -1 <= 1000: containerConcurrency"),
    ({"container_concurrency": 1001}, "expected 0 <= 1001 <= 1000: containerConcurrency"),
    ({"timeout_seconds": 0}, "expected 1 <= 0 <= 3600: timeoutSeconds"),
    ({"timeout_seconds": -5}, "expected 1 <= -5 <= 3600: timeoutSeconds"),
    ({"timeout_seconds": 3601}, "expected 1 <= 3601 <= 3600: timeoutSeconds"),
    ({"response_start_timeout_seconds": -1},
     "expected 0 <= -1 <= 300: responseStartTimeoutSeconds"),
    ({"response_start_timeout_seconds": 301},
     "responseStartTimeoutSeconds (301) cannot be greater than timeoutSeconds (300)"),
    ({"timeout_seconds": 10, "response_start_timeout_seconds": 11},
     "responseStartTimeoutSeconds (11) cannot be greater than timeoutSeconds (10)"),
    ({"idle_timeout_seconds": -1}, "expected 0 <= -1 <= 300: idleTimeoutSeconds"),
    ({"timeout_seconds": 10, "idle_timeout_seconds": 11},
     "idleTimeoutSeconds (11) cannot be greater than timeoutSeconds (10)"),
    # Types: bool is an int subclass in Python but never an integer here.
    ({"container_concurrency": True}, "containerConcurrency: expected an integer, got true"),
    ({"container_concurrency": False}, "containerConcurrency: expected an integer, got false"),
    ({"timeout_seconds": True}, "timeoutSeconds: expected an integer, got true"),
    ({"container_concurrency": 5.0}, "containerConcurrency: expected an integer, got 5.0"),
    ({"container_concurrency": "5"}, 'containerConcurrency: expected an integer, got "5"'),
    ({"container_concurrency": None}, "containerConcurrency: expected an integer, got null"),
    ({"idle_timeout_seconds": [1]}, "idleTimeoutSeconds: expected an integer, got [1]"),
    ({"response_start_timeout_seconds": float("nan")},
     "responseStartTimeoutSeconds: expected an integer, got nan"),
    # A type error wins over a range error in an earlier field.
    ({"container_concurrency": -1, "timeout_seconds": "x"},
     'timeoutSeconds: expected an integer, got "x"'),
]


@pytest.mark.parametrize(("kwargs", "reason"), REVISION_SPEC_ERRORS)
def test_revision_spec_refuses(kwargs: dict[str, Any], reason: str) -> None:
    e = refused(lambda: RevisionSpec(**kwargs))
    assert (e.status, e.reason) == (400, reason)


def test_revision_spec_cuts_long_values_in_messages() -> None:
    e = refused(lambda: RevisionSpec(container_concurrency=10**100))
    assert e.reason == f"expected 0 <= {str(10**100)[:61]}... <= 1000: containerConcurrency"


# --------------------------------------------------------------------------- parse_revision


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (b"", RevisionSpec()),
        (b" \r\n\t", RevisionSpec()),
        (b"{}", RevisionSpec()),
        (b'{"containerConcurrency": 10, "timeoutSeconds": 60}', RevisionSpec(10, 60)),
        (body({"containerConcurrency": 0, "timeoutSeconds": 3600,
               "responseStartTimeoutSeconds": 30, "idleTimeoutSeconds": 3600}),
         RevisionSpec(0, 3600, 30, 3600)),
        (body({"containerConcurrency": 1000, "timeoutSeconds": 1}), RevisionSpec(1000, 1)),
        # null means "not set", as for Knative's pointer fields.
        (body({"containerConcurrency": None, "timeoutSeconds": None}), RevisionSpec()),
        (b'  {"idleTimeoutSeconds": 5}\n', RevisionSpec(idle_timeout_seconds=5)),
    ],
)
def test_parse_revision(raw: bytes, want: RevisionSpec) -> None:
    assert parse_revision(raw) == want


PARSE_REVISION_ERRORS = [
    (b"{", "invalid JSON: Expecting property name enclosed in double quotes: "
           "line 1 column 2 (char 1)"),
    (b"nope", "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b'{"timeoutSeconds": 1} x', "invalid JSON: Extra data: line 1 column 23 (char 22)"),
    (b"\xff{}", "invalid JSON: body is not UTF-8 (byte 0)"),
    (b'{"a": "\xc3"}', "invalid JSON: body is not UTF-8 (byte 7)"),
    ('{"timeoutSeconds": 1}'.encode("utf-16"), "invalid JSON: body is not UTF-8 (byte 0)"),
    (b"\xef\xbb\xbf{}", "invalid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig): "
                        "line 1 column 1 (char 0)"),
    (b'{"timeoutSeconds": NaN}', "invalid JSON: NaN is not a JSON value"),
    (b'{"timeoutSeconds": Infinity}', "invalid JSON: Infinity is not a JSON value"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid JSON: nested too deeply"),
    (b"[]", "expected a JSON object, got an array"),
    (b"null", "expected a JSON object, got null"),
    (b"5", "expected a JSON object, got a number"),
    (b"true", "expected a JSON object, got a boolean"),
    (b'"x"', "expected a JSON object, got a string"),
    (b'{"foo": 1}', 'unknown field "foo"'),
    (b'{"timeoutSeconds": 1, "containerconcurrency": 1}', 'unknown field "containerconcurrency"'),
    (b'{"container_concurrency": 1}', 'unknown field "container_concurrency"'),
    (b'{"timeoutSeconds": 1, "timeoutSeconds": 2}', 'duplicate field "timeoutSeconds"'),
    (b'{"containerConcurrency": "5"}', 'containerConcurrency: expected an integer, got "5"'),
    (b'{"containerConcurrency": true}', "containerConcurrency: expected an integer, got true"),
    (b'{"timeoutSeconds": false}', "timeoutSeconds: expected an integer, got false"),
    (b'{"containerConcurrency": 5.0}', "containerConcurrency: expected an integer, got 5.0"),
    (b'{"containerConcurrency": 1e3}', "containerConcurrency: expected an integer, got 1000.0"),
    (b'{"idleTimeoutSeconds": {}}', "idleTimeoutSeconds: expected an integer, got {}"),
    (b'{"containerConcurrency": -1}', "expected 0 <= -1 <= 1000: containerConcurrency"),
    (b'{"containerConcurrency": 1001}', "expected 0 <= 1001 <= 1000: containerConcurrency"),
    (b'{"timeoutSeconds": 0}', "expected 1 <= 0 <= 3600: timeoutSeconds"),
    (b'{"timeoutSeconds": 3601}', "expected 1 <= 3601 <= 3600: timeoutSeconds"),
    (b'{"timeoutSeconds": 60, "idleTimeoutSeconds": 61}',
     "idleTimeoutSeconds (61) cannot be greater than timeoutSeconds (60)"),
    (b'{"responseStartTimeoutSeconds": 301}',
     "responseStartTimeoutSeconds (301) cannot be greater than timeoutSeconds (300)"),
    (b'{"responseStartTimeoutSeconds": -1}',
     "expected 0 <= -1 <= 300: responseStartTimeoutSeconds"),
]


@pytest.mark.parametrize(("raw", "reason"), PARSE_REVISION_ERRORS)
def test_parse_revision_refuses(raw: bytes, reason: str) -> None:
    e = refused(parse_revision, raw)
    assert (e.status, e.reason) == (400, reason)


def test_parse_revision_labels_name_the_service_and_configuration() -> None:
    """Knative's revision labels (the activator's metrics carry them); others are ignored."""
    spec = parse_revision(body({"containerConcurrency": 1, "labels": {
        "serving.knative.dev/service": "hello", "serving.knative.dev/configuration": "hello-c",
        "app": "x"}}))
    assert (spec.service, spec.configuration) == ("hello", "hello-c")
    assert parse_revision(body({"labels": None})) == RevisionSpec()
    assert refused(parse_revision, body({"labels": []})).reason == \
        "labels: expected an object, got []"
    e = refused(parse_revision, body({"labels": {"serving.knative.dev/service": 1}}))
    assert e.reason == 'labels: "serving.knative.dev/service": expected a string, got 1'


def test_parse_revision_long_unknown_field_is_cut() -> None:
    e = refused(parse_revision, body({"x" * 500: 1}))
    assert e.reason == 'unknown field "' + "x" * 60 + "..."


def test_parse_revision_integer_over_the_digit_limit() -> None:
    e = refused(parse_revision, b'{"timeoutSeconds": ' + b"9" * 5000 + b"}")
    assert e.reason.startswith("invalid JSON: Exceeds the limit (4300 digits)")


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("address", "want"),
    [
        ("1.2.3.4:8012", "1.2.3.4:8012"),
        ("10.0.0.1:1", "10.0.0.1:1"),
        ("10.0.0.1:65535", "10.0.0.1:65535"),
        ("[::1]:8012", "[::1]:8012"),
        ("[0:0:0:0:0:0:0:1]:8012", "[::1]:8012"),
        ("[::0001]:80", "[::1]:80"),
        ("[2001:DB8:0:0:0:0:0:1]:80", "[2001:db8::1]:80"),
        ("[2001:0db8:0000:0000:0001:0000:0000:0001]:80", "[2001:db8::1:0:0:1]:80"),
        ("[::]:80", "[::]:80"),
        ("localhost:8012", "localhost:8012"),
        ("LocalHost:8012", "localhost:8012"),
        ("pod-1.my-svc.default.svc.cluster.local:8012",
         "pod-1.my-svc.default.svc.cluster.local:8012"),
        ("1a.example:80", "1a.example:80"),
        ("example.1a:80", "example.1a:80"),
        ("a" * 63 + ".b:80", "a" * 63 + ".b:80"),
        (".".join(["a" * 63] * 3) + "." + "b" * 61 + ":80",
         ".".join(["a" * 63] * 3) + "." + "b" * 61 + ":80"),  # 253 characters
    ],
)
def test_normalize_address(address: str, want: str) -> None:
    assert normalize_address(address) == want


ADDRESS_ERRORS = [
    ("", 'invalid address "": missing port'),
    ("1.2.3.4", 'invalid address "1.2.3.4": missing port'),
    ("localhost", 'invalid address "localhost": missing port'),
    ("1.2.3.4:", 'invalid address "1.2.3.4:": port must be 1..65535'),
    ("1.2.3.4:0", 'invalid address "1.2.3.4:0": port must be 1..65535'),
    ("1.2.3.4:65536", 'invalid address "1.2.3.4:65536": port must be 1..65535'),
    ("1.2.3.4:080", 'invalid address "1.2.3.4:080": port must be 1..65535'),
    ("1.2.3.4:+80", 'invalid address "1.2.3.4:+80": port must be 1..65535'),
    ("1.2.3.4: 80", 'invalid address "1.2.3.4: 80": port must be 1..65535'),
    ("1.2.3.4:http", 'invalid address "1.2.3.4:http": port must be 1..65535'),
    ("1.2.3.4:\u0668\u0660", 'invalid address "1.2.3.4:\\u0668\\u0660": port must be 1..65535'),
    ("1.2.3.4:123456", 'invalid address "1.2.3.4:123456": port must be 1..65535'),
    (":80", 'invalid address ":80": missing host'),
    ("1.2.3.256:80", 'invalid address "1.2.3.256:80": invalid IPv4 address'),
    ("01.2.3.4:80", 'invalid address "01.2.3.4:80": invalid IPv4 address'),
    ("1.2.3:80", 'invalid address "1.2.3:80": invalid IPv4 address'),
    ("1.2.3.4.5:80", 'invalid address "1.2.3.4.5:80": invalid IPv4 address'),
    ("10:80", 'invalid address "10:80": invalid IPv4 address'),
    ("example.123:80", 'invalid address "example.123:80": invalid IPv4 address'),
    ("::1:80", 'invalid address "::1:80": an IPv6 address must be in brackets'),
    ("[::1:80", "invalid address \"[::1:80\": unclosed '['"),
    ("[::1]", 'invalid address "[::1]": missing port'),
    ("[::1]80", "invalid address \"[::1]80\": expected ':' after ']'"),
    ("[::1]:", 'invalid address "[::1]:": port must be 1..65535'),
    ("[::1]:0", 'invalid address "[::1]:0": port must be 1..65535'),
    ("[::1]:65536", 'invalid address "[::1]:65536": port must be 1..65535'),
    ("[::1]]:80", "invalid address \"[::1]]:80\": expected ':' after ']'"),
    ("x[::1]:80", 'invalid address "x[::1]:80": an IPv6 address must be in brackets'),
    ("[::g]:80", 'invalid address "[::g]:80": invalid IPv6 address'),
    ("[1.2.3.4]:80", 'invalid address "[1.2.3.4]:80": invalid IPv6 address'),
    ("[]:80", 'invalid address "[]:80": invalid IPv6 address'),
    ("[fe80::1%eth0]:80",
     'invalid address "[fe80::1%eth0]:80": IPv6 zone identifiers are not supported'),
    ("my_host:80", 'invalid address "my_host:80": host is not an IP address or a valid DNS name'),
    ("-host:80", 'invalid address "-host:80": host is not an IP address or a valid DNS name'),
    ("host-:80", 'invalid address "host-:80": host is not an IP address or a valid DNS name'),
    ("a..b:80", 'invalid address "a..b:80": host is not an IP address or a valid DNS name'),
    ("host.:80", 'invalid address "host.:80": host is not an IP address or a valid DNS name'),
    ("h st:80", 'invalid address "h st:80": host is not an IP address or a valid DNS name'),
    ("h\u00e9st:80",
     'invalid address "h\\u00e9st:80": host is not an IP address or a valid DNS name'),
    # KELVIN SIGN lower-cases to an ASCII "k".
    ("\u212a8s:80",
     'invalid address "\\u212a8s:80": host is not an IP address or a valid DNS name'),
    ("a" * 64 + ":80", 'invalid address "' + "a" * 60 + "...: host is not an IP address or a "
                       "valid DNS name"),
]


@pytest.mark.parametrize(("address", "reason"), ADDRESS_ERRORS)
def test_normalize_address_refuses(address: str, reason: str) -> None:
    e = refused(normalize_address, address)
    assert (e.status, e.reason) == (400, reason)


def test_normalize_address_refuses_254_character_names() -> None:
    host = ".".join(["a" * 63] * 3) + "." + "b" * 62  # 254 characters, every label fine
    e = refused(normalize_address, host + ":80")
    assert e.reason.endswith("host is not an IP address or a valid DNS name")


# --------------------------------------------------------------------------- parse_endpoints


@pytest.mark.parametrize(
    ("raw", "ready", "not_ready"),
    [
        (b"", [], []),
        (b"{}", [], []),
        (body({"ready": [], "notReady": []}), [], []),
        (body({"ready": None, "notReady": None}), [], []),
        (body({"ready": ["10.0.0.2:8012", "10.0.0.1:8012"]}), ["10.0.0.2:8012", "10.0.0.1:8012"],
         []),
        (body({"notReady": ["[::1]:8012"]}), [], ["[::1]:8012"]),
        (body({"ready": ["1.2.3.4:80"], "notReady": ["1.2.3.4:81", "[::2]:80"]}),
         ["1.2.3.4:80"], ["1.2.3.4:81", "[::2]:80"]),
        # Repeats dropped, the first keeps its place, after normalisation.
        (body({"ready": ["b:1", "a:1", "b:1", "A:1", "[::0001]:1", "[::1]:1"]}),
         ["b:1", "a:1", "[::1]:1"], []),
        (body({"notReady": ["[2001:DB8::1]:80", "[2001:db8:0::1]:80"]}), [],
         ["[2001:db8::1]:80"]),
    ],
)
def test_parse_endpoints(raw: bytes, ready: list[str], not_ready: list[str]) -> None:
    assert parse_endpoints(raw) == (ready, not_ready)


PARSE_ENDPOINTS_ERRORS = [
    (b"{", "invalid JSON: Expecting property name enclosed in double quotes: "
           "line 1 column 2 (char 1)"),
    (b"\x80", "invalid JSON: body is not UTF-8 (byte 0)"),
    (b"[]", "expected a JSON object, got an array"),
    (b'{"ready": [], "pods": []}', 'unknown field "pods"'),
    (b'{"not_ready": []}', 'unknown field "not_ready"'),
    (b'{"ready": [], "ready": []}', 'duplicate field "ready"'),
    (b'{"ready": "1.2.3.4:80"}', 'ready: expected a list of strings, got "1.2.3.4:80"'),
    (b'{"notReady": {}}', "notReady: expected a list of strings, got {}"),
    (b'{"ready": ["1.2.3.4:80", 5]}', "ready[1]: expected a string, got 5"),
    (b'{"notReady": [null]}', "notReady[0]: expected a string, got null"),
    (b'{"ready": ["1.2.3.4:80", "1.2.3.4"]}', 'ready[1]: invalid address "1.2.3.4": missing port'),
    (b'{"notReady": ["::1:80"]}',
     'notReady[0]: invalid address "::1:80": an IPv6 address must be in brackets'),
    (b'{"ready": ["1.2.3.4:80"], "notReady": ["1.2.3.4:80"]}',
     'address "1.2.3.4:80" is in both ready and notReady'),
    # The conflict is found after normalisation, and the first one in "ready" is named.
    (b'{"ready": ["x:1", "[::1]:80", "y:1"], "notReady": ["y:1", "[0::1]:80"]}',
     'address "[::1]:80" is in both ready and notReady'),
]


@pytest.mark.parametrize(("raw", "reason"), PARSE_ENDPOINTS_ERRORS)
def test_parse_endpoints_refuses(raw: bytes, reason: str) -> None:
    e = refused(parse_endpoints, raw)
    assert (e.status, e.reason) == (400, reason)


# --------------------------------------------------------------------------- parse_target


@pytest.mark.parametrize(
    ("method", "target", "want"),
    [
        (b"GET", b"/revisions", Route("list_revisions")),
        (b"GET", b"/revisions?watch=1", Route("list_revisions")),
        (b"PUT", b"/revisions/default/hello-00001",
         Route("put_revision", "default", "hello-00001")),
        (b"GET", b"/revisions/default/hello", Route("get_revision", "default", "hello")),
        (b"DELETE", b"/revisions/default/hello", Route("delete_revision", "default", "hello")),
        (b"PUT", b"/revisions/ns/r/endpoints", Route("put_endpoints", "ns", "r")),
        (b"PUT", b"/revisions/ns/r/endpoints?x=/y", Route("put_endpoints", "ns", "r")),
        (b"GET", b"/revisions/ns/r?", Route("get_revision", "ns", "r")),
        # Namespaces may start with a digit (DNS-1123); names edge lengths.
        (b"GET", b"/revisions/1ns/r", Route("get_revision", "1ns", "r")),
        (b"GET", b"/revisions/" + b"n" * 63 + b"/" + b"r" * 63,
         Route("get_revision", "n" * 63, "r" * 63)),
        (b"GET", b"/revisions/a/b-1", Route("get_revision", "a", "b-1")),
    ],
)
def test_parse_target(method: bytes, target: bytes, want: Route) -> None:
    route = parse_target(method, target)
    assert route == want
    assert route.action == want.action


NOT_FOUND = [
    b"",
    b"*",
    b"/",
    b"revisions",
    b"http://activator/revisions",
    b"/revisions/",
    b"/revision",
    b"/Revisions",
    b"/revisionsx",
    b"//revisions",
    b"/revisions/default",
    b"/revisions/default/",
    b"/revisions/default/hello/",
    b"/revisions/default/hello/endpoints/",
    b"/revisions/default/hello/pods",
    b"/revisions/default/hello/endpoints/x",
    b"/revisions//hello",
    b"/revisions/default//endpoints",
    b"/foo?/revisions",
]


@pytest.mark.parametrize("target", NOT_FOUND)
def test_parse_target_not_found(target: bytes) -> None:
    for method in (b"GET", b"PUT", b"DELETE", b"POST"):
        e = refused(parse_target, method, target)
        assert (e.status, e.allow) == (404, ())
        assert e.reason == "no such path: " + json.dumps(target.partition(b"?")[0].decode())


@pytest.mark.parametrize(
    ("method", "target", "allow", "reason"),
    [
        (b"POST", b"/revisions", ("GET",),
         'method "POST" is not allowed on "/revisions"; allowed: GET'),
        (b"PUT", b"/revisions?x", ("GET",),
         'method "PUT" is not allowed on "/revisions"; allowed: GET'),
        (b"HEAD", b"/revisions/ns/r", ("GET", "PUT", "DELETE"),
         'method "HEAD" is not allowed on "/revisions/ns/r"; allowed: GET, PUT, DELETE'),
        (b"POST", b"/revisions/ns/r", ("GET", "PUT", "DELETE"),
         'method "POST" is not allowed on "/revisions/ns/r"; allowed: GET, PUT, DELETE'),
        (b"get", b"/revisions/ns/r", ("GET", "PUT", "DELETE"),
         'method "get" is not allowed on "/revisions/ns/r"; allowed: GET, PUT, DELETE'),
        (b"GET", b"/revisions/ns/r/endpoints", ("PUT",),
         'method "GET" is not allowed on "/revisions/ns/r/endpoints"; allowed: PUT'),
        (b"DELETE", b"/revisions/ns/r/endpoints", ("PUT",),
         'method "DELETE" is not allowed on "/revisions/ns/r/endpoints"; allowed: PUT'),
        # The method is checked before the names.
        (b"POST", b"/revisions/NS/R", ("GET", "PUT", "DELETE"),
         'method "POST" is not allowed on "/revisions/NS/R"; allowed: GET, PUT, DELETE'),
    ],
)
def test_parse_target_method_not_allowed(
    method: bytes, target: bytes, allow: tuple[str, ...], reason: str
) -> None:
    e = refused(parse_target, method, target)
    assert (e.status, e.allow, e.reason) == (405, allow, reason)
    assert ", ".join(e.allow)  # usable as an Allow header as is


NS_RULE = ("a DNS-1123 label must consist of lower case alphanumeric characters or '-', and "
           "must start and end with an alphanumeric character")
NAME_RULE = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
             "with an alphabetic character, and end with an alphanumeric character")


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (b"/revisions/Default/r", f'invalid namespace "Default": {NS_RULE}'),
        (b"/revisions/-ns/r", f'invalid namespace "-ns": {NS_RULE}'),
        (b"/revisions/ns-/r", f'invalid namespace "ns-": {NS_RULE}'),
        (b"/revisions/my.ns/r", f'invalid namespace "my.ns": {NS_RULE}'),
        (b"/revisions/my_ns/r", f'invalid namespace "my_ns": {NS_RULE}'),
        (b"/revisions/%64efault/r", f'invalid namespace "%64efault": {NS_RULE}'),
        (b"/revisions/n\xc3\xa9/r", f'invalid namespace "n\\u00c3\\u00a9": {NS_RULE}'),
        (b"/revisions/" + b"n" * 64 + b"/r",
         'invalid namespace "' + "n" * 60 + "...: must be no more than 63 characters"),
        (b"/revisions/ns/1st", f'invalid revision name "1st": {NAME_RULE}'),
        (b"/revisions/ns/Hello", f'invalid revision name "Hello": {NAME_RULE}'),
        (b"/revisions/ns/hello-", f'invalid revision name "hello-": {NAME_RULE}'),
        (b"/revisions/ns/hello.world", f'invalid revision name "hello.world": {NAME_RULE}'),
        (b"/revisions/ns/..", f'invalid revision name "..": {NAME_RULE}'),
        (b"/revisions/ns/r#frag", f'invalid revision name "r#frag": {NAME_RULE}'),
        (b"/revisions/ns/" + b"r" * 64,
         'invalid revision name "' + "r" * 60 + "...: must be no more than 63 characters"),
        # The namespace is checked first.
        (b"/revisions/NS/R", f'invalid namespace "NS": {NS_RULE}'),
    ],
)
def test_parse_target_invalid_names(target: bytes, reason: str) -> None:
    for method, suffix in ((b"GET", b""), (b"PUT", b""), (b"DELETE", b""), (b"PUT", b"/endpoints")):
        e = refused(parse_target, method, target + suffix)
        assert (e.status, e.allow, e.reason) == (400, (), reason)


# --------------------------------------------------------------------------- response bodies


def test_status_body_is_compact_sorted_json_with_a_newline() -> None:
    status = {
        "name": "hello-00001",
        "namespace": "default",
        "containerConcurrency": 1,
        "timeoutSeconds": 300,
        "capacity": None,
        "waiting": 2,
        "inFlight": 0,
        "healthyPods": ["10.0.0.1:8012"],
        "notReadyPods": [],
    }
    assert status_body(status) == (
        b'{"capacity":null,"containerConcurrency":1,"healthyPods":["10.0.0.1:8012"],'
        b'"inFlight":0,"name":"hello-00001","namespace":"default","notReadyPods":[],'
        b'"timeoutSeconds":300,"waiting":2}\n'
    )
    assert json.loads(status_body(status)) == status


def test_status_body_is_ascii_and_strict() -> None:
    assert status_body({"b": "\u00e9", "a": {"d": 1, "c": 2}}) == (
        b'{"a":{"c":2,"d":1},"b":"\\u00e9"}\n')
    with pytest.raises(ValueError):
        status_body({"capacity": float("inf")})


def test_error_body() -> None:
    e = refused(parse_revision, b'{"foo": 1}')
    assert error_body(e) == b'{"error":"unknown field \\"foo\\""}\n'


def test_endpoints_with_a_cluster_address() -> None:
    got = parse_endpoints_and_cluster(body({"ready": ["10.0.0.1:8012"],
                                            "clusterIP": "10.96.0.7:80"}))
    assert got == (["10.0.0.1:8012"], [], "10.96.0.7:80")
    assert parse_endpoints_and_cluster(body({"ready": []}))[2] is None
    with pytest.raises(ControlError, match="clusterIP"):
        parse_endpoints_and_cluster(body({"clusterIP": 7}))
    with pytest.raises(ControlError, match="clusterIP"):
        parse_endpoints_and_cluster(body({"clusterIP": "10.96.0.7"}))  # no port


def test_activators_are_ip_addresses() -> None:
    assert parse_activators(body({"activators": ["10.0.0.2", "::1"]})) == ["10.0.0.2", "::1"]
    for bad in ({"activators": "10.0.0.2"}, {"activators": [1]}, {"activators": ["a.b"]},
                {"others": []}, {}):
        with pytest.raises(ControlError):
            parse_activators(body(bad))
    assert parse_target(b"PUT", b"/revisions/ns/rev/activators") == Route(
        "put_activators", "ns", "rev")
