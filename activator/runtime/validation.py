"""The Service schema: Knative's defaults and validation of one parsed YAML document, field by
field (see ``activator.runtime.manifest`` for the rules and their sources).

Long because it is one table: each method checks one Kubernetes or Knative type, and the field
policies above them say which fields are read, ignored or refused."""



from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

from activator.activator.control import DEFAULT_TIMEOUT_SECONDS, ControlError, RevisionSpec
from activator.autoscaler.config import ANNOTATION_KEYS
from activator.runtime.service import (
    _DEFAULT_RESPONSE_START_TIMEOUT_SECONDS,
    _INT32_MAX,
    _LONGEST_NAME,
    _RESERVED_CONTAINER_NAMES,
    _RESERVED_PORTS,
    API_VERSION,
    DEFAULT_CONTAINER_NAME,
    DEFAULT_NAMESPACE,
    DEFAULT_USER_PORT,
    KIND,
    RESERVED_ENV_VARS,
    Container,
    RevisionTemplate,
    Service,
    ServiceError,
    TrafficTarget,
    _all_to_latest,
    _show,
)
from activator.runtime.yamlfile import YamlMap, YamlSeq

__all__ = ["ServiceParser", "KNOWN_ANNOTATIONS"]

_T = TypeVar("_T")

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

# The annotation keys Knative reads under its own prefixes, aliases included. An unknown key
# there is a warning, not a refusal: Knative ignores it too, but a misspelt min-scale that
# silently does nothing is what a local tool should point out. Sources: the KPA's keys
# (activator/autoscaler/config.py, Knative's pkg/apis/autoscaling/register.go);
# pkg/apis/serving/register.go (annotations only: its label keys are labels);
# pkg/apis/config/features.go (the per-Service feature gates); knative.dev/networking
# pkg/apis/networking/register.go (the public group's annotations).
KNOWN_ANNOTATIONS: Mapping[str, frozenset[str]] = {
    "autoscaling.knative.dev": frozenset(
        key.partition("/")[2] for keys in ANNOTATION_KEYS.values() for key in keys),
    "serving.knative.dev": frozenset({
        "creator", "lastModifier", "rollout-duration", "rolloutDuration", "progress-deadline",
        "lastPinned", "no-gc", "routes", "routingStateModified",
    }),
    "features.knative.dev": frozenset({"queueproxy-podinfo", "http-full-duplex"}),
    "networking.knative.dev": frozenset({
        "certificate.class", "certificate-class", "disableAutoTLS", "disable-auto-tls",
        "disable-external-domain-tls", "httpOption", "http-protocol", "ingress.class",
        "ingress-class",
    }),
}
# Knative label keys under those prefixes, for "is a label" rather than "did you mean".
_KNATIVE_LABELS = frozenset({
    "networking.knative.dev/visibility", "networking.knative.dev/wildcardDomain",
    "networking.knative.dev/certificate-type", "networking.knative.dev/trust-bundle",
    "serving.knative.dev/configuration", "serving.knative.dev/route",
    "serving.knative.dev/routingState", "serving.knative.dev/revision",
    "serving.knative.dev/service", "serving.knative.dev/configurationGeneration",
})

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



def _strip_field(reason: str, name: str) -> str:
    """A ``ControlError`` reason without the field name it carries (we give the path)."""
    if reason.endswith(f": {name}"):
        return reason[: -len(name) - 2]
    if reason.startswith(f"{name}: "):
        return reason[len(name) + 2:]
    return reason


