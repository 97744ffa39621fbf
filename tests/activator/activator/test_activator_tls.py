"""System-internal TLS through the activator (``activator.activator.tls``), over real sockets:
the activator forwards to a pod's queue-proxy over TLS (on the pod's TLS port, verified against
``ca.crt`` for ``data-plane.knative.dev``) while its probes stay plain, and serves TLS itself."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from support import request, wait_for
from tlsutil import TLSClient, client_context, make_ca_pair

from activator.activator.tls import ActivatorTLS

NS, REV = "default", "secure-00001"
ROUTE = [("Knative-Serving-Namespace", NS), ("Knative-Serving-Revision", REV)]


def secret_dir(tmp_path: Path, name: str, pem: tuple[bytes, bytes, bytes]) -> Path:
    """The ``routing-serving-certs`` Secret as a mounted volume."""
    d = tmp_path / name
    d.mkdir()
    for data, file in zip(pem, ("tls.crt", "tls.key", "ca.crt"), strict=True):
        (d / file).write_bytes(data)
    return d


@pytest.fixture
def pki(tmp_path: Path) -> tuple[bytes, bytes, bytes]:
    return make_ca_pair(tmp_path, "routing")


@pytest.fixture
def make_activator(proxy_loop: Any, backend: str) -> Any:
    started: list[Any] = []

    def make(tls: ActivatorTLS, pod: str) -> Any:
        from activator.activator.app import Activator

        async def build() -> Any:
            act = Activator(backend=backend, drain_timeout=0, tls=tls)
            await act.start("127.0.0.1", 0, None, None, tls_port=0)
            act.set_revision(NS, REV)
            act.set_endpoints(NS, REV, ready=[pod])
            return act

        act = proxy_loop.run(build())
        started.append(act)
        rev = proxy_loop.call(lambda: act.revision(NS, REV))
        wait_for(lambda: proxy_loop.call(lambda: bool(rev.healthy)), timeout=10)
        return act

    yield make
    for act in started:
        proxy_loop.call(act.close)


def tls_connections(proxy: Any) -> int:
    return proxy.call(lambda: sum(1 for c in proxy.qp.server.connections if c.tls))


@pytest.mark.timeout(60)
def test_requests_reach_the_pod_over_tls_and_probes_stay_plain(
        tmp_path: Path, pki: Any, make_proxy: Any, make_activator: Any, app: Any) -> None:
    # The pod's queue-proxy serves TLS with the same Secret (Knative mounts it in each pod).
    certs = secret_dir(tmp_path, "certs", pki)
    proxy = make_proxy(certs_dir=str(certs), serving_tls_port=0)
    tls = ActivatorTLS(str(certs), pod_port=proxy.qp.ports["tls"], env={})
    # The endpoint names the pod's plain port: probes go there, requests to its TLS port.
    act = make_activator(tls, f"127.0.0.1:{proxy.port}")
    assert tls_connections(proxy) == 0  # the probes were plain
    r = request(act.ports["main"], "GET", "/echo?through=tls", ROUTE)
    assert r.status == 200, r
    assert app.requests[-1].target == "/echo?through=tls"
    assert tls_connections(proxy) == 1  # kept alive in the activator's pool
    # Another client's first request takes it only once it has been idle a second (the pool's
    # settle rule); until then it dials a second one.
    assert request(act.ports["main"], "GET", "/echo", ROUTE).status == 200
    assert tls_connections(proxy) in (1, 2)


@pytest.mark.timeout(60)
def test_a_pod_certificate_from_another_ca_is_refused(
        tmp_path: Path, pki: Any, make_proxy: Any, make_activator: Any, app: Any) -> None:
    certs = secret_dir(tmp_path, "certs", pki)
    proxy = make_proxy(certs_dir=str(certs), serving_tls_port=0)
    other = secret_dir(tmp_path, "other", make_ca_pair(tmp_path, "other"))
    act = make_activator(ActivatorTLS(str(other), pod_port=proxy.qp.ports["tls"], env={}),
                         f"127.0.0.1:{proxy.port}")
    before = len(app.requests)
    r = request(act.ports["main"], "GET", "/echo", ROUTE)
    assert r.status == 502, r
    # Go's words (crypto/tls, crypto/x509), through Knative's error handler
    assert r.body == (b"tls: failed to verify certificate: x509: certificate signed by unknown "
                      b"authority\n"), r.body
    assert len(app.requests) == before


@pytest.mark.timeout(60)
def test_a_pod_certificate_for_another_name_is_refused(
        tmp_path: Path, pki: Any, make_proxy: Any, make_activator: Any, app: Any) -> None:
    # Signed by the trusted CA, but not for data-plane.knative.dev.
    pod = make_ca_pair(tmp_path, "pod", san="DNS:elsewhere.example,IP:127.0.0.1")
    certs = secret_dir(tmp_path, "pod-certs", pod)
    proxy = make_proxy(certs_dir=str(certs), serving_tls_port=0)
    tls = ActivatorTLS(str(certs), pod_port=proxy.qp.ports["tls"], env={})
    act = make_activator(tls, f"127.0.0.1:{proxy.port}")
    r = request(act.ports["main"], "GET", "/echo", ROUTE)
    assert r.status == 502 and b"data-plane.knative.dev" in r.body, r


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_the_activator_serves_tls_end_to_end(tmp_path: Path, pki: Any, make_proxy: Any,
                                             make_activator: Any, app: Any,
                                             version: str) -> None:
    # TLS from the client to the activator (TLS 1.2 allowed by ACTIVATOR_TLS_MIN_VERSION), and
    # from the activator to the pod.
    certs = secret_dir(tmp_path, "certs", pki)
    proxy = make_proxy(certs_dir=str(certs), serving_tls_port=0)
    env = {"ACTIVATOR_TLS_MIN_VERSION": version}
    tls = ActivatorTLS(str(certs), pod_port=proxy.qp.ports["tls"], env=env)
    act = make_activator(tls, f"127.0.0.1:{proxy.port}")
    want = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    c = TLSClient(act.ports["tls"], client_context(want))
    try:
        assert c.sock.version() == f"TLSv{version}"
        route = "".join(f"{n}: {v}\r\n" for n, v in ROUTE).encode()
        status, body = c.get("/echo?secure", route)
        assert status == 200 and b'"target": "/echo?secure"' in body
        assert c.get("/echo", route)[0] == 200  # keep-alive
    finally:
        c.close()
    assert tls_connections(proxy) == 1


def test_tls_1_2_is_refused_by_default(tmp_path: Path, pki: Any, make_proxy: Any,
                                       make_activator: Any) -> None:
    certs = secret_dir(tmp_path, "certs", pki)
    proxy = make_proxy()
    act = make_activator(ActivatorTLS(str(certs), env={}), f"127.0.0.1:{proxy.port}")
    with pytest.raises(ssl.SSLError):
        TLSClient(act.ports["tls"], client_context(ssl.TLSVersion.TLSv1_2))


def test_a_missing_pair_is_an_error_at_start(tmp_path: Path) -> None:
    with pytest.raises(OSError):  # Knative's activator will not start without it
        ActivatorTLS(str(tmp_path / "nowhere"), env={})


def test_a_new_ca_in_the_trust_bundle_is_taken(tmp_path: Path, pki: Any) -> None:
    certs = secret_dir(tmp_path, "certs", pki)
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    tls = ActivatorTLS(str(certs), trust_dir=str(bundles), env={})
    assert tls.trust_files() == [str(certs / "ca.crt")]
    assert not tls.load_trust()  # nothing new
    (bundles / "extra.pem").write_bytes(make_ca_pair(tmp_path, "extra")[2])
    assert tls.load_trust()
    assert len(tls.client.get_ca_certs()) == 2
    (bundles / "junk.pem").write_bytes(b"not a certificate")
    assert not tls.load_trust()  # warned and ignored, as Knative
