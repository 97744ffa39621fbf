"""The runtime's public port: routes each request by Host (or the Knative-Serving-Revision and
-Namespace headers) to a revision, splits by traffic percent, and hands it to the embedded
activator while the activator is in the revision's path, else straight to a ready pod."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

from _speedups import fields as F
from activator.runtime.status import STATUS_PATH, snapshot
from proxy.engine import Exchange
from proxy.engine import states as S
from proxy.headers import drop_set, request_head

if TYPE_CHECKING:
    from activator.runtime.runtime import RevisionRuntime, Runtime

__all__ = ["FrontDoor", "Route"]

_DROP_FRONT = drop_set(b"knative-serving-revision", b"knative-serving-namespace")


class Route:
    """Where a Host goes: weighted revision targets."""

    __slots__ = ("targets", "weights")

    def __init__(self, targets: list[tuple[RevisionRuntime, int]]) -> None:
        self.targets = [t for t, w in targets if w > 0] or [t for t, _ in targets]
        self.weights = [w for _, w in targets if w > 0] or [1] * len(self.targets)

    def pick(self) -> RevisionRuntime:
        if len(self.targets) == 1:
            return self.targets[0]
        return random.choices(self.targets, self.weights)[0]


class FrontDoor:
    """The engine handler of the runtime's public port."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        if runtime.access_log is not None:
            self.route = self.handle
            self.handle = self._handle_logged  # type: ignore[method-assign]

    def _handle_logged(self, ex: Exchange) -> None:
        """``--access-log``: ``handle``, then a line when the exchange ends (its callback chained
        behind the activator's, when the request went through the activator)."""
        started = self.runtime.clock()
        self.route(ex)
        if ex.state == S.DONE:  # answered at once (a 404, a failing revision's 503)
            self._log(ex, started)
            return
        inner = ex.on_done

        def done(e: Exchange) -> None:
            if inner is not None:
                inner(e)
            self._log(e, started)

        ex.on_done = done

    def _log(self, ex: Exchange, started: float) -> None:
        log = self.runtime.access_log
        if log is None:  # pragma: no cover - only installed with a log
            return
        host = (ex.fields[F.HOST] or b"-").decode("latin-1")
        target = ex.target.decode("latin-1")
        millis = (self.runtime.clock() - started) * 1000
        status = ex.resp_status or "-"
        log(f"{host} \"{ex.method.decode('latin-1')} {target}\" {status} "
            f"{ex.resp_bytes}B {millis:.1f}ms")

    def handle(self, ex: Exchange) -> None:
        rt = self.runtime
        f = ex.fields
        rev: RevisionRuntime | None = None
        name = f[F.KNATIVE_SERVING_REVISION]
        namespace = f[F.KNATIVE_SERVING_NAMESPACE]
        if name and namespace:
            rev = rt.revisions.get((namespace.decode("latin-1"), name.decode("latin-1")))
        if rev is None:
            host = (f[F.HOST] or b"").decode("latin-1").lower()
            if host.startswith("["):
                host = host.split("]", 1)[0] + "]"
            else:
                host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            route = rt.routes.get(host)
            if route is None:
                if ex.target.split(b"?", 1)[0] == STATUS_PATH and ex.method == b"GET":
                    # python -m activator status: only for a Host no service is routed by.
                    body = json.dumps(snapshot(rt)).encode()
                    ex.respond(200, body, b"Content-Type: application/json\r\n")
                    return
                ex.error(404, f"no service is routed for host {host!r}")
                return
            rev = route.pick()
        if not rev.h2c and getattr(ex, "h2c", None) is not None:
            # An HTTP/2 request for an HTTP/1.1 revision: on from here over HTTP/1.1, as
            # Knative's ingress sends it (a port not named h2c).
            ex.via_http11 = True  # type: ignore[attr-defined]
        act_rev = rev.act_rev
        if rev.activator_in_path or not act_rev.healthy:
            act_rev.hold(ex)
            return
        address = rev.next_pod()
        pool = act_rev.pool(address) if address is not None else None
        if pool is None:  # pragma: no cover - healthy pods checked just above
            act_rev.hold(ex)
            return
        ex.head_out = request_head(ex, _DROP_FRONT)
        ex.forward(pool)
