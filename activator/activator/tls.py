"""System-internal TLS for the activator, as Knative's (``cmd/activator``,
``pkg/activator/certificate``, ``pkg/activator/handler``) does it with ``system-internal-tls``
enabled in ``config-network``.

- Certificates: Knative reads the ``routing-serving-certs`` Secret (``tls.crt``, ``tls.key``,
  ``ca.crt``) and the trust-bundle ConfigMaps through informers; we read the same files from a
  directory (the Secret mounted as a volume) and, optionally, every ``*.pem``/``*.crt`` of a
  trust-bundle directory. Both are checked every ``check_period`` seconds and reloaded when
  their sha256 changes (new handshakes use the new files; open connections are kept).
- Server: the activator also serves TLS on 8112 (``networking.BackendHTTPSPort``), with
  ``knative.dev/pkg/network/tls.DefaultConfigFromEnv("ACTIVATOR_")``: ``ACTIVATOR_TLS_MIN_VERSION``
  (default 1.3), ``_MAX_VERSION``, ``_CIPHER_SUITES``, ``_CURVE_PREFERENCES``. Plain HTTP stays on.
- Client: requests go to each pod's queue-proxy on 8112 instead of the port its endpoint names
  (Knative's ``useSecurePort``), over TLS 1.3 at least, verified against ``ca.crt`` and the trust
  bundles, for the name ``data-plane.knative.dev`` (``certificates.LegacyFakeDnsName``). HTTP/2
  requests go as h2 (ALPN) rather than h2c. Readiness probes stay plain HTTP on the endpoint's
  port, as Knative's (its TODO: knative/serving#12821).

A difference forced by Python's ``ssl``: a CA can be added to a context, never taken out, so a
CA removed from the files stays trusted until the process restarts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
from collections.abc import Mapping

from proxy.tls import CERT_NAME, KEY_NAME, CertWatcher, server_context

__all__ = ["ActivatorTLS", "BACKEND_HTTPS_PORT", "CA_NAME", "DATA_PLANE_NAME"]

log = logging.getLogger("activator.tls")

BACKEND_HTTPS_PORT = 8112  # networking.BackendHTTPSPort: the activator's and the pods' TLS port
DATA_PLANE_NAME = "data-plane.knative.dev"  # certificates.LegacyFakeDnsName
CA_NAME = "ca.crt"
CHECK_PERIOD = 60.0


class ActivatorTLS:
    """The activator's TLS contexts from a certificate directory (``tls.crt``, ``tls.key``,
    ``ca.crt``) and an optional trust-bundle directory. ``ValueError`` (``TLSConfigError``) on
    bad ``ACTIVATOR_TLS_*`` values; ``OSError``/``ssl.SSLError`` when the pair cannot be read:
    as Knative's activator, which will not start without its certificate."""

    def __init__(self, certs_dir: str, *, trust_dir: str | None = None,
                 env: Mapping[str, str] | None = None, pod_port: int = BACKEND_HTTPS_PORT,
                 server_name: str = DATA_PLANE_NAME,
                 check_period: float = CHECK_PERIOD) -> None:
        self.certs_dir = certs_dir
        self.trust_dir = trust_dir
        self.pod_port = pod_port
        self.server_name = server_name
        cert = os.path.join(certs_dir, CERT_NAME)
        key = os.path.join(certs_dir, KEY_NAME)
        self.server = server_context(os.environ if env is None else env, "ACTIVATOR_")
        self.watcher = CertWatcher(self.server, cert, key, check_period)  # loads the pair now
        self.client = self._client_context(["http/1.1"])
        self.client_h2 = self._client_context(["h2"])
        self.check_period = check_period
        self._trusted: dict[str, str] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.load_trust()

    @staticmethod
    def _client_context(alpn: list[str]) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols(alpn)
        return ctx

    def trust_files(self) -> list[str]:
        """``ca.crt`` of the certificate directory (if there) and the trust bundles."""
        files = []
        ca = os.path.join(self.certs_dir, CA_NAME)
        if os.path.exists(ca):
            files.append(ca)
        if self.trust_dir and os.path.isdir(self.trust_dir):
            for name in sorted(os.listdir(self.trust_dir)):
                if name.endswith((".pem", ".crt")):
                    files.append(os.path.join(self.trust_dir, name))
        return files

    def load_trust(self) -> bool:
        """Adds the CAs of any trust file new or changed since the last call; True if any."""
        changed = False
        for path in self.trust_files():
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as exc:
                log.warning("cannot read the trust file %s: %s", path, exc)
                continue
            digest = hashlib.sha256(data).hexdigest()
            if self._trusted.get(path) == digest:
                continue
            try:
                text = data.decode("ascii")
                self.client.load_verify_locations(cadata=text)
                self.client_h2.load_verify_locations(cadata=text)
            except (ssl.SSLError, ValueError) as exc:
                # Knative: "CA from Secret ... is invalid and will be ignored"
                log.warning("the CA in %s is invalid and will be ignored: %s", path, exc)
                continue
            self._trusted[path] = digest
            changed = True
        return changed

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Checks the certificate pair and the trust files every ``check_period`` seconds."""
        self.watcher.start(loop)
        if self._timer is None:
            self._timer = loop.call_later(self.check_period, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.load_trust():
            log.info("trust bundle changed; new CAs are trusted for new connections to pods")
        self._timer = loop.call_later(self.check_period, self._tick, loop)

    def stop(self) -> None:
        self.watcher.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
