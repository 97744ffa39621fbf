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
