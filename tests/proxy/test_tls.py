"""System-internal TLS on the queue-proxy's TLS port (``proxy.tls``), as Knative serves it: on
when ``tls.crt`` and ``tls.key`` are in the certificate directory (``certs_dir``, Knative's
``/var/lib/knative/certs``), TLS 1.3 only unless ``QUEUE_PROXY_TLS_MIN_VERSION`` says 1.2,
HTTP/1.1 and h2 by ALPN, the pair reloaded when it changes with no connection dropped.
Certificates are made with the ``openssl`` command (Debian's)."""

from __future__ import annotations

import shutil
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from support import wait_for
from tlsutil import TLSClient, client_context, der, install, make_pair

from proxy.config import ConfigError, from_environ
from proxy.tls import CertWatcher, server_context

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    d = tmp_path / "certs"
    d.mkdir()
    return d


def tls_proxy(make_proxy: Any, certs: Path, **kw: Any) -> Any:
    proxy = make_proxy(certs_dir=str(certs), serving_tls_port=0, **kw)
    assert "tls" in proxy.qp.ports
    return proxy


def test_no_pair_no_tls_port(make_proxy: Any, certs: Path) -> None:
    proxy = make_proxy(certs_dir=str(certs), serving_tls_port=0)
    assert "tls" not in proxy.qp.ports


def test_tls13_gets_answers_and_http11_by_alpn(make_proxy: Any, app: Any, certs: Path) -> None:
    pair = make_pair(certs, "a")
    install(certs, pair)
    proxy = tls_proxy(make_proxy, certs)
    c = TLSClient(proxy.qp.ports["tls"], client_context(ssl.TLSVersion.TLSv1_3,
                                                         ["h2", "http/1.1"][1:]))
    try:
        assert c.sock.version() == "TLSv1.3"
        assert c.sock.selected_alpn_protocol() == "http/1.1"
        assert c.served() == der(pair[0])
        status, body = c.get("/echo")
        assert status == 200 and b'"target": "/echo"' in body
        assert c.get("/echo")[0] == 200  # keep-alive
    finally:
        c.close()
    # the plain port still serves (Knative keeps HTTP on beside TLS)
    assert app.requests and app.requests[-1].path == "/echo"


def test_tls12_refused_by_default_answered_with_min_version_12(make_proxy: Any, app: Any,
                                                                 certs: Path) -> None:
    install(certs, make_pair(certs, "a"))
    proxy = tls_proxy(make_proxy, certs)
    with pytest.raises(ssl.SSLError):
        TLSClient(proxy.qp.ports["tls"], client_context(ssl.TLSVersion.TLSv1_2))
    proxy12 = tls_proxy(make_proxy, certs,
                        tls_settings={"QUEUE_PROXY_TLS_MIN_VERSION": "1.2"})
    c = TLSClient(proxy12.qp.ports["tls"], client_context(ssl.TLSVersion.TLSv1_2))
    try:
        assert c.sock.version() == "TLSv1.2"
        assert c.get("/echo")[0] == 200
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_a_swapped_pair_is_served_with_no_failed_request(make_proxy: Any, app: Any,
                                                         certs: Path) -> None:
    a, b = make_pair(certs, "a"), make_pair(certs, "b")
    install(certs, a)
    proxy = tls_proxy(make_proxy, certs, certs_check_period=0.1)
    port = proxy.qp.ports["tls"]
    ctx = client_context()
    kept = TLSClient(port, ctx)  # opened before the swap, used after it
    assert kept.get()[0] == 200 and kept.served() == der(a[0])
    failures: list[Any] = []
    seen: list[bytes] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                c = TLSClient(port, ctx)
                try:
                    status, _ = c.get()
                    seen.append(c.served())
                    if status != 200:
                        failures.append(status)
                finally:
                    c.close()
            except Exception as exc:  # noqa: BLE001 - any failure is the test's finding
                failures.append(exc)

    t = threading.Thread(target=load)
    t.start()
    try:
        wait_for(lambda: len(seen) >= 5)
        install(certs, b)
        wait_for(lambda: seen and seen[-1] == der(b[0]), timeout=10)
        n = len(seen)
        wait_for(lambda: len(seen) >= n + 5)
    finally:
        stop.set()
        t.join(10)
    assert failures == []
    assert der(a[0]) in seen
    assert kept.get()[0] == 200 and kept.served() == der(a[0])  # not dropped
    kept.close()


