"""Knative Service YAML for the local runtime: the model, defaults, identity and every refusal.

Sans-IO, like the module: YAML is written inline (``tmp_path`` only for the file variant).
"""

from __future__ import annotations

import json
import pickle
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from activator.activator.control import RevisionSpec
from activator.runtime.manifest import load_services
from activator.runtime.service import (
    API_VERSION,
    DEFAULT_USER_PORT,
    Container,
    RevisionTemplate,
    Service,
    ServiceError,
    TrafficTarget,
    _child_name,
    expand,
    revision_name,
    serving_readiness_probe,
    template_digest,
)


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def load_one(text: str) -> Service:
    [svc] = load_services(yaml_text(text), source="t.yaml")
    return svc


def refusal(text: str) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        load_services(yaml_text(text), source="t.yaml")
    return info.value


# Knative's helloworld-python sample, as the local runtime wants it: with a command.
HELLO = """
    apiVersion: serving.knative.dev/v1
    kind: Service
    metadata:
      name: helloworld-python
      namespace: default
    spec:
      template:
        spec:
          containers:
            - image: docker.io/example/helloworld-python
              command: ["python", "app.py"]
              env:
                - name: TARGET
                  value: "Python Sample v1"
"""

# The smallest valid Service; the error table below adds one line at line 10.
#   1 apiVersion  2 kind  3 metadata  4 name  5 spec  6 template  7 spec  8 containers  9 - command
BASE = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
      - command: [python, app.py]
"""


# --------------------------------------------------------------------------- the happy path


def test_hello_sample() -> None:
    svc = load_one(HELLO)
    assert svc == Service(
        name="helloworld-python",
        namespace="default",
        template=RevisionTemplate(
            container=Container(
                image="docker.io/example/helloworld-python",
                command=["python", "app.py"],
                env={"TARGET": "Python Sample v1"},
            ),
        ),
        traffic=[TrafficTarget(revision_name=None, latest_revision=True, percent=100, tag=None)],
        source="t.yaml",
    )
    assert svc.line == 1
    c = svc.template.container
    assert (c.args, c.port, c.port_name, c.working_dir, c.name) == (
        [], 8080, "", None, "user-container")
    assert c.argv == ["python", "app.py"]
    t = svc.template
    assert (t.name, t.annotations, t.labels, t.container_concurrency, t.timeout_seconds,
            t.response_start_timeout_seconds, t.idle_timeout_seconds) == (
        None, {}, {}, 0, 300, 0, 0)
    assert t.revision_spec() == RevisionSpec(0, 300, 0, 0)
    # Knative's default readiness probe: TCP on the user port.
    assert c.readiness_probe == {"tcpSocket": {}, "successThreshold": 1}


def test_everything_modelled_is_read() -> None:
    svc = load_one("""
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata:
          name: shop
          namespace: team-a
          labels: {app: shop}
          annotations: {serving.knative.dev/rollout-duration: 60s}
        spec:
          template:
            metadata:
              name: shop-v2
              labels: {tier: web}
              annotations:
                autoscaling.knative.dev/target: "10"
                autoscaling.knative.dev/min-scale: "1"
            spec:
              containerConcurrency: 4
              timeoutSeconds: 120
              responseStartTimeoutSeconds: 30
              idleTimeoutSeconds: 60
              containers:
              - name: app
                image: shop:v2
                command: [./shop]
                args: [--listen, ":$(PORT)"]
                workingDir: /srv/shop
                env:
                - {name: MODE, value: prod}
                - {name: EMPTY}
                ports:
                - containerPort: 9000
                  name: http1
                  protocol: TCP
    """)
    assert (svc.name, svc.namespace, svc.labels, svc.annotations) == (
        "shop", "team-a", {"app": "shop"}, {"serving.knative.dev/rollout-duration": "60s"})
    assert svc.template == RevisionTemplate(
        name="shop-v2",
        labels={"tier": "web"},
        annotations={"autoscaling.knative.dev/target": "10",
                     "autoscaling.knative.dev/min-scale": "1"},
        container_concurrency=4,
        timeout_seconds=120,
        response_start_timeout_seconds=30,
        idle_timeout_seconds=60,
        container=Container(
            name="app", image="shop:v2", command=["./shop"], args=["--listen", ":$(PORT)"],
            working_dir="/srv/shop", env={"MODE": "prod", "EMPTY": ""}, port=9000,
            port_name="http1"),
    )
    assert svc.revision_name_for(7) == "shop-v2"


def test_minimal_service_gets_knatives_defaults() -> None:
    svc = load_one(BASE)
    assert svc == Service(
        name="hello", source="t.yaml",
        template=RevisionTemplate(container=Container(command=["python", "app.py"])))
    assert svc.namespace == "default"
    assert svc.template.container.port == DEFAULT_USER_PORT == 8080
    assert svc.traffic == [TrafficTarget(latest_revision=True, percent=100)]


@pytest.mark.parametrize(
    ("lines", "timeout", "response_start"),
    [
        ("", 300, 0),  # the 300 s default is not below 300: no response-start timer
        ("timeoutSeconds: 0", 300, 0),  # 0 is "the default" at admission
        ("timeoutSeconds: 600", 600, 300),  # below the timeout: the 300 s default applies
        ("timeoutSeconds: 600\n      responseStartTimeoutSeconds: 0", 600, 0),  # 0 = no timer
        ("timeoutSeconds: 3600\n      responseStartTimeoutSeconds: 3600", 3600, 3600),
    ],
)
def test_timeout_defaults_follow_knative(lines: str, timeout: int, response_start: int) -> None:
    svc = load_one(BASE + "      " + lines + "\n")
    assert svc.template.timeout_seconds == timeout
    assert svc.template.response_start_timeout_seconds == response_start


def test_nulls_read_as_unset() -> None:
    svc = load_one(BASE + """\
      containerConcurrency: null
      timeoutSeconds: ~
  traffic: []
