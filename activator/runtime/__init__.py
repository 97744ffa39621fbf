"""The local runtime: Knative Service YAML run on one machine, processes as pods.

- ``service``: the Service model (frozen values), revision names and template digests;
- ``manifest``: YAML in, ``Service`` values or a ``ServiceError`` with file, line and field out;
- ``pods``: a pod is the app's process beside a queue-proxy process; ``zygote`` forks those
  sidecars from a warm queue-proxy;
- ``frontdoor``: the public port's handler (routing by Host and traffic split);
- ``runtime``: ``Runtime``, which joins an embedded activator, one KPA decider per revision and
  the process scaler;
- ``cli``: ``python -m activator run``.

Uses the activator and the autoscaler through their public APIs. Only the entry point
(``activator.__main__``) imports this room. The names below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import _speedups  # noqa: F401  (first: it decides where engine modules load from)
from _speedups._lazy import lazy_exports

if TYPE_CHECKING:
    from activator.runtime.manifest import load_services
    from activator.runtime.runtime import RevisionRuntime, Runtime
    from activator.runtime.service import Service, ServiceError

_EXPORTS = {
    "load_services": "activator.runtime.manifest",
    "RevisionRuntime": "activator.runtime.runtime",
    "Runtime": "activator.runtime.runtime",
    "Service": "activator.runtime.service",
    "ServiceError": "activator.runtime.service",
}
__all__ = [
    "RevisionRuntime",
    "Runtime",
    "Service",
    "ServiceError",
    "load_services",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
