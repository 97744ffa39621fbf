"""Knative Service YAML for the local runtime: parsing, defaulting and validation, sans-IO.

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
  from ``activator.activator.control.RevisionSpec``, which also bounds the two other timeouts by
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
Every problem in the stream is reported (``ServiceErrors`` when there are several), except that
YAML that does not parse stops at its first syntax error.

An annotation key under one of Knative's prefixes (``autoscaling.knative.dev/``,
``serving.knative.dev/``, ``features.knative.dev/``, ``networking.knative.dev/``) that Knative
does not know is a warning, not a refusal (Knative ignores it): ``load_services(..., warn=)``
is given each as a ``ServiceError`` that is not raised, with a did-you-mean for a near miss.
"""


from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from activator.runtime.service import Service, ServiceError, _show
from activator.runtime.validation import ServiceParser
from activator.runtime.yamlfile import load_yaml

__all__ = ["ServiceErrors", "errors_of", "in_file_order", "load_services", "raise_all"]


class ServiceErrors(ServiceError):
    """Two or more refusals at once (``errors``, in file order). Its ``source``, ``field``,
    ``reason`` and ``line`` are the first one's; ``str()`` is one line per refusal."""

    def __init__(self, errors: Iterable[ServiceError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.source, first.field, first.reason, first.line, first.column)

    def _message(self) -> str:
        return "\n".join(str(e) for e in self.errors)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors,))


def errors_of(exc: ServiceError) -> list[ServiceError]:
    """Each refusal in ``exc``: its ``errors`` for a ``ServiceErrors``, else itself."""
    return list(exc.errors) if isinstance(exc, ServiceErrors) else [exc]


def in_file_order(errors: list[ServiceError]) -> list[ServiceError]:
    """``errors`` by file, then line (stable: a line's own problems in the order found)."""
    files = list(dict.fromkeys(e.source for e in errors))
    return sorted(errors, key=lambda e: (files.index(e.source), e.line or 0))


def raise_all(errors: list[ServiceError]) -> None:
    """Raises the refusals, if any: one as itself, several as a ``ServiceErrors``."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ServiceErrors(errors)


# --------------------------------------------------------------------------- loading


def load_services(path_or_text: str | bytes | os.PathLike[str], *,
                  source: str | None = None,
                  warn: Callable[[ServiceError], None] | None = None,
                  check_annotations: Callable[[Mapping[str, str], int], object] | None = None,
                  ) -> list[Service]:
    """Every Service in a YAML stream, in order; empty documents are skipped.

    A path-like (``pathlib.Path``) is read as a file (``source`` defaults to its path); ``str``
    or ``bytes`` is the YAML itself (``source`` defaults to ``<string>``). Raises
    ``ServiceError`` for a problem, ``ServiceErrors`` (a ``ServiceError``) for several: every
    one found in every document, including a Service defined twice in the stream; an
    unreadable file or a YAML syntax error (with line and column) is one. ``warn`` is given
    each warning (unknown Knative annotation keys), before any refusal is raised.

    ``check_annotations(annotations, containerConcurrency)`` (e.g.
    ``kpa.ScalingConfig.from_annotations``) is run on each document's template annotations, as
    ``Service.validate_annotations`` runs it, and its refusals are among the problems: every one
    of them (each refused key is set aside and the rest checked again: a default in its place
    is valid), also in a document refused for other reasons.
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
    documents = load_yaml(data, source)
    if isinstance(data, str) and len(documents) == 1 and isinstance(documents[0], str):
        raise ServiceError(source, "", f"expected YAML, got the string {_show(documents[0])}: to "
                           f"read a file, pass a pathlib.Path", 1)
    services: list[Service] = []
    errors: list[ServiceError] = []
    seen: dict[tuple[str, str], Service] = {}
    for doc in documents:
        if doc is None:
            continue
        parser = ServiceParser(source)
        svc = parser.service(doc)
        errors += parser.errors
        if check_annotations is not None and parser.template_annotations is not None:
            errors += _annotation_refusals(parser, check_annotations)
        if warn is not None:
            for w in parser.warnings:
                warn(w)
        if svc is None:
            continue
        key = (svc.namespace, svc.name)
        first = seen.get(key)
        if first is not None:
            errors.append(svc.error(
                "metadata.name", f"Service {svc.namespace}/{svc.name} is defined twice (first "
                f"at line {first.line})"))
            continue
        seen[key] = svc
        services.append(svc)
    raise_all(in_file_order(errors))
    return services


def _annotation_refusals(parser: ServiceParser,
                         check: Callable[[Mapping[str, str], int], object]) -> list[ServiceError]:
    remaining = dict(parser.template_annotations or {})
    path = "spec.template.metadata.annotations"
    errors: list[ServiceError] = []
    for _ in range(len(remaining) + 1):
        try:
            check(remaining, parser.container_concurrency)
            break
        except ValueError as e:  # as Service.validate_annotations words it
            key = getattr(e, "annotation", None)
            reason = str(e)
            if not isinstance(key, str) or key not in remaining:
                errors.append(ServiceError(parser.source, path, reason, parser.lines.get(path)))
                break
            if reason.endswith(f": {key}"):
                reason = reason[: -len(key) - 2]
            field = f"{path}[{key}]"
            errors.append(ServiceError(parser.source, field, reason, parser.lines.get(field)))
            del remaining[key]
    return errors


# YAML: PyYAML's safe loader, with mappings and sequences that remember their lines (errors
# name them) and with repeated keys refused (Kubernetes' strict decoding refuses them; PyYAML
# would keep the last silently).