def test_a_bad_pair_keeps_the_last_good_one(certs: Path) -> None:
    a = make_pair(certs, "a")
    install(certs, a)
    ctx = server_context({})
    w = CertWatcher(ctx, str(certs / "tls.crt"), str(certs / "tls.key"), period=60)
    assert not w.load()  # unchanged: nothing reloaded
    (certs / "tls.key").write_bytes(b"not a key")
    with pytest.raises(ssl.SSLError):
        w.load()
    assert w.reloads == 1


BASE = {
    "CONTAINER_CONCURRENCY": "0", "QUEUE_SERVING_PORT": "8012", "QUEUE_SERVING_TLS_PORT": "8112",
    "USER_PORT": "8080", "REVISION_TIMEOUT_SECONDS": "300", "SERVING_NAMESPACE": "ns",
    "SERVING_CONFIGURATION": "c", "SERVING_REVISION": "r", "SERVING_POD": "p",
    "SERVING_POD_IP": "10.0.0.1", "SERVING_LOGGING_CONFIG": "", "SERVING_LOGGING_LEVEL": "info",
}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("QUEUE_PROXY_TLS_MIN_VERSION", "1.1", 'unsupported TLS version "1.1"'),
    ("QUEUE_PROXY_TLS_MAX_VERSION", "tls13", 'unsupported TLS version "tls13"'),
    ("QUEUE_PROXY_TLS_CIPHER_SUITES", "TLS_FOO", 'unknown cipher suite "TLS_FOO"'),
    ("QUEUE_PROXY_TLS_CURVE_PREFERENCES", "CurveP256,Bogus", 'unknown curve "Bogus"'),
])
def test_bad_tls_settings_are_config_errors(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_environ({**BASE, key: value})


def test_tls_settings_and_certs_dir_read_from_the_environment() -> None:
    cfg = from_environ({**BASE, "QUEUE_CERTS_DIR": "/tmp/x", "QUEUE_CERTS_CHECK_PERIOD": "0.5",
                        "QUEUE_PROXY_TLS_MIN_VERSION": "1.2",
                        "QUEUE_PROXY_TLS_CIPHER_SUITES":
                            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256",
                        "QUEUE_PROXY_TLS_CURVE_PREFERENCES": "X25519,CurveP256"})
    assert (cfg.certs_dir, cfg.certs_check_period) == ("/tmp/x", 0.5)
    ctx = server_context(cfg.tls_settings)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert "ECDHE-RSA-AES128-GCM-SHA256" in {c["name"] for c in ctx.get_ciphers()}
    assert from_environ(BASE).certs_dir == "/var/lib/knative/certs"


@pytest.mark.timeout(60)
def test_the_process_serves_tls_and_drains(app: Any, tmp_path: Path) -> None:
    import signal

    from support import knative_env, start_queue_proxy

    pair = make_pair(tmp_path, "a")
    install(tmp_path, pair)
    env = knative_env(app.port, QUEUE_CERTS_DIR=str(tmp_path), QUEUE_DRAIN_QUIET_PERIOD="0")
    proc = start_queue_proxy(env)
    try:
        port = int(env["QUEUE_SERVING_TLS_PORT"])
        c = wait_for(lambda: _connect(port), timeout=10)
        try:
            assert c.served() == der(pair[0])
            assert c.get("/echo")[0] == 200
        finally:
            c.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait(10)


def _connect(port: int) -> TLSClient | None:
    try:
        return TLSClient(port, client_context())
    except OSError:
        return None
