"""The activator's control API, sans-IO: routes, request bodies and their validation.

Theory of operation: out-of-process controllers drive the activator over a small HTTP/JSON admin
port. This module turns the bytes of a request (method, target, body) into checked Python values
or a ``ControlError`` that already carries the HTTP status and the reason to send back; the
asyncio shell only moves bytes and applies the result to the throttlers. Nothing here does I/O.

    GET    /revisions                               -> 200, the known revisions
    PUT    /revisions/{namespace}/{name}            -> create or update a revision (RevisionSpec)
    GET    /revisions/{namespace}/{name}            -> 200, the revision's status (below)
    DELETE /revisions/{namespace}/{name}            -> forget the revision
    PUT    /revisions/{namespace}/{name}/endpoints  -> replace its pods: {"ready": [...],
                                                       "notReady": [...], "clusterIP": ...}
    PUT    /revisions/{namespace}/{name}/activators -> the activators in its path (Knative's
                                                       subsetting): {"activators": [IP, ...]};
                                                       200 {"index": i, "count": n}

``PUT /revisions/...`` takes Knative's Revision spec field names, all optional::

    {"containerConcurrency": 0, "timeoutSeconds": 300,
     "responseStartTimeoutSeconds": 0, "idleTimeoutSeconds": 0}

The ``GET /revisions/{namespace}/{name}`` response (the activator fills the dict, ``status_body``
encodes it)::

    {"namespace": str, "name": str, "containerConcurrency": int, "timeoutSeconds": int,
     "capacity": int | null,     # requests this activator lets run at once; null = unlimited
     "waiting": int,             # requests queued in the throttler
     "inFlight": int,            # requests running through this activator
     "healthyPods": [str, ...], "notReadyPods": [str, ...]}   # "host:port", normalised

Validation follows Knative's webhook where the data plane is concerned (the sources are named at
each rule). JSON is read strictly: an object only, UTF-8 only, no unknown or repeated fields, no
``NaN``; integers are JSON integers (not ``true``, ``5.0`` or ``"5"``), as Go's encoding/json
reads an ``int64``. A ``null`` field means "not set", as it does for Knative's pointer fields.
The same checks run when the spec is built from Python (``RevisionSpec.__post_init__``).

Refusals: 400 for a bad body or name, 404 for a path the API does not have, 405 for a method the
path does not take (``ControlError.allow`` is then the ``Allow`` header); ``error_body`` encodes
``{"error": reason}``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

__all__ = [
    "ControlError",
    "RevisionSpec",
    "Route",
    "Action",
    "parse_revision",
    "parse_endpoints",
    "parse_target",
    "normalize_address",
    "status_body",
    "error_body",
    "MAX_CONTAINER_CONCURRENCY",
    "MAX_TIMEOUT_SECONDS",
    "DEFAULT_TIMEOUT_SECONDS",
]

# Knative's container-concurrency-max-limit default (DefaultMaxRevisionContainerConcurrency).
MAX_CONTAINER_CONCURRENCY = 1000
# Knative's max-revision-timeout-seconds defaults to 600 and operators raise it for long requests;
# the activator has no ingress timeout to stay under, so it accepts up to an hour.
MAX_TIMEOUT_SECONDS = 3600
# Knative's revision-timeout-seconds default (DefaultRevisionTimeoutSeconds).
DEFAULT_TIMEOUT_SECONDS = 300

Action = Literal[
    "list_revisions", "put_revision", "get_revision", "delete_revision", "put_endpoints",
    "put_activators",
]


class ControlError(ValueError):
    """A request the control API refuses: ``status`` (400, 404, 405) and ``reason`` to send back.

    For 405, ``allow`` names the methods the path takes (for the ``Allow`` header).
    """

    def __init__(self, reason: str, status: int = 400, allow: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.allow = allow

    def __repr__(self) -> str:
        return f"ControlError({self.reason!r}, status={self.status}, allow={self.allow!r})"


# --------------------------------------------------------------------------- revision spec

# JSON (Knative) name -> Python name, in the order the fields are checked.
_REVISION_FIELDS = {
    "containerConcurrency": "container_concurrency",
    "timeoutSeconds": "timeout_seconds",
    "responseStartTimeoutSeconds": "response_start_timeout_seconds",
    "idleTimeoutSeconds": "idle_timeout_seconds",
}


@dataclass(frozen=True, slots=True)
class RevisionSpec:
    """What the activator needs of a Knative Revision's spec; checked on construction.

    - ``container_concurrency``: 0..1000, 0 = unlimited (Knative's ValidateContainerConcurrency
      with the default container-concurrency-max-limit and allow-container-concurrency-zero).
    - ``timeout_seconds``: 1..3600. Knative bounds it by max-revision-timeout-seconds (600 by
      default) and turns 0 into the default at admission; here the value is what is enforced, so
      0 is refused and an omitted field gives 300.
    - ``response_start_timeout_seconds`` and ``idle_timeout_seconds``: 0..timeout_seconds, 0 = no
      such timer (the queue-proxy's reading, pkg/queue/sharedmain/handlers.go); the upper bound is
      config-defaults' "cannot be greater than revision-timeout-seconds".
    - ``service`` and ``configuration``: the revision's ``serving.knative.dev/service`` and
      ``serving.knative.dev/configuration`` labels (JSON: ``labels``), which Knative's activator
      puts on its metrics (``kn_service_name``, ``kn_configuration_name``); "" when unknown.
    """

    container_concurrency: int = 0
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    response_start_timeout_seconds: int = 0
    idle_timeout_seconds: int = 0
    service: str = ""
    configuration: str = ""

    def __post_init__(self) -> None:
        for attr in ("service", "configuration"):
            if not isinstance(getattr(self, attr), str):
                raise ControlError(f"{attr}: expected a string, got {_show(getattr(self, attr))}")
        for field, attr in _REVISION_FIELDS.items():
            value = getattr(self, attr)
            # bool is an int subclass, and JSON true must not read as 1.
            if not isinstance(value, int) or isinstance(value, bool):
                raise ControlError(f"{field}: expected an integer, got {_show(value)}")
        _check_bounds(self.container_concurrency, 0, MAX_CONTAINER_CONCURRENCY,
                      "containerConcurrency")
        _check_bounds(self.timeout_seconds, 1, MAX_TIMEOUT_SECONDS, "timeoutSeconds")
        for field in ("responseStartTimeoutSeconds", "idleTimeoutSeconds"):
            value = getattr(self, _REVISION_FIELDS[field])
            if value > self.timeout_seconds:
                raise ControlError(f"{field} ({_show(value)}) cannot be greater than "
                                   f"timeoutSeconds ({self.timeout_seconds})")
            _check_bounds(value, 0, self.timeout_seconds, field)


def _check_bounds(value: int, low: int, high: int, field: str) -> None:
    if not low <= value <= high:
        # knative.dev/pkg apis.ErrOutOfBoundsValue's wording.
        raise ControlError(f"expected {low} <= {_show(value)} <= {high}: {field}")


def parse_revision(body: bytes) -> RevisionSpec:
    """The body of ``PUT /revisions/{namespace}/{name}``; empty or ``{}`` gives the defaults."""
    obj = _load_object(body)
    kwargs: dict[str, Any] = {}
    for field, value in obj.items():
        if field == "labels":
            kwargs.update(_revision_labels(value))
            continue
        attr = _REVISION_FIELDS.get(field)
        if attr is None:
            raise ControlError(f"unknown field {_show(field)}")
        if value is not None:
            kwargs[attr] = value
    return RevisionSpec(**kwargs)


# Knative's revision labels the activator reads (for its metrics), and the spec's names for them.
_LABELS = {
    "serving.knative.dev/service": "service",
    "serving.knative.dev/configuration": "configuration",
}


def _revision_labels(value: Any) -> dict[str, str]:
    """``labels``: a Kubernetes label map (strings to strings); the two above are kept."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ControlError(f"labels: expected an object, got {_show(value)}")
    out = {}
    for key, v in value.items():
        if not isinstance(v, str):
            raise ControlError(f"labels: {_show(key)}: expected a string, got {_show(v)}")
        if key in _LABELS:
            out[_LABELS[key]] = v
    return out


# --------------------------------------------------------------------------- endpoints

_ENDPOINT_FIELDS = ("ready", "notReady", "clusterIP")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_HOST_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DIGITS = re.compile(r"[0-9]+")


def parse_endpoints(body: bytes) -> tuple[list[str], list[str]]:
    """The body of ``PUT .../endpoints`` -> (ready, not_ready), addresses normalised
    (``parse_endpoints_and_cluster`` gives the ``clusterIP`` too).

    Both fields are optional (default empty). Within a list, repeats are dropped and the first
    occurrence keeps its place; an address in both lists is refused: a pod is either ready or not,
    as in a Kubernetes EndpointSubset's ``addresses`` and ``notReadyAddresses``.
    """
    obj = _load_object(body)
    for field in obj:
        if field not in _ENDPOINT_FIELDS:
            raise ControlError(f"unknown field {_show(field)}")
    ready = _address_list(obj, "ready")
    not_ready = _address_list(obj, "notReady")
    both = set(ready).intersection(not_ready)
    if both:
        first = next(a for a in ready if a in both)
        raise ControlError(f'address "{first}" is in both ready and notReady')
    return ready, not_ready


def parse_endpoints_and_cluster(body: bytes) -> tuple[list[str], list[str], str | None]:
    """``parse_endpoints`` and the optional ``clusterIP``: ``"ip:port"`` of the revision's
    private service, where requests go when pods are not addressed one by one (mesh)."""
    ready, not_ready = parse_endpoints(body)
    value = _load_object(body).get("clusterIP")
    if value is None:
        return ready, not_ready, None
    if not isinstance(value, str):
        raise ControlError(f"clusterIP: expected a string, got {_show(value)}")
    try:
        return ready, not_ready, normalize_address(value)
    except ControlError as e:
        raise ControlError(f"clusterIP: {e.reason}") from None


def parse_activators(body: bytes) -> list[str]:
    """The body of ``PUT .../activators`` -> the activators' IP addresses, as Knative reads a
    revision's public service endpoints (healthy addresses; this activator among them)."""
    obj = _load_object(body)
    for field in obj:
        if field != "activators":
            raise ControlError(f"unknown field {_show(field)}")
    value = obj.get("activators")
    if not isinstance(value, list):
        raise ControlError(f"activators: expected a list of IP addresses, got {_show(value)}")
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ControlError(f"activators[{i}]: expected a string, got {_show(item)}")
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ControlError(f"activators[{i}]: {_show(item)} is not an IP address") from None
    return out


def _address_list(obj: dict[str, Any], field: str) -> list[str]:
    value = obj.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ControlError(f"{field}: expected a list of strings, got {_show(value)}")
    seen: dict[str, None] = {}  # ordered set
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ControlError(f"{field}[{i}]: expected a string, got {_show(item)}")
        try:
            seen[normalize_address(item)] = None
        except ControlError as e:
            raise ControlError(f"{field}[{i}]: {e.reason}") from None
    return list(seen)


def normalize_address(address: str) -> str:
    """``"host:port"`` checked and in canonical form, or ``ControlError``.

    The host is an IPv4 address (``10.0.0.1``), an IPv6 address in brackets (``[::1]``, written
    compressed and in lower case on the way out) or a DNS name (RFC 1123 labels, at most 253
    characters, lower-cased). A host whose last label is all digits must be an IPv4 address:
    ``1.2.3`` or ``10`` would otherwise reach the resolver, which reads them as IPv4 shorthand.
    The port is 1..65535, in decimal without leading zeros.
    """
    shown = _show(address)
    if address.startswith("["):
        literal, bracket, rest = address[1:].partition("]")
        if not bracket:
            raise ControlError(f"invalid address {shown}: unclosed '['")
        sep, port = rest[:1], rest[1:]
        if not rest:
            raise ControlError(f"invalid address {shown}: missing port")
        if sep != ":":
            raise ControlError(f"invalid address {shown}: expected ':' after ']'")
        _check_port(port, shown)
        if "%" in literal:
            raise ControlError(f"invalid address {shown}: IPv6 zone identifiers are not "
                               f"supported")
        try:
            ip6 = ipaddress.IPv6Address(literal)
        except ValueError:
            raise ControlError(f"invalid address {shown}: invalid IPv6 address") from None
        return f"[{ip6.compressed}]:{port}"
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ControlError(f"invalid address {shown}: missing port")
    _check_port(port, shown)
    if ":" in host:
        raise ControlError(f"invalid address {shown}: an IPv6 address must be in brackets")
    if not host:
        raise ControlError(f"invalid address {shown}: missing host")
    if _DIGITS.fullmatch(host.rpartition(".")[2]):
        try:
            ip4 = ipaddress.IPv4Address(host)
        except ValueError:
            raise ControlError(f"invalid address {shown}: invalid IPv4 address") from None
        return f"{ip4.compressed}:{port}"
    # ASCII first: str.lower() maps some non-ASCII letters to ASCII ones (KELVIN SIGN -> "k").
    name = host.lower()
    if not host.isascii() or len(name) > 253 or not all(
        len(label) <= 63 and _HOST_LABEL.fullmatch(label) for label in name.split(".")
    ):
        raise ControlError(f"invalid address {shown}: host is not an IP address or a valid "
                           f"DNS name")
    return f"{name}:{port}"


def _check_port(port: str, shown: str) -> None:
    if not _PORT.fullmatch(port) or int(port) > 65535:
        raise ControlError(f"invalid address {shown}: port must be 1..65535")


# --------------------------------------------------------------------------- routes


class Route(NamedTuple):
    """What a request asks for; ``namespace`` and ``name`` are "" for ``list_revisions``."""

    action: Action
    namespace: str = ""
    name: str = ""


_REVISION_METHODS: dict[bytes, Action] = {
    b"GET": "get_revision",
    b"PUT": "put_revision",
    b"DELETE": "delete_revision",
}
_LIST_METHODS: dict[bytes, Action] = {b"GET": "list_revisions"}
_ENDPOINTS_METHODS: dict[bytes, Action] = {b"PUT": "put_endpoints"}
_ACTIVATORS_METHODS: dict[bytes, Action] = {b"PUT": "put_activators"}

# k8s IsDNS1123Label: what a namespace name must be (ValidateNamespaceName).
_DNS1123_LABEL = re.compile(rb"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# k8s IsDNS1035Label: what knative.dev/pkg's ValidateObjectMetadata demands of a Revision's name
# (and of every Knative Serving object's), stricter than the DNS-1123 subdomain Kubernetes allows.
_DNS1035_LABEL = re.compile(rb"[a-z]([-a-z0-9]*[a-z0-9])?")
_MAX_LABEL = 63


def parse_target(method: bytes, target: bytes) -> Route:
    """The route for a request line's method and target (origin-form; the query is ignored).

    Raises ``ControlError``: 404 for a path the API does not have (a trailing slash included),
    405 with ``allow`` for a method the path does not take, 400 for a namespace that is not a
    DNS-1123 label or a revision name that is not a DNS-1035 label (both at most 63 characters).
    Methods are case-sensitive (RFC 9110); HEAD is not served.
    """
    path = target.partition(b"?")[0]
    parts = path.split(b"/")
    # b"/revisions/ns/name" -> [b"", b"revisions", b"ns", b"name"]
    if len(parts) < 2 or parts[0] != b"" or parts[1] != b"revisions":
        raise _not_found(path)
    if len(parts) == 2:
        return Route(_pick(method, _LIST_METHODS, path))
    if len(parts) == 4:
        methods = _REVISION_METHODS
    elif len(parts) == 5 and parts[4] == b"endpoints":
        methods = _ENDPOINTS_METHODS
    elif len(parts) == 5 and parts[4] == b"activators":
        methods = _ACTIVATORS_METHODS
    else:
        raise _not_found(path)
    namespace, name = parts[2], parts[3]
    if not namespace or not name:
        raise _not_found(path)
    action = _pick(method, methods, path)
    return Route(action, _check_namespace(namespace), _check_name(name))


def _pick(method: bytes, methods: dict[bytes, Action], path: bytes) -> Action:
    action = methods.get(method)
    if action is None:
        allow = tuple(m.decode() for m in methods)
        raise ControlError(
            f"method {_show_bytes(method)} is not allowed on {_show_bytes(path)}; allowed: "
            f"{', '.join(allow)}",
            status=405,
            allow=allow,
        )
    return action


def _not_found(path: bytes) -> ControlError:
    return ControlError(f"no such path: {_show_bytes(path)}", status=404)


def _check_namespace(raw: bytes) -> str:
    if len(raw) > _MAX_LABEL:
        raise ControlError(f"invalid namespace {_show_bytes(raw)}: must be no more than "
                           f"{_MAX_LABEL} characters")
    if not _DNS1123_LABEL.fullmatch(raw):
        raise ControlError(
            f"invalid namespace {_show_bytes(raw)}: a DNS-1123 label must consist of lower case "
            f"alphanumeric characters or '-', and must start and end with an alphanumeric "
            f"character"
        )
    return raw.decode("ascii")


def _check_name(raw: bytes) -> str:
    if len(raw) > _MAX_LABEL:
        raise ControlError(f"invalid revision name {_show_bytes(raw)}: must be no more than "
                           f"{_MAX_LABEL} characters")
    if not _DNS1035_LABEL.fullmatch(raw):
        raise ControlError(
            f"invalid revision name {_show_bytes(raw)}: a DNS-1035 label must consist of lower "
            f"case alphanumeric characters or '-', start with an alphabetic character, and end "
            f"with an alphanumeric character"
        )
    return raw.decode("ascii")


# --------------------------------------------------------------------------- bodies


def status_body(status: dict[str, Any]) -> bytes:
    """``status`` as a response body: compact JSON with sorted keys, then a newline."""
    text = json.dumps(status, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode("ascii") + b"\n"


def error_body(error: ControlError) -> bytes:
    """The body for a refused request: ``{"error": reason}``, encoded like ``status_body``."""
    return status_body({"error": error.reason})


# JSON whitespace (RFC 8259): a body of only this is an empty body.
_JSON_WS = b" \t\r\n"


def _load_object(body: bytes) -> dict[str, Any]:
    if not body.strip(_JSON_WS):
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ControlError(f"invalid JSON: body is not UTF-8 (byte {e.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_object_from_pairs,
                           parse_constant=_refuse_constant)
    except ControlError:
        raise
    except json.JSONDecodeError as e:
        raise ControlError(f"invalid JSON: {e}") from None
    except RecursionError:
        raise ControlError("invalid JSON: nested too deeply") from None
    except ValueError as e:  # e.g. an integer literal over sys.get_int_max_str_digits()
        raise ControlError(f"invalid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ControlError(f"expected a JSON object, got {_json_type(value)}")
    return value


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        # Go keeps the last of repeated keys; a controller sending two is buggy either way.
        if key in obj:
            raise ControlError(f"duplicate field {_show(key)}")
        obj[key] = value
    return obj


def _refuse_constant(name: str) -> Any:
    raise ControlError(f"invalid JSON: {name} is not a JSON value")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


_SHOW_MAX = 64


def _show(value: object) -> str:
    """``value`` as it would be written in JSON (``"5"``, ``true``, ``null``), cut if long."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        try:
            text = repr(value)
        except ValueError:  # an int over sys.get_int_max_str_digits()
            text = f"<{type(value).__name__} too large to show>"
    if len(text) > _SHOW_MAX:
        text = text[: _SHOW_MAX - 3] + "..."
    return text


def _show_bytes(raw: bytes) -> str:
    return _show(raw.decode("latin-1"))
