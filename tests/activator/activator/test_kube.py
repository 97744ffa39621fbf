"""The activator fed from the Kubernetes API (``activator.activator.kube``), against a stand-in
API server (``tests/kubeapi.py``: list, watch, resourceVersions, 410 Gone, bearer tokens, TLS).

The end-to-end test runs ``python -m activator serve --kubernetes-api ...`` as a process, in
front of real queue-proxy pods, and changes the world the way Knative's controllers do: a
Revision, its private Service and Endpoints, its public Endpoints (the activators).
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubeapi import KubeAPI
from support import (
    REPO,
    ActivatorProcess,
    App,
    LoopThread,
    QueueProxyPod,
    free_port,
    request,
    wait_for,
)
from tlsutil import make_pair

from activator.activator.kube import (
    KubeConfig,
    KubeSource,
    cluster_address,
    endpoint_ips,
    endpoints_to_dests,
)

NS = "default"
REV = "hello-00001"
HOST = f"{REV}.{NS}.svc.cluster.local"
REVISIONS = "/apis/serving.knative.dev/v1/revisions"
ENDPOINTS = "/api/v1/endpoints"
SERVICES = "/api/v1/services"
TOKEN = "t0ken"


def revision(cc: int = 1, name: str = REV, port_name: str = "user-port") -> dict[str, Any]:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Revision",
            "metadata": {"namespace": NS, "name": name,
                         "labels": {"serving.knative.dev/service": "hello",
                                    "serving.knative.dev/configuration": "hello"}},
            "spec": {"containerConcurrency": cc, "timeoutSeconds": 300,
                     "containers": [{"image": "x", "ports": [{"name": port_name,
                                                              "containerPort": 8080}]}]}}


def endpoints(kind: str, ready: list[tuple[str, int]], not_ready: list[tuple[str, int]] = (),
              name: str = REV, port_name: str = "http") -> dict[str, Any]:
    """Endpoints as Kubernetes writes them for a Knative service: one subset per port (pods on
    127.0.0.1 here all differ by port, so one subset each)."""
    subsets = []
    for addresses, key in ((ready, "addresses"), (not_ready, "notReadyAddresses")):
        for ip, port in addresses:
            subsets.append({key: [{"ip": ip}], "ports": [{"name": port_name, "port": port,
                                                          "protocol": "TCP"}]})
    suffix = "-private" if kind == "Private" else ""
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"namespace": NS, "name": name + suffix,
                         "labels": {"serving.knative.dev/revision": name,
                                    "networking.internal.knative.dev/serviceType": kind}},
            "subsets": subsets}


def private_service(cluster_ip: str, port: int, name: str = REV) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": NS, "name": name + "-private",
                         "labels": {"serving.knative.dev/revision": name,
                                    "networking.internal.knative.dev/serviceType": "Private"}},
            "spec": {"clusterIP": cluster_ip,
                     "ports": [{"name": "http", "port": port, "targetPort": 8012}]}}


# --------------------------------------------------------------------------- the pure parts


def test_endpoints_give_the_ready_and_not_ready_pods_of_the_port() -> None:
    doc = endpoints("Private", [("10.0.0.1", 8012)], [("10.0.0.2", 8012)])
    doc["subsets"].append({"addresses": [{"ip": "10.0.0.9"}],
                           "ports": [{"name": "http-autometric", "port": 9090}]})
    assert endpoints_to_dests(doc, "http") == (["10.0.0.1:8012"], ["10.0.0.2:8012"])
    assert endpoints_to_dests(doc, "http2") == ([], [])
    v6 = endpoints("Private", [("fd00::1", 8012)])
    assert endpoints_to_dests(v6, "http") == (["[fd00::1]:8012"], [])
    public = endpoints("Public", [("10.1.0.2", 8012), ("10.1.0.1", 8012)], [("10.1.0.3", 8012)])
    assert endpoint_ips(public, "http") == ["10.1.0.1", "10.1.0.2"]  # ready ones only


def test_the_private_service_gives_the_cluster_address() -> None:
    assert cluster_address(private_service("10.96.0.7", 80), "http") == "10.96.0.7:80"
    assert cluster_address(private_service("10.96.0.7", 80), "http2") is None
    assert cluster_address(private_service("None", 80), "http") is None  # headless


# --------------------------------------------------------------------------- the informers


class Recorder:
    """Stands in for the activator: records the Python API calls the source makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def set_revision(self, ns: str, name: str, **spec: Any) -> bool:
        self.calls.append(("set_revision", name, spec["container_concurrency"]))
        return True

    def set_endpoints(self, ns: str, name: str, **kw: Any) -> None:
        self.calls.append(("set_endpoints", name, tuple(kw["ready"]), tuple(kw["not_ready"]),
                           kw["cluster_ip"]))

    def set_activators(self, ns: str, name: str, addresses: list[str]) -> int:
        self.calls.append(("set_activators", name, tuple(addresses)))
        return 0

    def remove_revision(self, ns: str, name: str) -> None:
        self.calls.append(("remove_revision", name))


