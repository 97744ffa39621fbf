"""Knative Services from YAML, for the local runtime: parsing, defaulting and validation, sans-IO.

Theory of operation
-------------------

The local runtime (spec section 8) runs Knative Services on one machine: a revision's "pods" are
the container's command run as a process, next to a queue-proxy process. Users declare services
the way they would for a cluster, in ``serving.knative.dev/v1`` ``kind: Service`` YAML. This
module turns that YAML into frozen values (``Service`` > ``RevisionTemplate`` > ``Container``,
plus ``TrafficTarget``) or a ``ServiceError`` naming the file, line, field and reason::

    hello.yaml:9: spec.template.spec.containers[0].command: required: the local runtime runs the
    container's command (images are not pulled)

It does what Knative's admission webhook does for a Service, in the same order of ideas: defaults
first (``SetDefaults``), then validation (``Validate``), with Knative's wording where Knative has
one. The sources, all under knative/serving ``pkg/apis/serving/``:

- ``metadata_validation.go`` and knative.dev/pkg ``apis.ValidateObjectMetadata``: ``metadata.name``
  is a DNS-1035 label; a Service's own annotations may not carry ``autoscaling.knative.dev/*``
  keys ("autoscaling annotations must be put under spec.template.metadata.annotations").
- ``v1/revision_defaults.go``: ``timeoutSeconds`` absent or 0 -> 300;
  ``responseStartTimeoutSeconds`` absent -> 300 when that is below ``timeoutSeconds``, else none;
  ``containerConcurrency`` -> 0; the readiness probe defaults (below).
- ``v1/revision_validation.go``: ``timeoutSeconds`` and ``containerConcurrency`` bounds (reused
  from ``activator.control.RevisionSpec``, which also bounds the two other timeouts by
  ``timeoutSeconds``); a named revision (``spec.template.metadata.name``) is a DNS-1035 label with
  the prefix ``<service>-``; ``VerifyNameChange`` (``Service.verify_update``).
- ``k8s_validation.go`` and ``fieldmask.go``: unknown fields are refused ("must not set the
  field(s)"); env names ``PORT``, ``K_SERVICE``, ``K_CONFIGURATION``, ``K_REVISION`` are reserved;
  ``ports`` holds at most one port, TCP, named "", ``http1`` or ``h2c``, not one of the data
  plane's ports (8012, 8013, 8022, 9090, 9091, 8008); the container is not named ``queue-proxy``;
  the readiness probe has one handler, its port matches the container's, and with
  ``periodSeconds`` 0 (Knative's aggressive probing) it sets no ``timeoutSeconds`` or
  ``failureThreshold``.
- ``v1/route_defaults.go`` and ``v1/route_validation.go``: no traffic block -> 100% to the latest
  revision; ``latestRevision`` defaults to "no ``revisionName``" and must agree with it; ``percent``
  defaults to 0, is 0..100, and the percents sum to 100; tags are DNS-1035 labels, each defined
  once; ``configurationName`` and ``url`` are not for a Service's spec.

Where the local runtime cannot do what a cluster would, the field is refused with the reason, not
dropped: a silently ignored volume or secret would surface later as an app that cannot find its
files. Fields that only a scheduler, kubelet or registry would act on are tolerated and ignored.

=========================  ==============================================  =====================
object                     read                                            tolerated and ignored
=========================  ==============================================  =====================
document                   apiVersion, kind, metadata, spec                status
metadata                   name, namespace, labels, annotations            server-set fields
                                                                           (uid, generation, ...)
spec.template.metadata     name, labels, annotations                       creationTimestamp and
                                                                           other server-set ones
spec.template.spec         containers, containerConcurrency,               serviceAccountName,
                           timeoutSeconds, responseStartTimeoutSeconds,    imagePullSecrets,
                           idleTimeoutSeconds                              scheduling and pod
                                                                           security fields
containers[0]              name, image, command, args, env, workingDir,    imagePullPolicy,
                           ports, readinessProbe                           resources,
                                                                           securityContext,
                                                                           liveness/startupProbe,
                                                                           terminationMessage*
=========================  ==============================================  =====================

Refused with a reason: more than one container (sidecars), ``volumes``, ``volumeMounts``,
``initContainers``, ``hostAliases``, ``envFrom``, ``env[].valueFrom`` (no ConfigMaps, Secrets or
downward API here), ``generateName`` (a local service needs a fixed name), a missing ``command``
(no image is pulled or run, so the command is what runs; ``args`` follow it), the ``h2c`` port
name and ``grpc`` or HTTPS readiness probes (this queue-proxy speaks HTTP/1.1 to the container).
``image`` is optional and informational. Anything else unknown: "must not set the field(s)",
with a did-you-mean for a near miss. Values are typed as Kubernetes types them (an annotation,
label or env value is a string: ``8080`` must be quoted). Repeated keys in a mapping are refused.
Only the first problem found is reported.

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

import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import yaml

from activator.control import DEFAULT_TIMEOUT_SECONDS, ControlError, RevisionSpec

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
    "load_services",
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
    for handler in ("httpGet", "tcpSocket"):
        action = probe.get(handler)
        if action is None:
            continue
        port = action.get("port")
        if not isinstance(port, int) or port in (0, container.port):
            port = user_port
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


# --------------------------------------------------------------------------- loading


def load_services(path_or_text: str | bytes | os.PathLike[str], *,
                  source: str | None = None) -> list[Service]:
    """Every Service in a YAML stream, in order; empty documents are skipped.

    A path-like (``pathlib.Path``) is read as a file (``source`` defaults to its path); ``str``
    or ``bytes`` is the YAML itself (``source`` defaults to ``<string>``). Raises
    ``ServiceError`` for the first problem found, including unreadable files and YAML syntax
    errors (with line and column), and a Service defined twice in the stream.
    """
    if isinstance(path_or_text, os.PathLike):
        path = os.fspath(path_or_text)
        source = path if source is None else source
        try:
            with open(path, "rb") as f:
                data: str | bytes = f.read()
        except OSError as e:
            raise ServiceError(source, "", f"cannot read: {e.strerror or e}") from None
    else:
        data = path_or_text
        source = "<string>" if source is None else source
    documents = _load_yaml(data, source)
    if isinstance(data, str) and len(documents) == 1 and isinstance(documents[0], str):
        raise ServiceError(source, "", f"expected YAML, got the string {_show(documents[0])}: to "
                           f"read a file, pass a pathlib.Path", 1)
    services: list[Service] = []
    seen: dict[tuple[str, str], Service] = {}
    for doc in documents:
        if doc is None:
            continue
        svc = _Parser(source).service(doc)
        key = (svc.namespace, svc.name)
        first = seen.get(key)
        if first is not None:
            raise svc.error("metadata.name",
                            f"Service {svc.namespace}/{svc.name} is defined twice (first at "
                            f"line {first.line})")
        seen[key] = svc
        services.append(svc)
    return services


# YAML: PyYAML's safe loader, with mappings and sequences that remember their lines (errors
# name them) and with repeated keys refused (Kubernetes' strict decoding refuses them; PyYAML
# would keep the last silently).


class _Map(dict[Any, Any]):
    __slots__ = ("line", "key_lines")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}


class _Seq(list[Any]):
    __slots__ = ("line", "item_lines")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


class _Loader(yaml.SafeLoader):
    pass


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    own = {id(key) for key, _ in node.value if key.tag != _MERGE_TAG}
    loader.flatten_mapping(node)  # "<<" merges first, so that the node's own keys override
    out = _Map(node.start_mark.line + 1)
    own_seen: set[Any] = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key",
                key_node.start_mark) from None
        if id(key_node) in own:
            if key in own_seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found a repeated key {_show(key)}", key_node.start_mark)
            own_seen.add(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(node.start_mark.line + 1)
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.item_lines.append(item.start_mark.line + 1)
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _load_yaml(data: str | bytes, source: str) -> list[Any]:
    try:
        return list(yaml.load_all(data, Loader=_Loader))  # a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "malformed"
        if mark is None:
            raise ServiceError(source, "", f"invalid YAML: {problem}") from None
        raise ServiceError(source, "", f"invalid YAML: {problem}", mark.line + 1,
                           mark.column + 1) from None
    except yaml.reader.ReaderError as e:  # bytes that are not UTF-8 or UTF-16, control chars
        problem = str(e).splitlines()[0]
        raise ServiceError(source, "", f"invalid YAML: {problem} at position {e.position}"
                           ) from None
    except yaml.YAMLError as e:
        raise ServiceError(source, "", f"invalid YAML: {e}") from None
    except RecursionError:
        raise ServiceError(source, "", "invalid YAML: nested too deeply") from None


# --------------------------------------------------------------------------- field policies

# Server-set ObjectMeta fields: present in `kubectl get -o yaml` output, meaningless here.
_SERVER_METADATA = frozenset({
    "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "managedFields", "selfLink", "ownerReferences", "finalizers",
})
_GENERATE_NAME_REASON = "not supported: the local runtime needs a fixed name; set name"

_REVISION_SPEC_FIELDS = frozenset({
    "containers", "containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds",
    "idleTimeoutSeconds",
})
# PodSpec fields Knative takes (some behind feature flags) that only a scheduler, kubelet or
# cluster acts on; processes on one machine share its network, PID and IPC namespaces anyway.
_IGNORED_POD_FIELDS = frozenset({
    "serviceAccountName", "automountServiceAccountToken", "imagePullSecrets",
    "enableServiceLinks", "affinity", "nodeSelector", "tolerations", "topologySpreadConstraints",
    "priorityClassName", "schedulerName", "runtimeClassName", "securityContext", "dnsPolicy",
    "dnsConfig", "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace",
})
_REFUSED_POD_FIELDS = {
    "volumes": "not supported: the local runtime has no volumes",
    "initContainers": "not supported: the local runtime runs one container per pod",
    "hostAliases": "not supported: the local runtime cannot change name resolution",
}
_CONTAINER_FIELDS = frozenset({
    "name", "image", "command", "args", "env", "workingDir", "ports", "readinessProbe",
})
_IGNORED_CONTAINER_FIELDS = frozenset({
    "imagePullPolicy", "resources", "securityContext", "livenessProbe", "startupProbe",
    "terminationMessagePath", "terminationMessagePolicy",
})
_REFUSED_CONTAINER_FIELDS = {
    "envFrom": "not supported: the local runtime has no ConfigMaps or Secrets; list the "
               "variables under env",
    "volumeMounts": "not supported: the local runtime has no volumes",
}
_PROBE_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")
_PROBE_FIELDS = frozenset({
    *_PROBE_HANDLERS, "initialDelaySeconds", "timeoutSeconds", "periodSeconds",
    "successThreshold", "failureThreshold",
})
_PROBE_INT_FIELDS = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds",
                     "successThreshold", "failureThreshold")
_TRAFFIC_FIELDS = frozenset({"tag", "revisionName", "latestRevision", "percent"})
_REFUSED_TRAFFIC_FIELDS = {
    "configurationName": "must not set the field(s): a Service's traffic goes to its own "
                         "configuration; use latestRevision or revisionName",
    "url": "must not set the field(s): url is reported in status",
}
_AUTOSCALING_PREFIX = "autoscaling.knative.dev"

# --------------------------------------------------------------------------- name checks

_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")

_DNS1035_RULE = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                 "start with an alphabetic character, and end with an alphanumeric character")
_DNS1123_RULE = ("a DNS-1123 label must consist of lower case alphanumeric characters or '-', "
                 "and must start and end with an alphanumeric character")


def _dns1035_problem(value: str) -> str | None:
    if len(value) > _LONGEST_NAME:
        return f"must be no more than {_LONGEST_NAME} characters"
    if not _DNS1035_LABEL.fullmatch(value):
        return _DNS1035_RULE
    return None


def _dns1123_problem(value: str) -> str | None:
    if len(value) > _LONGEST_NAME:
        return f"must be no more than {_LONGEST_NAME} characters"
    if not _DNS1123_LABEL.fullmatch(value):
        return _DNS1123_RULE
    return None


def _qualified_name_problem(key: str) -> str | None:
    """k8s IsQualifiedName: ``[prefix/]name``, what label and annotation keys must be."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix):
            return ("prefix part must be a DNS-1123 subdomain (lower case alphanumeric "
                    "characters, '-' or '.')")
    if not name:
        return "name part must be non-empty"
    if len(name) > _LONGEST_NAME:
        return f"name part must be no more than {_LONGEST_NAME} characters"
    if not _QUALIFIED_NAME.fullmatch(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character")
    return None


def _label_value_problem(value: str) -> str | None:
    if len(value) > _LONGEST_NAME:
        return f"must be no more than {_LONGEST_NAME} characters"
    if not _LABEL_VALUE.fullmatch(value):
        return ("a label value must be empty or consist of alphanumeric characters, '-', '_' "
                "or '.', and must start and end with an alphanumeric character")
    return None


# --------------------------------------------------------------------------- the parser


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parent_path(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


def _strip_field(reason: str, name: str) -> str:
    """A ``ControlError`` reason without the field name it carries (we give the path)."""
    if reason.endswith(f": {name}"):
        return reason[: -len(name) - 2]
    if reason.startswith(f"{name}: "):
        return reason[len(name) + 2:]
    return reason


class _Parser:
    """Reads one YAML document into a ``Service``, recording the line of every field read."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}

    # ---- generic readers

    def fail(self, path: str, reason: str, line: int | None) -> NoReturn:
        raise ServiceError(self.source, path, reason, line)

    def mapping(self, path: str, value: Any, line: int, *, known: Iterable[str],
                ignored: Iterable[str] = (), refused: Mapping[str, str] | None = None) -> _Map:
        """``value`` as a mapping (null -> empty) whose keys are all known, ignored, or refused
        with a reason (refused only when set: null, "", [] and {} are unset, as Go's
        omitempty reads them)."""
        if value is None:
            value = _Map(line)  # absent: no line of its own to record
        if not isinstance(value, _Map):
            self.fail(path, f"expected a mapping, got {_kind(value)}", line)
        known, ignored = frozenset(known), frozenset(ignored)
        for key, item in value.items():
            key_line = value.key_lines[key]
            if not isinstance(key, str):
                self.fail(path, f"field names are strings, got {_kind(key)} ({_show(key)})",
                          key_line)
            sub = _join(path, key)
            self.lines[sub] = key_line
            if key in known or key in ignored:
                continue
            if refused is not None and key in refused:
                if item is None or item == "" or item == [] or item == {}:
                    continue
                self.fail(sub, refused[key], key_line)
            self.fail(sub, "must not set the field(s)" + _did_you_mean(key, known | ignored),
                      key_line)
        return value

    def sequence(self, path: str, value: Any, line: int) -> _Seq:
        if value is None:
            return _Seq(line)
        if not isinstance(value, _Seq):
            self.fail(path, f"expected a list, got {_kind(value)}", line)
        for i, item_line in enumerate(value.item_lines):
            self.lines[f"{path}[{i}]"] = item_line
        return value

    def string(self, path: str, value: Any, line: int) -> str | None:
        if value is None or isinstance(value, str):
            return value
        self.fail(path, _expected_string(value), line)

    def integer(self, path: str, value: Any, line: int) -> int | None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        self.fail(path, f"expected an integer, got {_kind(value)} ({_show(value)})", line)

    def boolean(self, path: str, value: Any, line: int) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        self.fail(path, f"expected a boolean, got {_kind(value)} ({_show(value)})", line)

    def strings(self, path: str, value: Any, line: int) -> list[str]:
        if isinstance(value, str):
            self.fail(path, f"expected a list of strings, got a string ({_show(value)})", line)
        seq = self.sequence(path, value, line)
        out = []
        for i, item in enumerate(seq):
            if not isinstance(item, str):
                self.fail(f"{path}[{i}]", _expected_string(item), seq.item_lines[i])
            out.append(item)
        return out

    def string_map(self, path: str, value: Any, line: int,
                   check_key: Callable[[str], str | None],
                   check_value: Callable[[str], str | None] | None = None) -> dict[str, str]:
        """Labels or annotations: string keys and string values, keys checked (``[key]`` paths,
        as knative.dev/pkg's FieldError.ViaKey writes them)."""
        if value is None:
            return {}
        if not isinstance(value, _Map):
            self.fail(path, f"expected a mapping, got {_kind(value)}", line)
        out: dict[str, str] = {}
        for key, item in value.items():
            key_line = value.key_lines[key]
            if not isinstance(key, str):
                self.fail(path, f"keys are strings, got {_kind(key)} ({_show(key)})", key_line)
            sub = f"{path}[{key}]"
            self.lines[sub] = key_line
            problem = check_key(key)
            if problem:
                self.fail(sub, f"invalid key {_show(key)}: {problem}", key_line)
            if item is None:
                item = ""  # a Go map[string]string reads null as ""
            if not isinstance(item, str):
                self.fail(sub, _expected_string(item), key_line)
            if check_value is not None:
                problem = check_value(item)
                if problem:
                    self.fail(sub, f"invalid value {_show(item)}: {problem}", key_line)
            out[key] = item
        return out

    def labels(self, path: str, value: Any, line: int) -> dict[str, str]:
        return self.string_map(path, value, line, _qualified_name_problem, _label_value_problem)

    def annotations(self, path: str, value: Any, line: int) -> dict[str, str]:
        # k8s ValidateAnnotations checks the lower-cased key.
        return self.string_map(path, value, line, lambda k: _qualified_name_problem(k.lower()))

    # ---- the Service

    def service(self, doc: Any) -> Service:
        if not isinstance(doc, _Map):
            self.fail("", f"expected a Kubernetes object (a mapping), got {_kind(doc)}",
                      getattr(doc, "line", None))
        line = doc.line
        self.lines[""] = line
        kind = self.string("kind", doc.get("kind"), _at(doc, "kind"))
        if kind is None:
            self.fail("kind", f'required: expected "{KIND}"', line)
        if kind != KIND:
            self.fail("kind", f'expected "{KIND}", got {_show(kind)}: the local runtime runs '
                      f"Knative Services only", _at(doc, "kind"))
        api_version = self.string("apiVersion", doc.get("apiVersion"), _at(doc, "apiVersion"))
        if api_version is None:
            self.fail("apiVersion", f'required: expected "{API_VERSION}"', line)
        if api_version != API_VERSION:
            self.fail("apiVersion", f'expected "{API_VERSION}", got {_show(api_version)}',
                      _at(doc, "apiVersion"))
        self.mapping("", doc, line, known={"apiVersion", "kind", "metadata", "spec"},
                     ignored={"status"})

        meta = self.mapping(
            "metadata", doc.get("metadata"), _at(doc, "metadata"),
            known={"name", "namespace", "labels", "annotations"}, ignored=_SERVER_METADATA,
            refused={"generateName": _GENERATE_NAME_REASON})
        name = self.string("metadata.name", meta.get("name"), _at(meta, "name"))
        if not name:
            self.fail("metadata.name", "required", _at(meta, "name"))
        self.check_name("metadata.name", name, _at(meta, "name"), _dns1035_problem,
                        "not a DNS 1035 label")
        namespace = self.string("metadata.namespace", meta.get("namespace"),
                                _at(meta, "namespace")) or DEFAULT_NAMESPACE
        self.check_name("metadata.namespace", namespace, _at(meta, "namespace"),
                        _dns1123_problem, "not a DNS 1123 label")
        labels = self.labels("metadata.labels", meta.get("labels"), _at(meta, "labels"))
        annotations = self.annotations("metadata.annotations", meta.get("annotations"),
                                       _at(meta, "annotations"))
        for key in annotations:
            if key.startswith(_AUTOSCALING_PREFIX):
                self.fail(f"metadata.annotations[{key}]",
                          'autoscaling annotations must be put under '
                          '"spec.template.metadata.annotations" to work',
                          self.lines.get(f"metadata.annotations[{key}]"))

        spec = self.mapping("spec", doc.get("spec"), _at(doc, "spec"),
                            known={"template", "traffic"})
        template = self.template(name, spec.get("template"), _at(spec, "template"))
        traffic = self.traffic(spec.get("traffic"), _at(spec, "traffic"))
        return Service(
            name=name, namespace=namespace, template=template, traffic=traffic, labels=labels,
            annotations=annotations, source=self.source, line=line, field_lines=self.lines)

    def check_name(self, path: str, value: str, line: int,
                   problem_of: Callable[[str], str | None], what: str) -> None:
        problem = problem_of(value)
        if problem:
            self.fail(path, f"{what}: {_show(value)}: {problem}", line)

    # ---- spec.template

    def template(self, service: str, value: Any, line: int) -> RevisionTemplate:
        path = "spec.template"
        tpl = self.mapping(path, value, line, known={"metadata", "spec"})
        meta = self.mapping(f"{path}.metadata", tpl.get("metadata"), _at(tpl, "metadata"),
                            known={"name", "labels", "annotations"}, ignored=_SERVER_METADATA,
                            refused={"generateName": _GENERATE_NAME_REASON})
        name = self.string(f"{path}.metadata.name", meta.get("name"), _at(meta, "name")) or None
        if name is not None:
            self.check_name(f"{path}.metadata.name", name, _at(meta, "name"), _dns1035_problem,
                            "not a DNS 1035 label")
            prefix = f"{service}-"
            if not name.startswith(prefix):
                self.fail(f"{path}.metadata.name",
                          f"{_show(name)} must have prefix {_show(prefix)}", _at(meta, "name"))
        labels = self.labels(f"{path}.metadata.labels", meta.get("labels"), _at(meta, "labels"))
        annotations = self.annotations(f"{path}.metadata.annotations", meta.get("annotations"),
                                       _at(meta, "annotations"))

        sp = f"{path}.spec"
        spec = self.mapping(sp, tpl.get("spec"), _at(tpl, "spec"), known=_REVISION_SPEC_FIELDS,
                            ignored=_IGNORED_POD_FIELDS, refused=_REFUSED_POD_FIELDS)
        ints: dict[str, int | None] = {}
        for key in ("containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds",
                    "idleTimeoutSeconds"):
            ints[key] = self.integer(f"{sp}.{key}", spec.get(key), _at(spec, key))
        # revision_defaults.go: an absent or zero timeout is the default.
        timeout = ints["timeoutSeconds"] or DEFAULT_TIMEOUT_SECONDS
        response_start = ints["responseStartTimeoutSeconds"]
        if response_start is None:
            response_start = (_DEFAULT_RESPONSE_START_TIMEOUT_SECONDS
                              if _DEFAULT_RESPONSE_START_TIMEOUT_SECONDS < timeout else 0)
        values = {
            "containerConcurrency": ints["containerConcurrency"] or 0,
            "timeoutSeconds": timeout,
            "responseStartTimeoutSeconds": response_start,
            "idleTimeoutSeconds": ints["idleTimeoutSeconds"] or 0,
        }
        self.check_revision_spec(sp, spec, values)

        containers = self.sequence(f"{sp}.containers", spec.get("containers"),
                                   _at(spec, "containers"))
        if not containers:
            self.fail(f"{sp}.containers", "required: one container", _at(spec, "containers"))
        if len(containers) > 1:
            self.fail(f"{sp}.containers",
                      f"the local runtime runs one container per pod (no sidecars), found "
                      f"{len(containers)}", _at(spec, "containers"))
        container = self.container(f"{sp}.containers[0]", containers[0],
                                   containers.item_lines[0])
        return RevisionTemplate(
            container=container, name=name, annotations=annotations, labels=labels,
            container_concurrency=values["containerConcurrency"],
            timeout_seconds=values["timeoutSeconds"],
            response_start_timeout_seconds=values["responseStartTimeoutSeconds"],
            idle_timeout_seconds=values["idleTimeoutSeconds"])

    def check_revision_spec(self, path: str, spec: _Map, values: dict[str, int]) -> None:
        """The activator's own RevisionSpec checks, one field at a time so that a refusal names
        its field: the bounds alone first, then the timeouts against ``timeoutSeconds``."""
        names = list(values)
        attrs = ("container_concurrency", "timeout_seconds", "response_start_timeout_seconds",
                 "idle_timeout_seconds")
        for i, key in enumerate(names):
            kwargs = {attrs[j]: values[names[j]] for j in range(i + 1)
                      if j == i or names[j] == "timeoutSeconds"}
            try:
                RevisionSpec(**kwargs)
            except ControlError as e:
                self.fail(f"{path}.{key}", _strip_field(e.reason, key), _at(spec, key))

    # ---- containers[0]

    def container(self, path: str, value: Any, line: int) -> Container:
        c = self.mapping(path, value, line, known=_CONTAINER_FIELDS,
                         ignored=_IGNORED_CONTAINER_FIELDS, refused=_REFUSED_CONTAINER_FIELDS)
        name = self.string(f"{path}.name", c.get("name"), _at(c, "name")) or None
        if name is not None:
            self.check_name(f"{path}.name", name, _at(c, "name"), _dns1123_problem,
                            "not a DNS 1123 label")
            if name in _RESERVED_CONTAINER_NAMES:
                self.fail(f"{path}.name", f"{_show(name)} is a reserved container name",
                          _at(c, "name"))
        image = self.string(f"{path}.image", c.get("image"), _at(c, "image")) or ""
        command = self.strings(f"{path}.command", c.get("command"), _at(c, "command"))
        if not command:
            self.fail(f"{path}.command",
                      "required: the local runtime runs the container's command (images are not "
                      "pulled)", _at(c, "command"))
        args = self.strings(f"{path}.args", c.get("args"), _at(c, "args"))
        working_dir = self.string(f"{path}.workingDir", c.get("workingDir"),
                                  _at(c, "workingDir")) or None
        env = self.env(f"{path}.env", c.get("env"), _at(c, "env"))
        port, port_name = self.ports(f"{path}.ports", c.get("ports"), _at(c, "ports"))
        probe = self.readiness_probe(f"{path}.readinessProbe", c.get("readinessProbe"),
                                     _at(c, "readinessProbe"), port_name)
        return Container(
            command=command, args=args, env=env, port=port, port_name=port_name,
            working_dir=working_dir, image=image, name=name or DEFAULT_CONTAINER_NAME,
            readiness_probe=probe)

    def env(self, path: str, value: Any, line: int) -> dict[str, str]:
        seq = self.sequence(path, value, line)
        out: dict[str, str] = {}
        for i, item in enumerate(seq):
            p = f"{path}[{i}]"
            entry = self.mapping(
                p, item, seq.item_lines[i], known={"name", "value"},
                refused={"valueFrom": "not supported: the local runtime has no ConfigMaps, "
                                      "Secrets or downward API; set value"})
            name = self.string(f"{p}.name", entry.get("name"), _at(entry, "name"))
            if not name:
                self.fail(f"{p}.name", "required", _at(entry, "name"))
            if not _ENV_VAR_NAME.fullmatch(name):
                self.fail(f"{p}.name",
                          f"invalid name {_show(name)}: a valid environment variable name must "
                          f"consist of alphabetic characters, digits, '_', '-', or '.', and must "
                          f"not start with a digit", _at(entry, "name"))
            if name in RESERVED_ENV_VARS:
                self.fail(f"{p}.name", f"{_show(name)} is a reserved environment variable",
                          _at(entry, "name"))
            # Repeated names: the last wins, as in the kubelet.
            out[name] = self.string(f"{p}.value", entry.get("value"), _at(entry, "value")) or ""
        return out

    def ports(self, path: str, value: Any, line: int) -> tuple[int, str]:
        seq = self.sequence(path, value, line)
        if not seq:
            return DEFAULT_USER_PORT, ""
        if len(seq) > 1:
            self.fail(path, "more than one container port is set: only a single port is allowed",
                      line)
        p = f"{path}[0]"
        entry = self.mapping(p, seq[0], seq.item_lines[0],
                             known={"containerPort", "name", "protocol"})
        port = self.integer(f"{p}.containerPort", entry.get("containerPort"),
                            _at(entry, "containerPort"))
        if port is None:
            self.fail(f"{p}.containerPort", "required", _at(entry, "containerPort"))
        if not 1 <= port <= 65535:
            self.fail(f"{p}.containerPort", f"expected 1 <= {port} <= 65535",
                      _at(entry, "containerPort"))
        if port in _RESERVED_PORTS:
            self.fail(f"{p}.containerPort",
                      f"{port} is a reserved port, please use a different value",
                      _at(entry, "containerPort"))
        name = self.string(f"{p}.name", entry.get("name"), _at(entry, "name")) or ""
        if name == "h2c":
            self.fail(f"{p}.name", "h2c is not supported: this queue-proxy speaks HTTP/1.1 to "
                      "the container", _at(entry, "name"))
        if name not in ("", "http1"):
            self.fail(f"{p}.name", f"Port name {name} is not allowed: name must be empty, or "
                      f"one of: 'h2c', 'http1'", _at(entry, "name"))
        protocol = self.string(f"{p}.protocol", entry.get("protocol"), _at(entry, "protocol"))
        if protocol not in (None, "", "TCP"):
            self.fail(f"{p}.protocol", f"invalid value {_show(protocol)}: only TCP is served",
                      _at(entry, "protocol"))
        return port, name

    def readiness_probe(self, path: str, value: Any, line: int,
                        port_name: str) -> dict[str, Any]:
        probe = self.mapping(path, value, line, known=_PROBE_FIELDS,
                             refused={"terminationGracePeriodSeconds":
                                      "must not be set for readinessProbes"})
        out: dict[str, Any] = {}
        handlers = [h for h in _PROBE_HANDLERS if probe.get(h) is not None]
        if len(handlers) > 1:
            self.fail(path, f"expected exactly one, got both: {', '.join(handlers)}", line)
        handler = handlers[0] if handlers else "tcpSocket"  # Knative's default probe
        hp = f"{path}.{handler}"
        hline = _at(probe, handler)
        if handler == "grpc":
            self.fail(hp, "not supported: this queue-proxy cannot probe gRPC (HTTP/2)", hline)
        if handler == "exec":
            action = self.mapping(hp, probe[handler], hline, known={"command"})
            command = self.strings(f"{hp}.command", action.get("command"),
                                   _at(action, "command"))
            if not command:
                self.fail(f"{hp}.command", "required", _at(action, "command"))
            out["exec"] = {"command": command}
        else:
            known = {"host", "port"} | (
                {"path", "scheme", "httpHeaders"} if handler == "httpGet" else set())
            action = self.mapping(hp, probe.get(handler), hline, known=known)
            out[handler] = self.probe_action(hp, handler, action, port_name)

        for key in _PROBE_INT_FIELDS:
            n = self.integer(f"{path}.{key}", probe.get(key), _at(probe, key))
            if n is not None:
                if not 0 <= n <= _INT32_MAX:
                    self.fail(f"{path}.{key}", f"expected 0 <= {n} <= {_INT32_MAX}",
                              _at(probe, key))
                if n:
                    out[key] = n
        # revision_defaults.go applyReadinessProbeDefaults, then validateReadinessProbe.
        out.setdefault("successThreshold", 1)
        if out.get("periodSeconds"):
            out.setdefault("failureThreshold", 3)
            out.setdefault("timeoutSeconds", 1)
        else:
            for key in ("failureThreshold", "timeoutSeconds"):
                if key in out:
                    self.fail(f"{path}.{key}", f"{key} is disallowed when periodSeconds is zero",
                              _at(probe, key))
        return out

    def probe_action(self, path: str, handler: str, action: _Map,
                     port_name: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        host = self.string(f"{path}.host", action.get("host"), _at(action, "host"))
        if host:
            out["host"] = host
        port = action.get("port")
        port_line = _at(action, "port")
        if isinstance(port, str):
            # k8s_validation.go validateProbe: a named port must be the user port's name, which
            # is "http" when ports[0] has none (validateContainersPorts).
            if port != (port_name or "http"):
                self.fail(f"{path}.port",
                          f"invalid value {_show(port)}: Probe port must match container port",
                          port_line)
            out["port"] = port
        elif port is not None:
            n = self.integer(f"{path}.port", port, port_line) or 0
            if not 0 <= n <= 65535:
                self.fail(f"{path}.port", f"expected 0 <= {n} <= 65535", port_line)
            if n:
                out["port"] = n
        if handler != "httpGet":
            return out
        probe_path = self.string(f"{path}.path", action.get("path"), _at(action, "path"))
        if probe_path:
            out["path"] = probe_path
        scheme = self.string(f"{path}.scheme", action.get("scheme"), _at(action, "scheme"))
        if scheme == "HTTPS":
            self.fail(f"{path}.scheme", "not supported: this queue-proxy probes over HTTP only",
                      _at(action, "scheme"))
        if scheme not in (None, "", "HTTP"):
            self.fail(f"{path}.scheme", f'invalid value {_show(scheme)}: expected "HTTP"',
                      _at(action, "scheme"))
        if scheme:
            out["scheme"] = scheme
        hp = f"{path}.httpHeaders"
        seq = self.sequence(hp, action.get("httpHeaders"), _at(action, "httpHeaders"))
        headers = []
        for i, item in enumerate(seq):
            p = f"{hp}[{i}]"
            h = self.mapping(p, item, seq.item_lines[i], known={"name", "value"})
            name = self.string(f"{p}.name", h.get("name"), _at(h, "name"))
            if not name:
                self.fail(f"{p}.name", "required", _at(h, "name"))
            headers.append({"name": name,
                            "value": self.string(f"{p}.value", h.get("value"),
                                                 _at(h, "value")) or ""})
        if headers:
            out["httpHeaders"] = headers
        return out

    # ---- spec.traffic

    def traffic(self, value: Any, line: int) -> list[TrafficTarget]:
        path = "spec.traffic"
        seq = self.sequence(path, value, line)
        if not seq:
            return _all_to_latest()  # route_defaults.go, within a Service
        targets: list[TrafficTarget] = []
        tags: dict[str, int] = {}
        total = 0
        for i, item in enumerate(seq):
            p = f"{path}[{i}]"
            t = self.mapping(p, item, seq.item_lines[i], known=_TRAFFIC_FIELDS,
                             refused=_REFUSED_TRAFFIC_FIELDS)
            revision = self.string(f"{p}.revisionName", t.get("revisionName"),
                                   _at(t, "revisionName")) or None
            latest = self.boolean(f"{p}.latestRevision", t.get("latestRevision"),
                                  _at(t, "latestRevision"))
            if latest is not None and (revision is not None) == latest:
                self.fail(f"{p}.latestRevision",
                          f"may not set revisionName {_show(revision or '')} when latestRevision "
                          f"is {str(latest).lower()}", _at(t, "latestRevision"))
            if revision is not None:
                self.check_name(f"{p}.revisionName", revision, _at(t, "revisionName"),
                                _dns1035_problem, "not a DNS 1035 label")
            percent = self.integer(f"{p}.percent", t.get("percent"), _at(t, "percent"))
            if percent is not None and not 0 <= percent <= 100:
                self.fail(f"{p}.percent", f"expected 0 <= {percent} <= 100", _at(t, "percent"))
            tag = self.string(f"{p}.tag", t.get("tag"), _at(t, "tag")) or None
            if tag is not None:
                self.check_name(f"{p}.tag", tag, _at(t, "tag"), _dns1035_problem,
                                "not a DNS 1035 label")
                if tag in tags:
                    self.fail(f"{p}.tag", f"Multiple definitions for {_show(tag)} (also "
                              f"{path}[{tags[tag]}].tag)", _at(t, "tag"))
                tags[tag] = i
            total += percent or 0
            targets.append(TrafficTarget(revision_name=revision, latest_revision=revision is None,
                                         percent=percent or 0, tag=tag))
        if total != 100:
            self.fail(path, f"Traffic targets sum to {total}, want 100", line)
        return targets


def _at(mapping: _Map, key: str) -> int:
    """The line of ``key`` in ``mapping``, or of the mapping itself when the key is absent."""
    return mapping.key_lines.get(key, mapping.line)


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


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"  # e.g. "a date": YAML reads 2024-01-01 as one


def _expected_string(value: object) -> str:
    if isinstance(value, (list, dict)):
        return f"expected a string, got {_kind(value)}"
    return f"expected a string, got {_kind(value)} ({_show(value)}): quote the value"


def _did_you_mean(key: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(choices), n=1, cutoff=0.75)
    return f" (did you mean {_show(close[0])}?)" if close else ""

