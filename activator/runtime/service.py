"""Knative Services as frozen values for the local runtime: the model, names and digests.

``activator.runtime.manifest`` turns YAML into these values (``Service`` > ``RevisionTemplate``
> ``Container``, plus ``TrafficTarget``) or a ``ServiceError``; this module holds the values and
what the runtime derives from them.

Revision identity. Knative names the revisions of a Service ``<service>-00001``, ``-00002``, ...
after the Configuration's generation, which moves on each template change (``revision_name``;
``kmeta.ChildName`` shortens a long name with a hash). The runtime keeps, per service, the
``template_digest`` of the template it runs: an equal digest keeps the revision, a different one
makes the next generation. A template that names its revision uses that name instead.

Readiness. ``Container.readiness_probe`` holds the Kubernetes Probe as written, with Knative's
defaults (no probe or no handler -> ``tcpSocket``; ``successThreshold`` 1; with ``periodSeconds``
set, ``timeoutSeconds`` 1 and ``failureThreshold`` 3). ``serving_readiness_probe`` renders it for
the queue-proxy's ``SERVING_READINESS_PROBE`` as Knative's revision reconciler does (host
127.0.0.1, the port the app actually listens on, an ``exec`` probe becomes a TCP probe); the
runtime may additionally run an exec probe's command itself. Liveness and startup probes need a
kubelet and are ignored.

Autoscaling annotations are kept raw (strings); their meaning is checked by the KPA's own
validation, which the caller runs through ``Service.validate_annotations(check)``, e.g. with
``kpa.ScalingConfig.from_annotations``, so that its ``ValueError`` comes back as a
``ServiceError`` with this file, the annotation's key and its line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from activator.activator.control import DEFAULT_TIMEOUT_SECONDS, RevisionSpec

__all__ = [
    "API_VERSION",
    "KIND",
    "DEFAULT_NAMESPACE",
    "DEFAULT_USER_PORT",
    "DEFAULT_CONTAINER_NAME",
    "RESERVED_ENV_VARS",
    "ServiceError",
    "Container",
    "RevisionTemplate",
    "TrafficTarget",
    "Service",
    "revision_name",
    "template_digest",
    "serving_readiness_probe",
    "expand",
]

API_VERSION = "serving.knative.dev/v1"
KIND = "Service"
DEFAULT_NAMESPACE = "default"
# Knative's user port when ports[] is empty (validateContainersPorts, getUserPort).
DEFAULT_USER_PORT = 8080
# config-defaults' container-name-template default.
DEFAULT_CONTAINER_NAME = "user-container"
# Knative sets these itself (k8s_validation.go reservedEnvVars); so does the local runtime.
RESERVED_ENV_VARS = frozenset({"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"})
# config-defaults' revision-response-start-timeout-seconds default (revision_defaults.go).
_DEFAULT_RESPONSE_START_TIMEOUT_SECONDS = 300
# The data plane's own ports (k8s_validation.go reservedPorts): queue-proxy HTTP and H2C, admin,
# the two metrics ports, profiling.
_RESERVED_PORTS = frozenset({8012, 8013, 8022, 9090, 9091, 8008})
_RESERVED_CONTAINER_NAMES = frozenset({"queue-proxy"})
_INT32_MAX = 2**31 - 1
# Knative's queue-proxy probes the user container on the pod's loopback (queue.go localAddress).
_LOCAL_ADDRESS = "127.0.0.1"

_T = TypeVar("_T")


# --------------------------------------------------------------------------- errors


class ServiceError(ValueError):
    """A Service the local runtime refuses: ``source`` (a file name), ``field`` (a path such as
    ``spec.traffic[1].tag``, "" for the file as a whole), ``reason``, and where known the 1-based
    ``line`` and ``column``. ``str()`` reads ``source:line: field: reason``.
    """

    def __init__(self, source: str, field: str, reason: str, line: int | None = None,
                 column: int | None = None) -> None:
        self.source = source
        self.field = field
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(self._message())

    def _message(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.field, self.reason, self.line, self.column))


# --------------------------------------------------------------------------- the model


def _default_probe() -> dict[str, Any]:
    return {"tcpSocket": {}, "successThreshold": 1}


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    """The user container: what the local runtime starts as a process.

    ``argv`` is ``command + args`` (before ``$(VAR)`` expansion, see ``expand``). ``port`` is
    ``ports[0].containerPort`` (8080 when absent, as Knative); the runtime gives each pod a free
    port in ``PORT`` all the same, as the app must read ``PORT``. ``working_dir`` is as written
    (a relative one is the runtime's to resolve, e.g. against the YAML file's directory).
    ``readiness_probe`` is the Kubernetes Probe with Knative's defaults, see the module notes.
    """

    command: list[str]
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = DEFAULT_USER_PORT
    port_name: str = ""
    working_dir: str | None = None
    image: str = ""
    name: str = DEFAULT_CONTAINER_NAME
    readiness_probe: dict[str, Any] = field(default_factory=_default_probe)

    @property
    def argv(self) -> list[str]:
        """``command`` then ``args``, unexpanded."""
        return [*self.command, *self.args]

    def environ(self, runtime: Mapping[str, str] | None = None) -> dict[str, str]:
        """The container's environment as the kubelet builds it for Knative's pod.

        ``env`` in order, each value's ``$(VAR)`` expanded against the entries before it, then
        ``runtime`` (``PORT``, ``K_REVISION``, ``K_CONFIGURATION``, ``K_SERVICE``), which Knative
        appends after the user's entries. Nothing is inherited from the host here.
        """
        out: dict[str, str] = {}
        for name, value in self.env.items():
            out[name] = expand(value, out)
        if runtime:
            out.update(runtime)
        return out

    def process_args(self, env: Mapping[str, str]) -> list[str]:
        """``argv`` with ``$(VAR)`` expanded against ``env`` (usually ``environ(runtime)``), as
        the kubelet expands ``command`` and ``args``; ``$(PORT)`` works."""
        return [expand(arg, env) for arg in self.argv]


@dataclass(frozen=True, slots=True, kw_only=True)
class RevisionTemplate:
    """``spec.template``: what each revision of the Service runs, with Knative's defaults.

    ``name`` is ``spec.template.metadata.name`` when the user names the revision. The values are
    checked by ``load_services``, not on construction.
    """

    container: Container
    name: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    container_concurrency: int = 0
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    response_start_timeout_seconds: int = 0
    idle_timeout_seconds: int = 0

    def revision_spec(self) -> RevisionSpec:
        """The activator's view of the revision (``PUT /revisions/...`` on its control API)."""
        return RevisionSpec(
            container_concurrency=self.container_concurrency,
            timeout_seconds=self.timeout_seconds,
            response_start_timeout_seconds=self.response_start_timeout_seconds,
            idle_timeout_seconds=self.idle_timeout_seconds,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficTarget:
    """One ``spec.traffic`` entry after Knative's defaults: ``latest_revision`` is true exactly
    when ``revision_name`` is None, and an omitted ``percent`` is 0 (route_defaults.go)."""

    revision_name: str | None = None
    latest_revision: bool = True
    percent: int = 0
    tag: str | None = None


def _all_to_latest() -> list[TrafficTarget]:
    return [TrafficTarget(latest_revision=True, percent=100)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A Knative Service as the local runtime runs it.

    ``source`` is the file it came from and ``line`` where its document starts; ``field_lines``
    maps the field paths read to their lines, for ``error``. Neither takes part in equality.
    """

    name: str
    template: RevisionTemplate
    namespace: str = DEFAULT_NAMESPACE
    traffic: list[TrafficTarget] = field(default_factory=_all_to_latest)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    source: str = "<string>"
    line: int | None = field(default=None, compare=False)
    field_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def error(self, field: str, reason: str) -> ServiceError:
        """A ``ServiceError`` about ``field`` of this Service, at the nearest line known."""
        path = field
        while path:
            line = self.field_lines.get(path)
            if line is not None:
                return ServiceError(self.source, field, reason, line)
            path = _parent_path(path)
        return ServiceError(self.source, field, reason, self.line)

    def validate_annotations(self, check: Callable[[Mapping[str, str], int], _T]) -> _T:
        """Runs ``check(template annotations, containerConcurrency)`` and returns its result,
        e.g. ``svc.validate_annotations(kpa.ScalingConfig.from_annotations)``.

        A ``ValueError`` it raises comes back as a ``ServiceError`` on
        ``spec.template.metadata.annotations``, or on ``...annotations[key]`` at that key's line
        when the error has an ``annotation`` attribute naming one (as ``kpa.AnnotationError``
        does); a trailing ``": key"`` in its message is then dropped, the field says it.
        """
        try:
            return check(self.template.annotations, self.template.container_concurrency)
        except ServiceError:
            raise
        except ValueError as e:
            path = "spec.template.metadata.annotations"
            reason = str(e)
            key = getattr(e, "annotation", None)
            if isinstance(key, str) and key in self.template.annotations:
                path = f"{path}[{key}]"
                if reason.endswith(f": {key}"):
                    reason = reason[: -len(key) - 2]
            raise self.error(path, reason) from None

    def revision_name_for(self, generation: int) -> str:
        """The name of the revision made at ``generation``: the template's own name if it has
        one, else Knative's ``<service>-<generation:05d>``."""
        return self.template.name or revision_name(self.name, generation)

    def verify_update(self, previous: Service) -> None:
        """Knative's ``VerifyNameChange``: a template that names its revision must rename it when
        anything else in the template changes (a revision is immutable)."""
        name = self.template.name
        if name and name == previous.template.name and (
                template_digest(self.template) != template_digest(previous.template)):
            raise self.error(
                "spec.template.metadata.name",
                f"the template changed but its revision name {_show(name)} did not: a revision "
                f"is immutable, give the new one a new name",
            )


# --------------------------------------------------------------------------- identity


def revision_name(service: str, generation: int) -> str:
    """Knative's name for the revision a Configuration makes at ``generation`` (1, 2, ...):
    ``<service>-00001``, shortened with an MD5 of the name when it would pass 63 characters
    (``kmeta.ChildName``, as pkg/reconciler/configuration/resources/revision.go calls it)."""
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 1:
        raise ValueError(f"generation must be a positive integer, got {generation!r}")
    return _child_name(service, f"-{generation:05d}")


_LONGEST_NAME = 63
_MD5_HEX_LEN = 32
_HEAD = _LONGEST_NAME - _MD5_HEX_LEN


def _child_name(parent: str, suffix: str) -> str:
    if len(parent) <= _LONGEST_NAME - len(suffix):
        return parent + suffix
    if _HEAD - len(suffix) <= 0:
        digest = hashlib.md5((parent + suffix).encode(), usedforsecurity=False).hexdigest()
        out = parent[:_HEAD] + digest
        out += suffix[: max(0, _LONGEST_NAME - len(out))]
        return out.rstrip("-.")  # kmeta's makeValidName: end on an alphanumeric
    digest = hashlib.md5(parent.encode(), usedforsecurity=False).hexdigest()
    return parent[: _HEAD - len(suffix)] + digest + suffix


def template_digest(template: RevisionTemplate) -> str:
    """A stable SHA-256 (hex) of everything in the template, including its name: equal for
    templates that run the same, different when anything the runtime uses changes. Env order
    counts (``$(VAR)`` expansion depends on it); map order elsewhere does not."""
    c = template.container
    canonical = {
        "v": 1,
        "name": template.name,
        "annotations": template.annotations,
        "labels": template.labels,
        "containerConcurrency": template.container_concurrency,
        "timeoutSeconds": template.timeout_seconds,
        "responseStartTimeoutSeconds": template.response_start_timeout_seconds,
        "idleTimeoutSeconds": template.idle_timeout_seconds,
        "container": {
            "name": c.name,
            "image": c.image,
            "command": c.command,
            "args": c.args,
            "env": [[k, v] for k, v in c.env.items()],
            "port": c.port,
            "portName": c.port_name,
            "workingDir": c.working_dir,
            "readinessProbe": c.readiness_probe,
        },
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- runtime helpers


def serving_readiness_probe(container: Container, user_port: int) -> str:
    """The queue-proxy's ``SERVING_READINESS_PROBE`` (JSON) for a pod whose app listens on
    ``user_port``, as Knative's revision reconciler writes it (queue.go
    ``applyReadinessProbeDefaults``): the probe targets 127.0.0.1; its port is ``user_port``
    unless the probe names another number than the container port; ``scheme`` defaults to HTTP;
    an ``exec`` probe becomes a TCP probe (the queue-proxy cannot run commands in the app)."""
    probe = json.loads(json.dumps(container.readiness_probe))  # a deep copy
    for handler in ("httpGet", "tcpSocket", "grpc"):
        action = probe.get(handler)
        if action is None:
            continue
        port = action.get("port")
        if not isinstance(port, int) or port in (0, container.port):
            port = user_port
        if handler != "grpc":  # a gRPC probe always dials 127.0.0.1 (Knative's GRPCProbe)
            action["host"] = _LOCAL_ADDRESS
        action["port"] = port
        if handler == "httpGet":
            action.setdefault("scheme", "HTTP")
        break
    else:
        if "exec" in probe:
            del probe["exec"]
            probe["tcpSocket"] = {"host": _LOCAL_ADDRESS, "port": user_port}
    if probe.get("periodSeconds", 0) > 0 and probe.get("timeoutSeconds", 0) < 1:
        probe["timeoutSeconds"] = 1
    return json.dumps(probe, separators=(",", ":"))


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (k8s third_party/forked/golang/expansion): ``$(NAME)``
    becomes ``env[NAME]``, or stays as written when ``NAME`` is not set; ``$$`` is a literal
    ``$``; any other ``$`` is kept."""
    if "$" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 == n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2: close]
                out.append(env[name] if name in env else f"$({name})")
                i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def _parent_path(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


_SHOW_MAX = 64


def _show(value: object) -> str:
    """``value`` as JSON would write it (``"5"``, ``5``, ``true``, ``null``), cut if long."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = str(value)
    if len(text) > _SHOW_MAX:
        text = text[: _SHOW_MAX - 3] + "..."
    return text