""")
    assert svc.template.container_concurrency == 0
    assert svc.template.timeout_seconds == 300
    assert svc.traffic == [TrafficTarget(latest_revision=True, percent=100)]


def test_multi_document_stream() -> None:
    services = load_services(yaml_text("""
        # two services, empty documents between them
        ---
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata: {name: first}
        spec:
          template:
            spec:
              containers: [{command: [./first]}]
        ---
        ---
        # only a comment
        ---
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata: {name: second, namespace: other}
        spec:
          template:
            spec:
              containers: [{command: [./second]}]
        ...
    """), source="both.yaml")
    assert [(s.namespace, s.name, s.line, s.source) for s in services] == [
        ("default", "first", 3, "both.yaml"), ("other", "second", 14, "both.yaml")]
    assert services[1].template.container.command == ["./second"]


def test_an_error_in_a_later_document_names_its_line() -> None:
    second = BASE.replace("hello", "other").replace("[python, app.py]", "[]")
    e = refusal(BASE + "---\n" + second)
    assert (e.field, e.line) == ("spec.template.spec.containers[0].command", 19)


def test_empty_stream_has_no_services() -> None:
    assert load_services("", source="e.yaml") == []
    assert load_services("---\n---\n# nothing\n", source="e.yaml") == []


def test_same_name_in_two_namespaces_is_two_services() -> None:
    doc = BASE.replace("  name: hello\n", "  name: hello\n  namespace: {ns}\n")
    services = load_services(doc.format(ns="a") + "---\n" + doc.format(ns="b"))
    assert [s.namespace for s in services] == ["a", "b"]


def test_path_variant(tmp_path: Path) -> None:
    path = tmp_path / "hello.yaml"
    path.write_text(yaml_text(HELLO), encoding="utf-8")
    [svc] = load_services(path)
    assert svc.source == str(path)
    assert svc == load_services(yaml_text(HELLO), source=str(path))[0]
    [named] = load_services(path, source="hello.yaml")
    assert named.source == "hello.yaml"


def test_path_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace("[python, app.py]", "[]"), encoding="utf-8")
    with pytest.raises(ServiceError) as info:
        load_services(path)
    assert str(info.value).startswith(f"{path}:9: spec.template.spec.containers[0].command: ")
    with pytest.raises(ServiceError) as info:
        load_services(tmp_path / "missing.yaml", source="missing.yaml")
    assert str(info.value) == "missing.yaml: cannot read: No such file or directory"


def test_a_path_passed_as_str_gets_a_hint() -> None:
    with pytest.raises(ServiceError) as info:
        load_services("services/hello.yaml")
    assert str(info.value) == ('<string>:1: expected YAML, got the string "services/hello.yaml": '
                               "to read a file, pass a pathlib.Path")


def test_undecodable_bytes() -> None:
    with pytest.raises(ServiceError) as info:
        load_services(b"kind: \xff\xfe\xfd", source="b.yaml")
    assert str(info.value) == (
        "b.yaml: invalid YAML: unacceptable character #x00ff: invalid start byte at position 6")


def test_empty_strings_are_unset_like_go() -> None:
    svc = load_one(BASE.replace("  name: hello\n", "  name: hello\n  generateName: ''\n")
                   + "  traffic:\n  - configurationName: ''\n    percent: 100\n")
    assert svc.traffic == [TrafficTarget(latest_revision=True, percent=100)]


def test_bytes_in_utf8_and_utf16() -> None:
    for encoded in (yaml_text(HELLO).encode("utf-8"), yaml_text(HELLO).encode("utf-16")):
        [svc] = load_services(encoded, source="b.yaml")
        assert svc.template.container.env == {"TARGET": "Python Sample v1"}


def test_kubectl_get_output_loads() -> None:
    # What `kubectl get ksvc hello -o yaml` prints: server-set metadata, defaulted fields, status.
    svc = load_one("""
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata:
          annotations:
            serving.knative.dev/creator: admin
            serving.knative.dev/lastModifier: admin
          creationTimestamp: "2024-05-01T10:00:00Z"
          generation: 1
          name: hello
          namespace: default
          resourceVersion: "1234"
          uid: 0b5c5a5e-0000-4000-8000-000000000000
        spec:
          template:
            metadata:
              annotations:
                autoscaling.knative.dev/min-scale: "0"
              creationTimestamp: null
            spec:
              containerConcurrency: 0
              enableServiceLinks: false
              containers:
              - command: [./hello]
                image: ghcr.io/example/hello@sha256:0123
                imagePullPolicy: IfNotPresent
                name: user-container
                readinessProbe:
                  successThreshold: 1
                  tcpSocket:
                    port: 0
                resources: {}
                securityContext:
                  allowPrivilegeEscalation: false
              timeoutSeconds: 300
          traffic:
          - latestRevision: true
            percent: 100
        status:
          latestReadyRevisionName: hello-00001
          url: http://hello.default.example.com
    """)
    assert svc.template.container.readiness_probe == {"tcpSocket": {}, "successThreshold": 1}
    assert svc.traffic == [TrafficTarget(latest_revision=True, percent=100)]
    assert svc.annotations["serving.knative.dev/creator"] == "admin"


def test_tolerated_fields_are_ignored() -> None:
    plain = load_one(BASE)
    busy = load_one("""
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata: {name: hello}
        spec:
          template:
            spec:
              serviceAccountName: robot
              imagePullSecrets: [{name: registry}]
              nodeSelector: {disk: ssd}
              securityContext: {runAsNonRoot: true}
              volumes: []
              containers:
              - command: [python, app.py]
                imagePullPolicy: Always
                resources: {limits: {cpu: "1", memory: 512Mi}}
                livenessProbe: {httpGet: {path: /healthz}}
                startupProbe: {tcpSocket: {}}
                terminationMessagePolicy: FallbackToLogsOnError
                envFrom: []
                volumeMounts: ~
    """)
    assert busy == plain
    assert template_digest(busy.template) == template_digest(plain.template)


def test_yaml_merge_keys_and_anchors() -> None:
    svc = load_one("""
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata:
          name: hello
          labels: &common {team: web, app: hello}
        spec:
          template:
            metadata:
              labels:
                <<: *common
                app: hello-v2
            spec:
              containers:
              - command: &cmd [./app]
                args: *cmd
    """)
    assert svc.labels == {"team": "web", "app": "hello"}
    assert svc.template.labels == {"team": "web", "app": "hello-v2"}  # the own key overrides
    assert svc.template.container.argv == ["./app", "./app"]


# --------------------------------------------------------------------------- traffic


def test_traffic_split_and_tags() -> None:
    svc = load_one(BASE + """\
  traffic:
  - revisionName: hello-00001
    percent: 80
    tag: stable
  - latestRevision: true
    percent: 20
    tag: candidate
  - revisionName: hello-00002
    latestRevision: false
    tag: preview