@pytest.fixture
def api_loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


def test_watch_resumes_and_a_410_relists(api_loop: LoopThread) -> None:
    api = KubeAPI()
    api_loop.run(api.start())
    rec = Recorder()
    api_loop.call(lambda: api.put(REVISIONS, revision()))
    source = KubeSource(rec, KubeConfig(api.url))
    api_loop.run(source.start(10))
    assert rec.calls == [("set_revision", REV, 1), ("set_endpoints", REV, (), (), None)]
    # Endpoints before the revision they name are kept until it comes.
    api_loop.call(lambda: api.put(ENDPOINTS, endpoints("Private", [("10.0.0.1", 8012)],
                                                       name="late-00001")))
    api_loop.call(lambda: api.put(ENDPOINTS, endpoints("Private", [("10.0.0.1", 8012)])))
    wait_for(lambda: rec.calls[-1] == ("set_endpoints", REV, ("10.0.0.1:8012",), (), None))
    api_loop.call(lambda: api.put(REVISIONS, revision(name="late-00001")))
    wait_for(lambda: ("set_endpoints", "late-00001", ("10.0.0.1:8012",), (), None) in rec.calls)
    # The server ends every watch (a restart): they resume from the last version, no list.
    lists = dict(api.lists)
    api_loop.call(api.end_watches)
    api_loop.call(lambda: api.put(SERVICES, private_service("10.96.0.7", 80)))
    wait_for(lambda: rec.calls[-1] == ("set_endpoints", REV, ("10.0.0.1:8012",), (),
                                       "10.96.0.7:80"))
    assert api.lists == lists
    # Events the watch missed were compacted away: 410 Gone, a new list, its differences as
    # events (the revision deleted meanwhile is removed).
    def missed() -> None:
        api.delete(REVISIONS, NS, "late-00001")
        api.compact()
        api.end_watches()

    api_loop.call(missed)
    wait_for(lambda: ("remove_revision", "late-00001") in rec.calls)
    assert api.lists[REVISIONS] == lists[REVISIONS] + 1
    # Public endpoints: the activators in the revision's path.
    api_loop.call(lambda: api.put(ENDPOINTS, endpoints("Public", [("10.1.0.1", 8012),
                                                                  ("10.1.0.2", 8012)])))
    wait_for(lambda: rec.calls[-1] == ("set_activators", REV, ("10.1.0.1", "10.1.0.2")))
    api_loop.run(source.aclose())
    api_loop.run(api.stop())


def test_a_watch_that_ends_at_once_is_backed_off_from(api_loop: LoopThread) -> None:
    # client-go's "very short watch": no events and under a second is an error, so the
    # back-off (0.5 s, doubling) applies instead of a reconnect loop.
    api = KubeAPI()
    api.end_watches_at_once = True
    api_loop.run(api.start())
    source = KubeSource(Recorder(), KubeConfig(api.url))
    api_loop.run(source.start(10))
    t0 = time.monotonic()
    wait_for(lambda: api.watches.get(REVISIONS, 0) >= 3, timeout=10)
    took = time.monotonic() - t0
    assert took >= 0.5 + 1.0 - 0.2, (took, api.watches)  # two back-offs at least
    assert "ended at once with no event" in source.informers[0].last_error
    api_loop.run(source.aclose())
    api_loop.run(api.stop())


# --------------------------------------------------------------------------- the process
# (pod_app: the activator tests' conftest)