class ServiceParser:
    """Reads one YAML document into a ``Service``, recording the line of every field read.

    Every problem is collected (``errors``), not just the first: a reader that cannot go on
    raises (``fail``), and the field's caller catches it (``attempt``) and reads on with a
    default; a problem that does not stop the reading is only noted (``note``). A refused
    document gives None. Unknown annotation keys under Knative's prefixes are ``warnings``.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self.errors: list[ServiceError] = []
        self.warnings: list[ServiceError] = []
        # The template's annotations and containerConcurrency as read, even from a document
        # refused for other reasons, so that the KPA's checks of them can run too.
        self.template_annotations: dict[str, str] | None = None
        self.container_concurrency = 0

    # ---- generic readers

    def fail(self, path: str, reason: str, line: int | None) -> NoReturn:
        raise ServiceError(self.source, path, reason, line)

    def note(self, path: str, reason: str, line: int | None) -> None:
        self.errors.append(ServiceError(self.source, path, reason, line))

    def attempt(self, read: Callable[[], _T], default: _T) -> _T:
        """``read()``, or ``default`` with its refusal noted."""
        try:
            return read()
        except ServiceError as e:
            self.errors.append(e)
            return default

    def mapping(self, path: str, value: Any, line: int, *, known: Iterable[str],
                ignored: Iterable[str] = (), refused: Mapping[str, str] | None = None) -> YamlMap:
        """``value`` as a mapping (null -> empty) whose keys are all known, ignored, or refused
        with a reason (refused only when set: null, "", [] and {} are unset, as Go's
        omitempty reads them)."""
        if value is None:
            value = YamlMap(line)  # absent: no line of its own to record
        if not isinstance(value, YamlMap):
            self.fail(path, f"expected a mapping, got {_kind(value)}", line)
        known, ignored = frozenset(known), frozenset(ignored)
        for key, item in value.items():
            key_line = value.key_lines[key]
            if not isinstance(key, str):
                self.note(path, f"field names are strings, got {_kind(key)} ({_show(key)})",
                          key_line)
                continue
            sub = _join(path, key)
            self.lines[sub] = key_line
            if key in known or key in ignored:
                continue
            if refused is not None and key in refused:
                if item is None or item == "" or item == [] or item == {}:
                    continue
                self.note(sub, refused[key], key_line)
                continue
            self.note(sub, "must not set the field(s)" + _did_you_mean(key, known | ignored),
                      key_line)
        return value

    def sequence(self, path: str, value: Any, line: int) -> YamlSeq:
        if value is None:
            return YamlSeq(line)
        if not isinstance(value, YamlSeq):
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
                self.note(f"{path}[{i}]", _expected_string(item), seq.item_lines[i])
                continue
            out.append(item)
        return out

    def string_map(self, path: str, value: Any, line: int,
                   check_key: Callable[[str], str | None],
                   check_value: Callable[[str], str | None] | None = None) -> dict[str, str]:
        """Labels or annotations: string keys and string values, keys checked (``[key]`` paths,
        as knative.dev/pkg's FieldError.ViaKey writes them)."""
        if value is None:
            return {}
        if not isinstance(value, YamlMap):
            self.fail(path, f"expected a mapping, got {_kind(value)}", line)
        out: dict[str, str] = {}
        for key, item in value.items():
            key_line = value.key_lines[key]
            if not isinstance(key, str):
                self.note(path, f"keys are strings, got {_kind(key)} ({_show(key)})", key_line)
                continue
            sub = f"{path}[{key}]"
            self.lines[sub] = key_line
            problem = check_key(key)
            if problem:
                self.note(sub, f"invalid key {_show(key)}: {problem}", key_line)
                continue
            if item is None:
                item = ""  # a Go map[string]string reads null as ""
            if not isinstance(item, str):
                self.note(sub, _expected_string(item), key_line)
                continue
            if check_value is not None:
                problem = check_value(item)
                if problem:
                    self.note(sub, f"invalid value {_show(item)}: {problem}", key_line)
                    continue
            out[key] = item
        return out

    def labels(self, path: str, value: Any, line: int) -> dict[str, str]:
        return self.string_map(path, value, line, _qualified_name_problem, _label_value_problem)

    def annotations(self, path: str, value: Any, line: int) -> dict[str, str]:
        # k8s ValidateAnnotations checks the lower-cased key.
        out = self.string_map(path, value, line, lambda k: _qualified_name_problem(k.lower()))
        for key in out:
            prefix, _, name = key.partition("/")
            known = KNOWN_ANNOTATIONS.get(prefix)
            if known is None or name in known:
                continue
            if path == "metadata.annotations" and prefix == _AUTOSCALING_PREFIX:
                continue  # refused there (service() says where they go)
            if key in _KNATIVE_LABELS:
                hint = f"; it is a label: put it under {path.rpartition('.')[0]}.labels"
            else:
                hint = _did_you_mean(name, known, prefix=f"{prefix}/")
            self.warnings.append(ServiceError(
                self.source, f"{path}[{key}]", f"unknown annotation: Knative ignores it{hint}",
                self.lines.get(f"{path}[{key}]")))
        return out

    # ---- the Service

    def service(self, doc: Any) -> Service | None:
        """The document's Service, or None with every problem found in ``errors``."""
        try:
            line = self.header(doc)
        except ServiceError as e:  # not a Knative Service at all: nothing more to say
            self.errors.append(e)
            return None
        meta = self.attempt(lambda: self.mapping(
            "metadata", doc.get("metadata"), _at(doc, "metadata"),
            known={"name", "namespace", "labels", "annotations"}, ignored=_SERVER_METADATA,
            refused={"generateName": _GENERATE_NAME_REASON}), YamlMap(line))
        name = self.attempt(lambda: self.service_name(meta), None)
        namespace = self.attempt(lambda: self.namespace(meta), DEFAULT_NAMESPACE)
        labels: dict[str, str] = self.attempt(
            lambda: self.labels("metadata.labels", meta.get("labels"), _at(meta, "labels")), {})
        annotations: dict[str, str] = self.attempt(lambda: self.annotations(
            "metadata.annotations", meta.get("annotations"), _at(meta, "annotations")), {})
        for key in annotations:
            if key.startswith(_AUTOSCALING_PREFIX):
                self.note(f"metadata.annotations[{key}]",
                          'autoscaling annotations must be put under '
                          '"spec.template.metadata.annotations" to work',
                          self.lines.get(f"metadata.annotations[{key}]"))

        spec = self.attempt(lambda: self.mapping("spec", doc.get("spec"), _at(doc, "spec"),
                                                 known={"template", "traffic"}), None)
        if spec is None:
            return None
        template = self.attempt(
            lambda: self.template(name, spec.get("template"), _at(spec, "template")), None)
        traffic: list[TrafficTarget] = self.attempt(
            lambda: self.traffic(spec.get("traffic"), _at(spec, "traffic")), [])
        if self.errors or name is None or template is None:
            return None
        return Service(
            name=name, namespace=namespace, template=template, traffic=traffic, labels=labels,
            annotations=annotations, source=self.source, line=line, field_lines=self.lines)

    def header(self, doc: Any) -> int:
        """Checks that ``doc`` is a Knative Service (kind, apiVersion, top-level fields);
        returns its line."""
        if not isinstance(doc, YamlMap):
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
        return line

    def service_name(self, meta: YamlMap) -> str:
        name = self.string("metadata.name", meta.get("name"), _at(meta, "name"))
        if not name:
            self.fail("metadata.name", "required", _at(meta, "name"))
        self.check_name("metadata.name", name, _at(meta, "name"), _dns1035_problem,
                        "not a DNS 1035 label")
        return name

    def namespace(self, meta: YamlMap) -> str:
        namespace = self.string("metadata.namespace", meta.get("namespace"),
                                _at(meta, "namespace")) or DEFAULT_NAMESPACE
        self.check_name("metadata.namespace", namespace, _at(meta, "namespace"),
                        _dns1123_problem, "not a DNS 1123 label")
        return namespace

    def check_name(self, path: str, value: str, line: int,
                   problem_of: Callable[[str], str | None], what: str) -> None:
        problem = problem_of(value)
        if problem:
            self.fail(path, f"{what}: {_show(value)}: {problem}", line)

    # ---- spec.template

    def template(self, service: str | None, value: Any, line: int) -> RevisionTemplate | None:
        path = "spec.template"
        tpl = self.mapping(path, value, line, known={"metadata", "spec"})
        meta = self.attempt(lambda: self.mapping(
            f"{path}.metadata", tpl.get("metadata"), _at(tpl, "metadata"),
            known={"name", "labels", "annotations"}, ignored=_SERVER_METADATA,
            refused={"generateName": _GENERATE_NAME_REASON}), YamlMap(line))
        name = self.attempt(lambda: self.revision_name(service, meta), None)
        labels: dict[str, str] = self.attempt(lambda: self.labels(
            f"{path}.metadata.labels", meta.get("labels"), _at(meta, "labels")), {})
        annotations: dict[str, str] = self.attempt(lambda: self.annotations(
            f"{path}.metadata.annotations", meta.get("annotations"), _at(meta, "annotations")),
            {})

        sp = f"{path}.spec"
        spec = self.mapping(sp, tpl.get("spec"), _at(tpl, "spec"), known=_REVISION_SPEC_FIELDS,
                            ignored=_IGNORED_POD_FIELDS, refused=_REFUSED_POD_FIELDS)
        ints: dict[str, int | None] = {}
        for key in ("containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds",
                    "idleTimeoutSeconds"):
            ints[key] = self.attempt(
                lambda key=key: self.integer(f"{sp}.{key}", spec.get(key), _at(spec, key)),  # type: ignore[misc]
                None)
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
        self.template_annotations = annotations
        self.container_concurrency = values["containerConcurrency"]

        containers = self.attempt(lambda: self.sequence(
            f"{sp}.containers", spec.get("containers"), _at(spec, "containers")), None)
        if containers is None:
            return None
        if not containers:
            self.fail(f"{sp}.containers", "required: one container", _at(spec, "containers"))
        if len(containers) > 1:
            self.note(f"{sp}.containers",
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

    def revision_name(self, service: str | None, meta: YamlMap) -> str | None:
        path = "spec.template.metadata.name"
        name = self.string(path, meta.get("name"), _at(meta, "name")) or None
        if name is not None:
            self.check_name(path, name, _at(meta, "name"), _dns1035_problem,
                            "not a DNS 1035 label")
            prefix = f"{service}-"
            if service is not None and not name.startswith(prefix):
                self.fail(path, f"{_show(name)} must have prefix {_show(prefix)}",
                          _at(meta, "name"))
        return name

    def check_revision_spec(self, path: str, spec: YamlMap, values: dict[str, int]) -> None:
        """The activator's own RevisionSpec checks, one field at a time so that a refusal names
        its field: the bounds alone first, then the timeouts against ``timeoutSeconds`` (a
        refused one is checked against its default, for no second refusal on its account)."""
        names = list(values)
        attrs = ("container_concurrency", "timeout_seconds", "response_start_timeout_seconds",
                 "idle_timeout_seconds")
        for i, key in enumerate(names):
            kwargs: dict[str, Any] = {attrs[j]: values[names[j]] for j in range(i + 1)
                                      if j == i or names[j] == "timeoutSeconds"}
            try:
                RevisionSpec(**kwargs)
            except ControlError as e:
                self.note(f"{path}.{key}", _strip_field(e.reason, key), _at(spec, key))
                values[key] = DEFAULT_TIMEOUT_SECONDS if key == "timeoutSeconds" else 0

    # ---- containers[0]

    def container(self, path: str, value: Any, line: int) -> Container:
        c = self.mapping(path, value, line, known=_CONTAINER_FIELDS,
                         ignored=_IGNORED_CONTAINER_FIELDS, refused=_REFUSED_CONTAINER_FIELDS)
        name = self.attempt(lambda: self.container_name(path, c), None)
        image = self.attempt(
            lambda: self.string(f"{path}.image", c.get("image"), _at(c, "image")), None) or ""
        command = self.attempt(
            lambda: self.strings(f"{path}.command", c.get("command"), _at(c, "command")), None)
        if command == [] and not c.get("command"):  # (a list of non-strings is refused above)
            self.note(f"{path}.command",
                      "required: the local runtime runs the container's command (images are not "
                      "pulled)", _at(c, "command"))
        args: list[str] = self.attempt(
            lambda: self.strings(f"{path}.args", c.get("args"), _at(c, "args")), [])
        working_dir = self.attempt(lambda: self.string(
            f"{path}.workingDir", c.get("workingDir"), _at(c, "workingDir")), None) or None
        env: dict[str, str] = self.attempt(
            lambda: self.env(f"{path}.env", c.get("env"), _at(c, "env")), {})
        port, port_name = self.attempt(
            lambda: self.ports(f"{path}.ports", c.get("ports"), _at(c, "ports")),
            (DEFAULT_USER_PORT, ""))
        probe: dict[str, Any] = self.attempt(lambda: self.readiness_probe(
            f"{path}.readinessProbe", c.get("readinessProbe"), _at(c, "readinessProbe"),
            port_name), {})
        return Container(
            command=command or [], args=args, env=env, port=port, port_name=port_name,
            working_dir=working_dir, image=image, name=name or DEFAULT_CONTAINER_NAME,
            readiness_probe=probe)

    def container_name(self, path: str, c: YamlMap) -> str | None:
        name = self.string(f"{path}.name", c.get("name"), _at(c, "name")) or None
        if name is not None:
            self.check_name(f"{path}.name", name, _at(c, "name"), _dns1123_problem,
                            "not a DNS 1123 label")
            if name in _RESERVED_CONTAINER_NAMES:
                self.fail(f"{path}.name", f"{_show(name)} is a reserved container name",
                          _at(c, "name"))
        return name

    def env(self, path: str, value: Any, line: int) -> dict[str, str]:
        seq = self.sequence(path, value, line)
        out: dict[str, str] = {}
        for i, item in enumerate(seq):
            entry = self.attempt(lambda i=i, item=item: self.env_var(  # type: ignore[misc]
                f"{path}[{i}]", item, seq.item_lines[i]), None)
            if entry is not None:
                out[entry[0]] = entry[1]  # repeated names: the last wins, as in the kubelet
        return out

    def env_var(self, p: str, item: Any, line: int) -> tuple[str, str]:
        entry = self.mapping(
            p, item, line, known={"name", "value"},
            refused={"valueFrom": "not supported: the local runtime has no ConfigMaps, "
                                  "Secrets or downward API; set value"})
        value: str | None = self.attempt(
            lambda: self.string(f"{p}.value", entry.get("value"), _at(entry, "value")), None)
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
        return name, value or ""

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
        if name not in ("", "http1", "h2c"):
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
            self.note(path, f"expected exactly one, got both: {', '.join(handlers)}", line)
        handler = handlers[0] if handlers else "tcpSocket"  # Knative's default probe
        self.attempt(lambda: self.probe_handler(path, probe, handler, port_name, out), None)
        for key in _PROBE_INT_FIELDS:
            n = self.attempt(lambda key=key: self.integer(  # type: ignore[misc]
                f"{path}.{key}", probe.get(key), _at(probe, key)), None)
            if n is not None:
                if not 0 <= n <= _INT32_MAX:
                    self.note(f"{path}.{key}", f"expected 0 <= {n} <= {_INT32_MAX}",
                              _at(probe, key))
                elif n:
                    out[key] = n
        # revision_defaults.go applyReadinessProbeDefaults, then validateReadinessProbe.
        out.setdefault("successThreshold", 1)
        if out.get("periodSeconds"):
            out.setdefault("failureThreshold", 3)
            out.setdefault("timeoutSeconds", 1)
        else:
            for key in ("failureThreshold", "timeoutSeconds"):
                if key in out:
                    self.note(f"{path}.{key}", f"{key} is disallowed when periodSeconds is zero",
                              _at(probe, key))
        return out

    def probe_handler(self, path: str, probe: YamlMap, handler: str, port_name: str,
                      out: dict[str, Any]) -> None:
        hp = f"{path}.{handler}"
        hline = _at(probe, handler)
        if handler == "grpc":
            action = self.mapping(hp, probe[handler], hline, known={"port", "service"})
            port = self.integer(f"{hp}.port", action.get("port"), _at(action, "port"))
            if port is None:
                self.fail(f"{hp}.port", "required (a number)", _at(action, "port") or hline)
            elif not 0 <= port <= 65535:
                self.fail(f"{hp}.port", f"expected 0 <= {port} <= 65535", _at(action, "port"))
            grpc: dict[str, Any] = {"port": port}
            service = self.string(f"{hp}.service", action.get("service"),
                                  _at(action, "service"))
            if service:
                grpc["service"] = service
            out["grpc"] = grpc
        elif handler == "exec":
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

    def probe_action(self, path: str, handler: str, action: YamlMap,
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
        errors = len(self.errors)
        for i, item in enumerate(seq):
            target = self.attempt(lambda i=i, item=item: self.traffic_target(  # type: ignore[misc]
                f"{path}[{i}]", item, seq.item_lines[i], tags, i), None)
            if target is not None:
                targets.append(target)
        total = sum(t.percent for t in targets)
        # The sum is checked when every entry was read cleanly: a refused entry's percent is
        # not known, and the sum would only echo the refusal.
        if len(self.errors) == errors and total != 100:
            self.fail(path, f"Traffic targets sum to {total}, want 100", line)
        return targets

    def traffic_target(self, p: str, item: Any, line: int, tags: dict[str, int],
                       i: int) -> TrafficTarget | None:
        """The entry, or None when its percent could not be read (other refusals noted)."""
        t = self.mapping(p, item, line, known=_TRAFFIC_FIELDS, refused=_REFUSED_TRAFFIC_FIELDS)
        revision = self.attempt(lambda: self.string(
            f"{p}.revisionName", t.get("revisionName"), _at(t, "revisionName")), None) or None
        latest = self.attempt(lambda: self.boolean(
            f"{p}.latestRevision", t.get("latestRevision"), _at(t, "latestRevision")), None)
        if latest is not None and (revision is not None) == latest:
            self.note(f"{p}.latestRevision",
                      f"may not set revisionName {_show(revision or '')} when latestRevision "
                      f"is {str(latest).lower()}", _at(t, "latestRevision"))
        if revision is not None:
            self.attempt(lambda: self.check_name(
                f"{p}.revisionName", revision, _at(t, "revisionName"), _dns1035_problem,
                "not a DNS 1035 label"), None)
        percent = self.attempt(
            lambda: self.integer(f"{p}.percent", t.get("percent"), _at(t, "percent")), None)
        known_percent = percent is not None or t.get("percent") is None
        if percent is not None and not 0 <= percent <= 100:
            self.note(f"{p}.percent", f"expected 0 <= {percent} <= 100", _at(t, "percent"))
            known_percent = False
        tag = self.attempt(
            lambda: self.string(f"{p}.tag", t.get("tag"), _at(t, "tag")), None) or None
        if tag is not None:
            self.attempt(lambda: self.check_name(f"{p}.tag", tag, _at(t, "tag"),
                                                 _dns1035_problem, "not a DNS 1035 label"), None)
            if tag in tags:
                self.note(f"{p}.tag", f"Multiple definitions for {_show(tag)} (also "
                          f"spec.traffic[{tags[tag]}].tag)", _at(t, "tag"))
            else:
                tags[tag] = i
        if not known_percent:
            return None
        return TrafficTarget(revision_name=revision, latest_revision=revision is None,
                             percent=percent or 0, tag=tag)


def _at(mapping: YamlMap, key: str) -> int:
    """The line of ``key`` in ``mapping``, or of the mapping itself when the key is absent."""
    return mapping.key_lines.get(key, mapping.line)



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


def _did_you_mean(key: str, choices: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean "x"?)`` for the nearest choice, case aside (``prefix`` is shown before
    it, not compared: annotation names are compared without their shared prefix)."""
    by_lower = {c.lower(): c for c in sorted(choices)}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.75)
    return f" (did you mean {_show(prefix + by_lower[close[0]])}?)" if close else ""