""")
    assert svc.traffic == [
        TrafficTarget(revision_name="hello-00001", latest_revision=False, percent=80,
                      tag="stable"),
        TrafficTarget(revision_name=None, latest_revision=True, percent=20, tag="candidate"),
        # An omitted percent is 0: reachable by its tag only.
        TrafficTarget(revision_name="hello-00002", latest_revision=False, percent=0,
                      tag="preview"),
    ]


def test_traffic_target_without_revision_is_latest() -> None:
    svc = load_one(BASE + "  traffic:\n  - percent: 100\n")
    assert svc.traffic == [TrafficTarget(latest_revision=True, percent=100)]


# --------------------------------------------------------------------------- refusals

# (id, text, field, reason, line): every refusal, with its exact message.
C = "        "  # indentation of a containers[0] field in BASE
S = "      "  # indentation of a spec.template.spec field in BASE

REFUSALS = [
    # ---- the document
    ("yaml-syntax", "apiVersion: a: b\n", "", "invalid YAML: mapping values are not allowed here",
     (1, 14)),
    ("yaml-unclosed", "metadata: {name: x\n", "",
     "invalid YAML: expected ',' or '}', but got '<stream end>'", (2, 1)),
    ("yaml-repeated-key", BASE.replace("  name: hello\n", "  name: hello\n  name: again\n"),
     "", 'invalid YAML: found a repeated key "name"', (5, 3)),
    ("not-a-mapping", "- apiVersion: serving.knative.dev/v1\n", "",
     "expected a Kubernetes object (a mapping), got a list", 1),
    ("kind-missing", BASE.replace("kind: Service\n", ""), "kind",
     'required: expected "Service"', 1),
    ("kind-route", BASE.replace("kind: Service", "kind: Route"), "kind",
     'expected "Service", got "Route": the local runtime runs Knative Services only', 2),
    ("kind-deployment", "apiVersion: apps/v1\nkind: Deployment\nspec: {replicas: 1}\n", "kind",
     'expected "Service", got "Deployment": the local runtime runs Knative Services only', 2),
    ("api-version-old", BASE.replace("serving.knative.dev/v1", "serving.knative.dev/v1alpha1"),
     "apiVersion", 'expected "serving.knative.dev/v1", got "serving.knative.dev/v1alpha1"', 1),
    ("api-version-missing", BASE.replace("apiVersion: serving.knative.dev/v1\n", ""),
     "apiVersion", 'required: expected "serving.knative.dev/v1"', 1),
    ("unknown-top-level", BASE + "spex: {}\n", "spex",
     'must not set the field(s) (did you mean "spec"?)', 10),
    ("unknown-top-level-far", BASE + "data: {}\n", "data", "must not set the field(s)", 10),
    # ---- metadata
    ("name-missing", BASE.replace("  name: hello\n", "  labels: {}\n"), "metadata.name",
     "required", 4),  # a missing field: the line where its mapping starts
    ("name-empty", BASE.replace("name: hello", "name: ''"), "metadata.name", "required", 4),
    ("name-not-a-string", BASE.replace("name: hello", "name: 42"), "metadata.name",
     "expected a string, got a number (42): quote the value", 4),
    ("name-uppercase", BASE.replace("name: hello", "name: Hello"), "metadata.name",
     'not a DNS 1035 label: "Hello": a DNS-1035 label must consist of lower case alphanumeric '
     "characters or '-', start with an alphabetic character, and end with an alphanumeric "
     "character", 4),
    ("name-leading-digit", BASE.replace("name: hello", "name: 1hello"), "metadata.name",
     'not a DNS 1035 label: "1hello": a DNS-1035 label must consist of lower case alphanumeric '
     "characters or '-', start with an alphabetic character, and end with an alphanumeric "
     "character", 4),
    ("name-too-long", BASE.replace("name: hello", "name: " + "a" * 64), "metadata.name",
     f'not a DNS 1035 label: "{"a" * 60}...: must be no more than 63 characters', 4),
    ("namespace", BASE.replace("  name: hello\n", "  name: hello\n  namespace: Team_A\n"),
     "metadata.namespace",
     'not a DNS 1123 label: "Team_A": a DNS-1123 label must consist of lower case alphanumeric '
     "characters or '-', and must start and end with an alphanumeric character", 5),
    ("generate-name", BASE.replace("  name: hello\n", "  name: hello\n  generateName: h-\n"),
     "metadata.generateName", "not supported: the local runtime needs a fixed name; set name",
     5),
    ("unknown-metadata", BASE.replace("  name: hello\n", "  name: hello\n  nmae: x\n"),
     "metadata.nmae", 'must not set the field(s) (did you mean "name"?)', 5),
    ("service-autoscaling-annotation",
     BASE.replace("  name: hello\n",
                  "  name: hello\n  annotations:\n    autoscaling.knative.dev/min-scale: '1'\n"),
     "metadata.annotations[autoscaling.knative.dev/min-scale]",
     'autoscaling annotations must be put under "spec.template.metadata.annotations" to work',
     6),
    ("annotation-number",
     BASE.replace("    spec:\n      containers",
                  "    metadata:\n      annotations:\n"
                  "        autoscaling.knative.dev/min-scale: 1\n    spec:\n      containers"),
     "spec.template.metadata.annotations[autoscaling.knative.dev/min-scale]",
     "expected a string, got a number (1): quote the value", 9),
    ("annotation-list",
     BASE.replace("  name: hello\n", "  name: hello\n  annotations: {owner: [a, b]}\n"),
     "metadata.annotations[owner]", "expected a string, got a list", 5),
    ("annotation-key",
     BASE.replace("  name: hello\n", "  name: hello\n  annotations: {'bad key': x}\n"),
     "metadata.annotations[bad key]",
     'invalid key "bad key": name part must consist of alphanumeric characters, \'-\', \'_\' or '
     "'.', and must start and end with an alphanumeric character", 5),
    ("annotations-not-a-mapping",
     BASE.replace("  name: hello\n", "  name: hello\n  annotations: [a]\n"),
     "metadata.annotations", "expected a mapping, got a list", 5),
    ("label-value",
     BASE.replace("  name: hello\n", "  name: hello\n  labels: {app: 'my app'}\n"),
     "metadata.labels[app]",
     'invalid value "my app": a label value must be empty or consist of alphanumeric '
     "characters, '-', '_' or '.', and must start and end with an alphanumeric character", 5),
    ("label-key-prefix",
     BASE.replace("  name: hello\n", "  name: hello\n  labels: {Example.com/app: x}\n"),
     "metadata.labels[Example.com/app]",
     'invalid key "Example.com/app": prefix part must be a DNS-1123 subdomain (lower case '
     "alphanumeric characters, '-' or '.')", 5),
    # ---- spec and spec.template
    ("spec-unknown", BASE.replace("spec:\n  template:", "spec:\n  replicas: 2\n  template:"),
     "spec.replicas", "must not set the field(s)", 6),
    ("template-name-prefix",
     BASE.replace("    spec:\n      containers",
                  "    metadata: {name: other-v1}\n    spec:\n      containers"),
     "spec.template.metadata.name", '"other-v1" must have prefix "hello-"', 7),
    ("template-name-label",
     BASE.replace("    spec:\n      containers",
                  "    metadata: {name: hello_v1}\n    spec:\n      containers"),
     "spec.template.metadata.name",
     'not a DNS 1035 label: "hello_v1": a DNS-1035 label must consist of lower case '
     "alphanumeric characters or '-', start with an alphabetic character, and end with an "
     "alphanumeric character", 7),
    ("template-generate-name",
     BASE.replace("    spec:\n      containers",
                  "    metadata: {generateName: hello-}\n    spec:\n      containers"),
     "spec.template.metadata.generateName",
     "not supported: the local runtime needs a fixed name; set name", 7),
    ("spec-missing", "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: a}\n",
     "spec.template.spec.containers", "required: one container", 1),
    ("containers-empty", BASE.replace("      - command: [python, app.py]\n", "        []\n"),
     "spec.template.spec.containers", "required: one container", 8),
    ("containers-mapping",
     BASE.replace("      - command: [python, app.py]\n", "        command: [python]\n"),
     "spec.template.spec.containers", "expected a list, got a mapping", 8),
    ("two-containers", BASE + "      - command: [envoy]\n", "spec.template.spec.containers",
     "the local runtime runs one container per pod (no sidecars), found 2", 8),
    ("volumes", BASE + S + "volumes: [{name: data, emptyDir: {}}]\n",
     "spec.template.spec.volumes", "not supported: the local runtime has no volumes", 10),
    ("init-containers", BASE + S + "initContainers: [{command: [setup]}]\n",
     "spec.template.spec.initContainers",
     "not supported: the local runtime runs one container per pod", 10),
    ("pod-unknown", BASE + S + "restartPolicy: Never\n", "spec.template.spec.restartPolicy",
     "must not set the field(s)", 10),
    ("pod-typo", BASE + S + "containerconcurrency: 1\n",
     "spec.template.spec.containerconcurrency",
     'must not set the field(s) (did you mean "containerConcurrency"?)', 10),
    # ---- containerConcurrency and the timeouts (activator.activator.control.RevisionSpec's bounds)
    ("cc-high", BASE + S + "containerConcurrency: 1001\n",
     "spec.template.spec.containerConcurrency", "expected 0 <= 1001 <= 1000", 10),
    ("cc-negative", BASE + S + "containerConcurrency: -1\n",
     "spec.template.spec.containerConcurrency", "expected 0 <= -1 <= 1000", 10),
    ("cc-string", BASE + S + "containerConcurrency: '10'\n",
     "spec.template.spec.containerConcurrency", 'expected an integer, got a string ("10")', 10),
    ("cc-float", BASE + S + "containerConcurrency: 1.5\n",
     "spec.template.spec.containerConcurrency", "expected an integer, got a number (1.5)", 10),
    ("cc-bool", BASE + S + "containerConcurrency: true\n",
     "spec.template.spec.containerConcurrency", "expected an integer, got a boolean (true)", 10),
    ("timeout-high", BASE + S + "timeoutSeconds: 3601\n", "spec.template.spec.timeoutSeconds",
     "expected 1 <= 3601 <= 3600", 10),
    ("timeout-negative", BASE + S + "timeoutSeconds: -5\n", "spec.template.spec.timeoutSeconds",
     "expected 1 <= -5 <= 3600", 10),
    ("response-start-over-timeout",
     BASE + S + "timeoutSeconds: 300\n" + S + "responseStartTimeoutSeconds: 400\n",
     "spec.template.spec.responseStartTimeoutSeconds",
     "responseStartTimeoutSeconds (400) cannot be greater than timeoutSeconds (300)", 11),
    ("idle-over-timeout", BASE + S + "idleTimeoutSeconds: 301\n",
     "spec.template.spec.idleTimeoutSeconds",
     "idleTimeoutSeconds (301) cannot be greater than timeoutSeconds (300)", 10),
    # ---- containers[0]
    ("command-missing", BASE.replace("command: [python, app.py]", "image: hello"),
     "spec.template.spec.containers[0].command",
     "required: the local runtime runs the container's command (images are not pulled)", 9),
    ("command-empty", BASE.replace("[python, app.py]", "[]"),
     "spec.template.spec.containers[0].command",
     "required: the local runtime runs the container's command (images are not pulled)", 9),
    ("command-string", BASE.replace("[python, app.py]", "python app.py"),
     "spec.template.spec.containers[0].command",
     'expected a list of strings, got a string ("python app.py")', 9),
    ("command-item-number", BASE.replace("[python, app.py]", "[sleep, 5]"),
     "spec.template.spec.containers[0].command[1]",
     "expected a string, got a number (5): quote the value", 9),
    ("args-not-a-list", BASE + C + "args: {a: b}\n", "spec.template.spec.containers[0].args",
     "expected a list, got a mapping", 10),
    ("container-name-reserved", BASE + C + "name: queue-proxy\n",
     "spec.template.spec.containers[0].name", '"queue-proxy" is a reserved container name', 10),
    ("container-name-label", BASE + C + "name: App\n", "spec.template.spec.containers[0].name",
     'not a DNS 1123 label: "App": a DNS-1123 label must consist of lower case alphanumeric '
     "characters or '-', and must start and end with an alphanumeric character", 10),
    ("container-unknown", BASE + C + "lifecycle: {preStop: {exec: {command: [x]}}}\n",
     "spec.template.spec.containers[0].lifecycle", "must not set the field(s)", 10),
    ("container-not-a-mapping", BASE.replace("- command: [python, app.py]", "- python app.py"),
     "spec.template.spec.containers[0]", "expected a mapping, got a string", 9),
    ("env-from", BASE + C + "envFrom: [{configMapRef: {name: cfg}}]\n",
     "spec.template.spec.containers[0].envFrom",
     "not supported: the local runtime has no ConfigMaps or Secrets; list the variables under "
     "env", 10),
    ("volume-mounts", BASE + C + "volumeMounts: [{name: data, mountPath: /data}]\n",
     "spec.template.spec.containers[0].volumeMounts",
     "not supported: the local runtime has no volumes", 10),
    ("env-value-from",
     BASE + C + "env:\n" + C + "- name: DB\n" + C + "  valueFrom: {secretKeyRef: {name: s}}\n",
     "spec.template.spec.containers[0].env[0].valueFrom",
     "not supported: the local runtime has no ConfigMaps, Secrets or downward API; set value",
     12),
    ("env-name-missing", BASE + C + "env: [{value: x}]\n",
     "spec.template.spec.containers[0].env[0].name", "required", 10),
    ("env-reserved", BASE + C + "env: [{name: A, value: x}, {name: PORT, value: '80'}]\n",
     "spec.template.spec.containers[0].env[1].name",
     '"PORT" is a reserved environment variable', 10),
    ("env-reserved-k-revision", BASE + C + "env: [{name: K_REVISION, value: x}]\n",
     "spec.template.spec.containers[0].env[0].name",
     '"K_REVISION" is a reserved environment variable', 10),
    ("env-name-invalid", BASE + C + "env: [{name: 1ST, value: x}]\n",
     "spec.template.spec.containers[0].env[0].name",
     "invalid name \"1ST\": a valid environment variable name must consist of alphabetic "
     "characters, digits, '_', '-', or '.', and must not start with a digit", 10),
    ("env-value-number", BASE + C + "env:\n" + C + "- name: WORKERS\n" + C + "  value: 4\n",
     "spec.template.spec.containers[0].env[0].value",
     "expected a string, got a number (4): quote the value", 12),
    ("env-value-bool", BASE + C + "env: [{name: DEBUG, value: yes}]\n",
     "spec.template.spec.containers[0].env[0].value",
     "expected a string, got a boolean (true): quote the value", 10),
    ("env-unknown", BASE + C + "env: [{name: A, val: x}]\n",
     "spec.template.spec.containers[0].env[0].val",
     'must not set the field(s) (did you mean "value"?)', 10),
    # ---- ports
    ("port-zero", BASE + C + "ports: [{containerPort: 0}]\n",
     "spec.template.spec.containers[0].ports[0].containerPort", "expected 1 <= 0 <= 65535", 10),
    ("port-high", BASE + C + "ports: [{containerPort: 70000}]\n",
     "spec.template.spec.containers[0].ports[0].containerPort",
     "expected 1 <= 70000 <= 65535", 10),
    ("port-reserved", BASE + C + "ports: [{containerPort: 8012}]\n",
     "spec.template.spec.containers[0].ports[0].containerPort",
     "8012 is a reserved port, please use a different value", 10),
    ("port-missing", BASE + C + "ports: [{name: http1}]\n",
     "spec.template.spec.containers[0].ports[0].containerPort", "required", 10),
    ("port-string", BASE + C + "ports: [{containerPort: '8080'}]\n",
     "spec.template.spec.containers[0].ports[0].containerPort",
     'expected an integer, got a string ("8080")', 10),
    ("two-ports", BASE + C + "ports: [{containerPort: 8080}, {containerPort: 8081}]\n",
     "spec.template.spec.containers[0].ports",
     "more than one container port is set: only a single port is allowed", 10),
    ("port-name", BASE + C + "ports: [{containerPort: 8080, name: web}]\n",
     "spec.template.spec.containers[0].ports[0].name",
     "Port name web is not allowed: name must be empty, or one of: 'h2c', 'http1'", 10),
    ("port-udp", BASE + C + "ports: [{containerPort: 8080, protocol: UDP}]\n",
     "spec.template.spec.containers[0].ports[0].protocol",
     'invalid value "UDP": only TCP is served', 10),
    ("port-host-port", BASE + C + "ports: [{containerPort: 8080, hostPort: 80}]\n",
     "spec.template.spec.containers[0].ports[0].hostPort", "must not set the field(s)", 10),
    # ---- readinessProbe
    ("probe-grpc-no-port", BASE + C + "readinessProbe: {grpc: {service: x}}\n",
     "spec.template.spec.containers[0].readinessProbe.grpc.port", "required (a number)", 10),
    ("probe-grpc-unknown", BASE + C + "readinessProbe: {grpc: {port: 8080, host: x}}\n",
     "spec.template.spec.containers[0].readinessProbe.grpc.host", "must not set the field(s)", 10),
    ("probe-two-handlers", BASE + C + "readinessProbe: {httpGet: {}, tcpSocket: {}}\n",
     "spec.template.spec.containers[0].readinessProbe",
     "expected exactly one, got both: httpGet, tcpSocket", 10),
    ("probe-https", BASE + C + "readinessProbe: {httpGet: {scheme: HTTPS}}\n",
     "spec.template.spec.containers[0].readinessProbe.httpGet.scheme",
     "not supported: this queue-proxy probes over HTTP only", 10),
    ("probe-scheme", BASE + C + "readinessProbe: {httpGet: {scheme: http}}\n",
     "spec.template.spec.containers[0].readinessProbe.httpGet.scheme",
     'invalid value "http": expected "HTTP"', 10),
    ("probe-named-port", BASE + C + "readinessProbe: {httpGet: {port: admin}}\n",
     "spec.template.spec.containers[0].readinessProbe.httpGet.port",
     'invalid value "admin": Probe port must match container port', 10),
    ("probe-port-high", BASE + C + "readinessProbe: {tcpSocket: {port: 65536}}\n",
     "spec.template.spec.containers[0].readinessProbe.tcpSocket.port",
     "expected 0 <= 65536 <= 65535", 10),
    ("probe-timeout-without-period", BASE + C + "readinessProbe: {timeoutSeconds: 5}\n",
     "spec.template.spec.containers[0].readinessProbe.timeoutSeconds",
     "timeoutSeconds is disallowed when periodSeconds is zero", 10),
    ("probe-failure-threshold-without-period",
     BASE + C + "readinessProbe: {periodSeconds: 0, failureThreshold: 3}\n",
     "spec.template.spec.containers[0].readinessProbe.failureThreshold",
     "failureThreshold is disallowed when periodSeconds is zero", 10),
    ("probe-negative-period", BASE + C + "readinessProbe: {periodSeconds: -1}\n",
     "spec.template.spec.containers[0].readinessProbe.periodSeconds",
     "expected 0 <= -1 <= 2147483647", 10),
    ("probe-termination-grace",
     BASE + C + "readinessProbe: {terminationGracePeriodSeconds: 5}\n",
     "spec.template.spec.containers[0].readinessProbe.terminationGracePeriodSeconds",
     "must not be set for readinessProbes", 10),
    ("probe-exec-no-command", BASE + C + "readinessProbe: {exec: {}}\n",
     "spec.template.spec.containers[0].readinessProbe.exec.command", "required", 10),
    ("probe-unknown", BASE + C + "readinessProbe: {httpGet: {path: /, portt: 80}}\n",
     "spec.template.spec.containers[0].readinessProbe.httpGet.portt",
     'must not set the field(s) (did you mean "port"?)', 10),
    ("probe-header-name", BASE + C + "readinessProbe: {httpGet: {httpHeaders: [{value: x}]}}\n",
     "spec.template.spec.containers[0].readinessProbe.httpGet.httpHeaders[0].name", "required",
     10),
    # ---- traffic
    ("traffic-sum", BASE + "  traffic:\n  - percent: 50\n  - revisionName: hello-00001\n"
     "    percent: 40\n", "spec.traffic", "Traffic targets sum to 90, want 100", 10),
    ("traffic-sum-zero", BASE + "  traffic:\n  - tag: only\n", "spec.traffic",
     "Traffic targets sum to 0, want 100", 10),
    ("traffic-percent-high", BASE + "  traffic:\n  - percent: 120\n", "spec.traffic[0].percent",
     "expected 0 <= 120 <= 100", 11),
    ("traffic-latest-and-pinned",
     BASE + "  traffic:\n  - revisionName: hello-00001\n    latestRevision: true\n"
     "    percent: 100\n", "spec.traffic[0].latestRevision",
     'may not set revisionName "hello-00001" when latestRevision is true', 12),
    ("traffic-not-latest-not-pinned",
     BASE + "  traffic:\n  - latestRevision: false\n    percent: 100\n",
     "spec.traffic[0].latestRevision",
     'may not set revisionName "" when latestRevision is false', 11),
    ("traffic-latest-string", BASE + "  traffic:\n  - latestRevision: 'true'\n",
     "spec.traffic[0].latestRevision", 'expected a boolean, got a string ("true")', 11),
    ("traffic-configuration-name",
     BASE + "  traffic:\n  - configurationName: hello\n    percent: 100\n",
     "spec.traffic[0].configurationName",
     "must not set the field(s): a Service's traffic goes to its own configuration; use "
     "latestRevision or revisionName", 11),
    ("traffic-url", BASE + "  traffic:\n  - percent: 100\n    url: http://x.example.com\n",
     "spec.traffic[0].url", "must not set the field(s): url is reported in status", 12),
    ("traffic-tag-label", BASE + "  traffic:\n  - percent: 100\n    tag: V1\n",
     "spec.traffic[0].tag",
     'not a DNS 1035 label: "V1": a DNS-1035 label must consist of lower case alphanumeric '
     "characters or '-', start with an alphabetic character, and end with an alphanumeric "
     "character", 12),
    ("traffic-tag-twice",
     BASE + "  traffic:\n  - percent: 50\n    tag: v1\n  - revisionName: hello-00001\n"
     "    percent: 50\n    tag: v1\n", "spec.traffic[1].tag",
     'Multiple definitions for "v1" (also spec.traffic[0].tag)', 15),
    ("traffic-revision-name", BASE + "  traffic:\n  - revisionName: Hello.1\n    percent: 100\n",
     "spec.traffic[0].revisionName",
     'not a DNS 1035 label: "Hello.1": a DNS-1035 label must consist of lower case '
     "alphanumeric characters or '-', start with an alphabetic character, and end with an "
     "alphanumeric character", 11),
    ("traffic-not-a-list", BASE + "  traffic: {percent: 100}\n", "spec.traffic",
     "expected a list, got a mapping", 10),
    # ---- the stream
    ("defined-twice", BASE + "---\n" + BASE, "metadata.name",
     "Service default/hello is defined twice (first at line 1)", 14),
]


@pytest.mark.parametrize(("text", "field", "reason", "where"),
                         [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_refusal(text: str, field: str, reason: str, where: int | tuple[int, int]) -> None:
    with pytest.raises(ServiceError) as info:
        load_services(text, source="t.yaml")
    e = info.value
    line, column = where if isinstance(where, tuple) else (where, None)
    assert (e.source, e.field, e.reason, e.line, e.column) == ("t.yaml", field, reason, line,
                                                              column)
    location = f"t.yaml:{line}" + (f":{column}" if column else "")
    assert str(e) == (f"{location}: {field}: {reason}" if field else f"{location}: {reason}")


def test_refusal_ids_are_unique() -> None:
    ids = [case[0] for case in REFUSALS]
    assert len(ids) == len(set(ids))


def test_the_briefs_message_shape() -> None:
    e = refusal(BASE.replace("command: [python, app.py]", "image: hello"))
    assert str(e) == (
        "t.yaml:9: spec.template.spec.containers[0].command: required: the local runtime runs "
        "the container's command (images are not pulled)")


def test_service_error_is_a_value_error_and_pickles() -> None:
    e = ServiceError("a.yaml", "spec.traffic", "Traffic targets sum to 0, want 100", 7)
    assert isinstance(e, ValueError)
    assert str(e) == "a.yaml:7: spec.traffic: Traffic targets sum to 0, want 100"
    back = pickle.loads(pickle.dumps(e))
    assert (back.source, back.field, back.reason, back.line, str(back)) == (
        e.source, e.field, e.reason, e.line, str(e))
    assert str(ServiceError("a.yaml", "", "cannot read: gone")) == "a.yaml: cannot read: gone"


# --------------------------------------------------------------------------- readiness probes


def probe_of(lines: str) -> Container:
    return load_one(BASE + lines).template.container


def test_http_probe_with_knatives_defaults() -> None:
    c = probe_of(C + "readinessProbe:\n"
                 + C + "  httpGet:\n"
                 + C + "    path: /ready\n"
                 + C + "    httpHeaders: [{name: X-Probe, value: local}]\n"
                 + C + "  periodSeconds: 2\n")
    assert c.readiness_probe == {
        "httpGet": {"path": "/ready", "httpHeaders": [{"name": "X-Probe", "value": "local"}]},
        "periodSeconds": 2, "successThreshold": 1, "failureThreshold": 3, "timeoutSeconds": 1,
    }
    assert json.loads(serving_readiness_probe(c, 41234)) == {
        "httpGet": {"path": "/ready", "httpHeaders": [{"name": "X-Probe", "value": "local"}],
                    "host": "127.0.0.1", "port": 41234, "scheme": "HTTP"},
        "periodSeconds": 2, "successThreshold": 1, "failureThreshold": 3, "timeoutSeconds": 1,
    }


def test_default_probe_is_tcp_on_the_pods_port() -> None:
    c = load_one(BASE).template.container
    assert serving_readiness_probe(c, 5000) == (
        '{"tcpSocket":{"host":"127.0.0.1","port":5000},"successThreshold":1}')


def test_probe_without_handler_gets_tcp() -> None:
    c = probe_of(C + "readinessProbe: {successThreshold: 3}\n")
    assert c.readiness_probe == {"tcpSocket": {}, "successThreshold": 3}


@pytest.mark.parametrize(
    ("probe", "expected_port"),
    [
        ("{tcpSocket: {}}", 5000),  # unset: the pod's port
        ("{tcpSocket: {port: 0}}", 5000),
        ("{tcpSocket: {port: 9000}}", 5000),  # the container port: where the app really is
        ("{httpGet: {port: http1}}", 5000),  # the port's name
        ("{tcpSocket: {port: 9001}}", 9001),  # another port: probed as written (as Knative)
    ],
)
def test_probe_port_becomes_the_pods(probe: str, expected_port: int) -> None:
    c = probe_of(C + "ports: [{containerPort: 9000, name: http1}]\n"
                 + C + f"readinessProbe: {probe}\n")
    handler = "httpGet" if "httpGet" in probe else "tcpSocket"
    assert json.loads(serving_readiness_probe(c, 5000))[handler]["port"] == expected_port


def test_unnamed_port_is_called_http_for_probes() -> None:
    c = probe_of(C + "readinessProbe: {tcpSocket: {port: http}}\n")
    assert json.loads(serving_readiness_probe(c, 7000))["tcpSocket"]["port"] == 7000


def test_exec_probe_is_kept_and_becomes_tcp_for_the_queue_proxy() -> None:
    c = probe_of(C + "readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 5}\n")
    assert c.readiness_probe["exec"] == {"command": ["cat", "/tmp/ready"]}
    assert json.loads(serving_readiness_probe(c, 6000)) == {
        "tcpSocket": {"host": "127.0.0.1", "port": 6000},
        "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3, "timeoutSeconds": 1,
    }


def test_probe_json_is_what_the_queue_proxy_decodes() -> None:
    from proxy.readiness import decode_probes

    c = probe_of(C + "readinessProbe: {httpGet: {path: /healthz}}\n")
    [probe] = decode_probes(serving_readiness_probe(c, 8123), multi=False)
    assert probe["httpGet"]["port"] == 8123
    # The stored probe is not touched by rendering.
    assert c.readiness_probe == {"httpGet": {"path": "/healthz"}, "successThreshold": 1}


# --------------------------------------------------------------------------- env and argv


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$(A)", "alpha"),
        ("x$(A)y$(B)z", "xalphaybetaz"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$$$(A)", "$alpha"),
        ("$(", "$("),
        ("$(A", "$(A"),
        ("$x", "$x"),
        ("a$", "a$"),
        ("$()", "$()"),
    ],
)
def test_expand_is_kubernetes_dollar_paren(text: str, expected: str) -> None:
    assert expand(text, {"A": "alpha", "B": "beta"}) == expected


def test_environ_and_process_args() -> None:
    c = probe_of(C + "args: [--port, $(PORT), --greeting, $(GREETING)]\n"
                 + C + "env:\n"
                 + C + "- {name: NAME, value: world}\n"
                 + C + "- {name: GREETING, value: hello-$(NAME)}\n"
                 + C + "- {name: EARLY, value: $(LATE)}\n"
                 + C + "- {name: LATE, value: x}\n"
                 + C + "- {name: LISTEN, value: ':$(PORT)'}\n")
    env = c.environ({"PORT": "41000", "K_REVISION": "hello-00001"})
    assert env == {
        "NAME": "world",
        "GREETING": "hello-world",
        "EARLY": "$(LATE)",  # only earlier entries are visible
        "LATE": "x",
        "LISTEN": ":$(PORT)",  # Knative appends PORT after the user's env
        "PORT": "41000",
        "K_REVISION": "hello-00001",
    }
    assert c.process_args(env) == [
        "python", "app.py", "--port", "41000", "--greeting", "hello-world"]
    assert c.environ() == {"NAME": "world", "GREETING": "hello-world", "EARLY": "$(LATE)",
                           "LATE": "x", "LISTEN": ":$(PORT)"}


def test_repeated_env_name_last_wins() -> None:
    c = probe_of(C + "env: [{name: A, value: '1'}, {name: A, value: '2'}]\n")
    assert c.env == {"A": "2"}


# --------------------------------------------------------------------------- identity


def test_revision_name_is_knatives() -> None:
    assert revision_name("hello", 1) == "hello-00001"
    assert revision_name("hello", 12) == "hello-00012"
    assert revision_name("hello", 123456) == "hello-123456"
    long = "a" * 60
    name = revision_name(long, 3)
    assert len(name) == 63
    assert name.startswith("a" * 25) and name.endswith("-00003")
    assert name != revision_name("a" * 61, 3)
    for bad in (0, -1, True, 1.0):
        with pytest.raises(ValueError):
            revision_name("hello", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parent", "suffix", "want"),
    [  # knative.dev/pkg kmeta TestChildName's table
        ("asdf", "-deployment", "asdf-deployment"),
        ("f" * 63, "-deployment",
         "ffffffffffffffffffff105d7597f637e83cc711605ac3ea4957-deployment"),
        ("f" * 63, "-deploy", "ffffffffffffffffffffffff105d7597f637e83cc711605ac3ea4957-deploy"),
        ("f" * 63, "f" * 63, "fffffffffffffffffffffffffffffff0502661254f13c89973cb3a83e0cbec0"),
        ("a", "f" * 63, "ab5cfd486935decbc0d305799f4ce4414ffffffffffffffffffffffffffffff"),
        ("b" * 32, "f" * 32, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb329c7c81b9ab3ba71aa139066aa5625d"),
        ("aaaa", "b---a" * 20, "aaaa7a3f7966594e3f0849720eced8212c18b---ab---ab---ab---ab---ab"),
        ("a" * 17, "a.-.-.-.-.-.-.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "aaaaaaaaaaaaaaaaaa1eb10dc911444f8434af83b7225442da"),
    ],
)
def test_child_name_matches_kmeta(parent: str, suffix: str, want: str) -> None:
    assert _child_name(parent, suffix) == want


def test_revision_name_for_uses_the_templates_name() -> None:
    assert load_one(BASE).revision_name_for(2) == "hello-00002"
    named = load_one(BASE.replace("    spec:\n      containers",
                                  "    metadata: {name: hello-blue}\n    spec:\n      containers"))
    assert named.revision_name_for(2) == "hello-blue"


def test_same_template_same_digest() -> None:
    a = load_one(HELLO)
    b = load_one(HELLO)
    assert template_digest(a.template) == template_digest(b.template)
    digest = template_digest(a.template)
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_digest_ignores_layout_key_order_and_traffic() -> None:
    block = load_one(BASE + C + "env: [{name: A, value: '1'}]\n"
                     + S + "containerConcurrency: 2\n")
    flow = load_one("""
        {kind: Service, apiVersion: serving.knative.dev/v1,
         spec: {traffic: [{percent: 100, tag: x}],
                template: {spec: {containers: [{env: [{value: "1", name: A}],
                                                command: [python, app.py]}],
                                  containerConcurrency: 2}}},
         metadata: {name: other, namespace: elsewhere}}
    """)
    assert template_digest(block.template) == template_digest(flow.template)


def test_annotation_order_does_not_change_the_digest() -> None:
    t = RevisionTemplate(container=Container(command=["x"]), annotations={"a": "1", "b": "2"})
    u = RevisionTemplate(container=Container(command=["x"]), annotations={"b": "2", "a": "1"})
    assert template_digest(t) == template_digest(u)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: replace(t, container_concurrency=3),
        lambda t: replace(t, timeout_seconds=301),
        lambda t: replace(t, annotations={"k": "v"}),
        lambda t: replace(t, labels={"k": "v"}),
        lambda t: replace(t, name="hello-v2"),
        lambda t: _with_container(t, env={"TARGET": "Python Sample v2"}),
        lambda t: _with_container(t, args=["--debug"]),
        lambda t: _with_container(t, command=["python3", "app.py"]),
        lambda t: _with_container(t, port=9000),
        lambda t: _with_container(t, working_dir="/srv"),
        lambda t: _with_container(t, image="docker.io/example/helloworld-python:v2"),
        lambda t: _with_container(t, readiness_probe={"httpGet": {}, "successThreshold": 1}),
    ],
)
def test_template_change_changes_the_digest(
        change: Callable[[RevisionTemplate], RevisionTemplate]) -> None:
    t = load_one(HELLO).template
    changed = change(t)
    assert changed != t
    assert template_digest(changed) != template_digest(t)


def test_env_order_changes_the_digest() -> None:
    # $(VAR) expansion sees earlier entries only, so the order is part of what runs.
    a = Container(command=["x"], env={"A": "1", "B": "$(A)"})
    b = Container(command=["x"], env={"B": "$(A)", "A": "1"})
    assert template_digest(RevisionTemplate(container=a)) != template_digest(
        RevisionTemplate(container=b))


def _with_container(t: RevisionTemplate, **changes: Any) -> RevisionTemplate:
    return replace(t, container=replace(t.container, **changes))


def test_verify_update_wants_a_new_name_for_a_changed_named_template() -> None:
    named = BASE.replace("    spec:\n      containers",
                         "    metadata: {name: hello-blue}\n    spec:\n      containers")
    before = load_one(named)
    after = load_one(named + S + "containerConcurrency: 5\n")
    with pytest.raises(ServiceError) as info:
        after.verify_update(before)
    assert str(info.value) == (
        't.yaml:7: spec.template.metadata.name: the template changed but its revision name '
        '"hello-blue" did not: a revision is immutable, give the new one a new name')
    before.verify_update(before)  # unchanged: fine
    load_one(named.replace("hello-blue", "hello-green") + S + "containerConcurrency: 5\n"
             ).verify_update(before)  # renamed: fine
    load_one(BASE + S + "containerConcurrency: 5\n").verify_update(load_one(BASE))  # unnamed


# --------------------------------------------------------------------------- the annotations hook


def test_validate_annotations_hook() -> None:
    svc = load_one(BASE.replace(
        "    spec:\n      containers",
        "    metadata:\n      annotations:\n        autoscaling.knative.dev/target: '200'\n"
        "    spec:\n      containerConcurrency: 100\n      containers"))
    seen: list[tuple[dict[str, str], int]] = []

    def accept(annotations: Mapping[str, str], cc: int) -> str:
        seen.append((dict(annotations), cc))
        return "ok"

    assert svc.validate_annotations(accept) == "ok"
    assert seen == [({"autoscaling.knative.dev/target": "200"}, 100)]

    def refuse(annotations: Mapping[str, str], cc: int) -> None:
        raise ValueError("target 200 is above containerConcurrency 100")

    with pytest.raises(ServiceError) as info:
        svc.validate_annotations(refuse)
    assert str(info.value) == ("t.yaml:8: spec.template.metadata.annotations: target 200 is "
                               "above containerConcurrency 100")


class FakeAnnotationError(ValueError):
    """Shaped like activator.autoscaler.AnnotationError (the key in ``annotation``)."""

    def __init__(self, annotation: str, reason: str) -> None:
        self.annotation = annotation
        super().__init__(f"{reason}: {annotation}")


def test_validate_annotations_points_at_the_key() -> None:
    svc = load_one(BASE.replace(
        "    spec:\n      containers",
        "    metadata:\n      annotations:\n        autoscaling.knative.dev/min-scale: '1'\n"
        "        autoscaling.knative.dev/max-scale: '-2'\n    spec:\n      containers"))

    def refuse(annotations: Mapping[str, str], cc: int) -> None:
        raise FakeAnnotationError("autoscaling.knative.dev/max-scale",
                                  "expected 0 <= -2 <= 2147483647")

    with pytest.raises(ServiceError) as info:
        svc.validate_annotations(refuse)
    assert str(info.value) == (
        "t.yaml:10: spec.template.metadata.annotations[autoscaling.knative.dev/max-scale]: "
        "expected 0 <= -2 <= 2147483647")

    def refuse_unknown_key(annotations: Mapping[str, str], cc: int) -> None:
        raise FakeAnnotationError("autoscaling.knative.dev/window", "too short")

    with pytest.raises(ServiceError) as info:
        svc.validate_annotations(refuse_unknown_key)
    assert (info.value.field, info.value.reason, info.value.line) == (
        "spec.template.metadata.annotations", "too short: autoscaling.knative.dev/window", 8)


def test_error_finds_the_nearest_line() -> None:
    svc = load_one(BASE + S + "containerConcurrency: 5\n")
    assert svc.error("spec.template.spec.containerConcurrency", "r").line == 10
    assert svc.error("spec.template.spec.containers[0].command[1]", "r").line == 9
    assert svc.error("spec.template.metadata.annotations[x]", "r").line == 6  # "template:"
    assert svc.error("nowhere", "r").line == 1
    assert svc.error("nowhere", "r").field == "nowhere"


def test_api_version_constant() -> None:
    assert API_VERSION == "serving.knative.dev/v1"