@pytest.mark.timeout(90)
def test_the_activator_process_follows_the_kubernetes_api(
        tmp_path: Path, api_loop: LoopThread, pod_app: App) -> None:
    cert, key = make_pair(tmp_path, "kube-api")
    (tmp_path / "api.crt").write_bytes(cert)
    (tmp_path / "api.key").write_bytes(key)
    (tmp_path / "token").write_text(TOKEN + "\n")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "api.crt", tmp_path / "api.key")
    api = KubeAPI(token=TOKEN, ssl_context=server_ctx)
    api_loop.run(api.start())
    pods = [QueueProxyPod(pod_app.port, cc=1) for _ in range(2)]
    acts: list[ActivatorProcess] = []
    pool = ThreadPoolExecutor(4)
    try:
        # A wrong token: the first lists fail, the activator says why and exits 1.
        (tmp_path / "bad").write_text("nope")
        out = subprocess.run(
            [sys.executable, "-m", "activator", "serve", "--host", "127.0.0.1", "--port", "0",
             "--h2c-port", "-1", "--admin-port", "0", "--metrics-port", "-1",
             "--kubernetes-api", api.url, "--kubernetes-token-file", str(tmp_path / "bad"),
             "--kubernetes-ca-file", str(tmp_path / "api.crt"),
             "--kubernetes-sync-timeout", "1"],
            cwd=REPO, capture_output=True, text=True, timeout=30)
        assert out.returncode == 1, out
        assert "401 Unauthorized" in out.stderr and api.url in out.stderr, out.stderr

        api_loop.call(lambda: api.put(REVISIONS, revision(cc=1)))
        api_loop.call(lambda: api.put(ENDPOINTS, endpoints(
            "Private", [], [("127.0.0.1", pods[0].port)])))
        act = ActivatorProcess(
            tmp_path / "act.log", "--kubernetes-api", api.url,
            "--kubernetes-token-file", str(tmp_path / "token"),
            "--kubernetes-ca-file", str(tmp_path / "api.crt"),
            "--pod-ip", "10.1.0.2", "--drain-timeout", "0.2")
        acts.append(act)
        # The revision and its not-ready pod came from the lists: the pod is probed, then used.
        r = request(act.port, "GET", "/echo?case=kube", headers=[("Host", HOST)])
        assert r.status == 200, (r, act.output())
        assert act.status(REV)["healthyPods"] == [pods[0].address]

        # A second pod: capacity 2 (CC 1 each) ...
        api_loop.call(lambda: api.put(ENDPOINTS, endpoints(
            "Private", [("127.0.0.1", pods[0].port), ("127.0.0.1", pods[1].port)])))
        wait_for(lambda: act.status(REV)["capacity"] == 2, timeout=20)
        # ... and two activators in its path, this one (10.1.0.2) second: half each.
        api_loop.call(lambda: api.put(ENDPOINTS, endpoints(
            "Public", [("10.1.0.1", 8012), ("10.1.0.2", 8012)])))
        wait_for(lambda: act.status(REV)["capacity"] == 1, timeout=20)

        # Scaled to zero: a request waits; the pods come back: it runs.
        api_loop.call(lambda: api.put(ENDPOINTS, endpoints("Private", [])))
        wait_for(lambda: act.status(REV)["healthyPods"] == [], timeout=20)
        held = pool.submit(request, act.port, "GET", "/echo?case=held", [("Host", HOST)])
        wait_for(lambda: act.status(REV)["waiting"] == 1, timeout=20)
        api_loop.call(api.end_watches)  # and an API server restart on the way
        api_loop.call(lambda: api.put(ENDPOINTS, endpoints(
            "Private", [("127.0.0.1", pods[1].port)])))
        r = held.result(timeout=30)
        assert r.status == 200 and r.json()["target"] == "/echo?case=held", r

        # The revision deleted: 404, as for any unknown revision.
        api_loop.call(lambda: api.delete(REVISIONS, NS, REV))
        wait_for(lambda: act.control("GET", f"/revisions/{NS}/{REV}").status == 404, timeout=20)
        r = request(act.port, "GET", "/", headers=[("Host", HOST)])
        assert r.status == 404, r
        assert api.unauthorized >= 1
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for a in acts:
            a.stop()
        for p in pods:
            p.stop()
        api_loop.run(api.stop())


def test_in_cluster_config_needs_the_service_variables(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ValueError, match="KUBERNETES_SERVICE_HOST"):
        KubeConfig.in_cluster(str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    (tmp_path / "token").write_text("abc\n")
    cert, _ = make_pair(tmp_path, "ca")
    (tmp_path / "ca.crt").write_bytes(cert)
    config = KubeConfig.in_cluster(str(tmp_path))
    assert config.url == "https://[fd00::1]:443"
    assert ("Authorization", "Bearer abc") in config.headers()


@pytest.mark.timeout(60)
def test_as_deployed_no_control_api_and_requests_served(tmp_path: Path, api_loop: LoopThread,
                                                        pod_app: App) -> None:
    # deploy/activator/activator.yaml runs it with --admin-port=-1: everything comes from the
    # API, nothing listens for control requests.
    api = KubeAPI()
    api_loop.run(api.start())
    pod = QueueProxyPod(pod_app.port, cc=0)
    port = free_port()
    log = open(tmp_path / "act.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "activator", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--h2c-port", "-1", "--admin-port", "-1", "--metrics-port", "-1",
         "--kubernetes-api", api.url, "--drain-timeout", "0"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        api_loop.call(lambda: api.put(REVISIONS, revision(cc=0)))
        api_loop.call(lambda: api.put(ENDPOINTS, endpoints("Private",
                                                           [("127.0.0.1", pod.port)])))

        def served() -> bool:
            assert proc.poll() is None, (tmp_path / "act.log").read_text()
            try:
                return request(port, "GET", "/echo?case=deployed",
                               headers=[("Host", HOST)]).status == 200
            except OSError:
                return False

        wait_for(served, timeout=20)
        assert "admin" not in (tmp_path / "act.log").read_text().split("listening on", 1)[1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
        pod.stop()
        api_loop.run(api.stop())
