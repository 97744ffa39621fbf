"""``deploy/``: the manifests a Knative user applies, checked offline against Kubernetes'
schema (``kubernetes-validate``) and against the keys Knative reads."""

from __future__ import annotations

import os
import re

import pytest
import yaml
from support import REPO

kubernetes_validate = pytest.importorskip("kubernetes_validate")

PATCH = os.path.join(REPO, "deploy", "queue-proxy", "config-deployment-patch.yaml")


def merged() -> dict:
    """The installed ConfigMap (its identity, as Knative's config/core/configmaps/deployment.yaml
    names it) with the patch merged in, as ``kubectl patch --type merge`` leaves it."""
    patch = yaml.safe_load(open(PATCH))
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "config-deployment", "namespace": "knative-serving",
                         "labels": {"app.kubernetes.io/name": "knative-serving"}},
            "data": {"registries-skipping-tag-resolving": "kind.local,ko.local,dev.local",
                     **patch["data"]}}


def test_the_patch_sets_only_the_sidecar_image() -> None:
    patch = yaml.safe_load(open(PATCH))
    assert set(patch) == {"data"}
    assert set(patch["data"]) == {"queue-sidecar-image"}  # Knative's QueueSidecarImageKey
    image = patch["data"]["queue-sidecar-image"]
    assert re.fullmatch(r"[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+(:[\w.-]+|@sha256:[0-9a-f]{64})",
                        image), image


def test_the_patched_configmap_is_valid_kubernetes() -> None:
    kubernetes_validate.validate(merged(), kubernetes_validate.latest_version(), strict=True)


def test_the_validator_would_catch_a_broken_one() -> None:
    bad = merged()
    bad["data"]["queue-sidecar-image"] = 42  # ConfigMap data values are strings
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


# --------------------------------------------------------------------------- the activator

ACTIVATOR = os.path.join(REPO, "deploy", "activator", "activator.yaml")


def activator_docs() -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(open(ACTIVATOR)) if d}


def activator_container() -> dict:
    (container,) = activator_docs()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("kind", ["ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                  "Deployment"])
def test_each_activator_object_is_valid_kubernetes(kind: str) -> None:
    kubernetes_validate.validate(activator_docs()[kind], kubernetes_validate.latest_version(),
                                 strict=True)


def test_the_activator_runs_our_cli_with_flags_it_has() -> None:
    from activator.__main__ import parse_args

    container = activator_container()
    assert container["command"] == ["python", "-m", "activator"]
    args = parse_args(container["args"])  # argparse exits on a flag that does not exist
    assert args.command == "serve" and args.kubernetes
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert (ports["http1"], ports["h2c"], ports["metrics"]) == (
        args.port, args.h2c_port, args.metrics_port)
    assert container["readinessProbe"]["httpGet"]["port"] == args.port
    assert args.admin_port < 0  # no unauthenticated control API in a cluster
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
           for e in container["env"]}
    assert env["POD_IP"] == "status.podIP" and env["POD_NAME"] == "metadata.name"
    # The same image as the queue-proxy patch's: one image, both roles.
    assert container["image"] == yaml.safe_load(open(PATCH))["data"]["queue-sidecar-image"]


def test_the_activator_replaces_knatives_under_its_name_and_labels() -> None:
    deployment = activator_docs()["Deployment"]
    meta, spec = deployment["metadata"], deployment["spec"]
    assert (meta["name"], meta["namespace"]) == ("activator", "knative-serving")
    # activator-service selects app: activator; the selector of an existing Deployment is
    # immutable, so it must stay Knative's for kubectl apply to replace it.
    assert spec["selector"]["matchLabels"] == {"app": "activator", "role": "activator"}
    assert spec["template"]["metadata"]["labels"]["app"] == "activator"


def test_the_service_account_may_read_what_the_informers_watch() -> None:
    from activator.activator.kube import KubeConfig, KubeSource

    docs = activator_docs()
    sa = docs["ServiceAccount"]["metadata"]
    binding = docs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]
    assert {"kind": "ServiceAccount", "name": sa["name"],
            "namespace": sa["namespace"]} in binding["subjects"]
    spec = docs["Deployment"]["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == sa["name"]
    allowed = {(group, resource, verb)
               for rule in docs["ClusterRole"]["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]
               for verb in rule["verbs"]}
    source = KubeSource(None, KubeConfig("http://127.0.0.1:1"))
    for informer in source.informers:
        parts = informer.path.strip("/").split("/")  # api/v1/R or apis/G/v1/R
        group = "" if parts[0] == "api" else parts[1]
        for verb in ("list", "watch"):
            assert (group, parts[-1], verb) in allowed, (informer.path, verb)
    # Nothing to write: the activator only reads the API.
    assert {verb for _, _, verb in allowed} <= {"get", "list", "watch"}
