"""System-internal TLS, as Knative's queue-proxy serves it.

With ``tls.crt`` and ``tls.key`` in the certificate directory (Knative mounts them at
``/var/lib/knative/certs``; ours may be moved with ``QUEUE_CERTS_DIR``), the main handler is also
served over TLS on ``QUEUE_SERVING_TLS_PORT``, HTTP/1.1 and h2 (ALPN), with the settings of
``knative.dev/pkg/network/tls.DefaultConfigFromEnv("QUEUE_PROXY_")``: ``TLS_MIN_VERSION`` (1.2
or 1.3, default 1.3), ``TLS_MAX_VERSION``, ``TLS_CIPHER_SUITES`` (Go's names, for TLS 1.2; TLS
1.3's suites are fixed, in Go as in OpenSSL) and ``TLS_CURVE_PREFERENCES`` (Go's names).

``CertWatcher`` is Knative's ``certificate.CertWatcher``: it reads the pair at start, then every
check period (Knative: a minute) compares the files' sha256 with what it loaded and reloads
them when either changed. The reload goes into the same ``ssl.SSLContext``: new handshakes
present the new certificate, connections already open keep theirs and are not dropped.

Differences, each forced by Python's ``ssl`` module: ``TLS_CURVE_PREFERENCES`` sets one group,
the first of the list (``SSLContext.set_ecdh_curve``); ``X25519MLKEM768`` is refused (OpenSSL 3.0
has no ML-KEM).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
from collections.abc import Mapping

__all__ = ["CERT_NAME", "KEY_NAME", "CertWatcher", "TLSConfigError", "server_context"]

log = logging.getLogger("proxy.tls")

CERT_NAME = "tls.crt"  # knative.dev/networking/pkg/certificates: CertName, PrivateKeyName
KEY_NAME = "tls.key"
RELOAD_MESSAGE = "Certificate and/or key have changed on disk and were reloaded."

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

# Go's crypto/tls.CipherSuites() names -> OpenSSL's. The TLS 1.3 suites are accepted and, as in
# Go, change nothing.
_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": "",
    "TLS_AES_256_GCM_SHA384": "",
    "TLS_CHACHA20_POLY1305_SHA256": "",
}

# Go's curve names -> OpenSSL's group names.
_CURVES = {
    "CurveP256": "prime256v1", "P-256": "prime256v1",
    "CurveP384": "secp384r1", "P-384": "secp384r1",
    "CurveP521": "secp521r1", "P-521": "secp521r1",
    "X25519": "X25519",
}


class TLSConfigError(ValueError):
    """A malformed QUEUE_PROXY_TLS_* variable (Knative: the process exits)."""


def server_context(env: Mapping[str, str], prefix: str = "QUEUE_PROXY_") -> ssl.SSLContext:
    """A server context with Knative's settings from ``env`` (no certificate loaded yet)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3  # Knative's default
    for key, attr in (("TLS_MIN_VERSION", "minimum_version"),
                      ("TLS_MAX_VERSION", "maximum_version")):
        value = env.get(prefix + key, "")
        if value:
            if value not in _VERSIONS:
                raise TLSConfigError(
                    f'invalid {prefix}{key} "{value}": unsupported TLS version "{value}": '
                    f'must be "1.2" or "1.3"')
            setattr(ctx, attr, _VERSIONS[value])
    suites = env.get(prefix + "TLS_CIPHER_SUITES", "")
    if suites:
        names = []
        for name in (s.strip() for s in suites.split(",")):
            if not name:
                continue
            if name not in _CIPHERS:
                raise TLSConfigError(
                    f'invalid {prefix}TLS_CIPHER_SUITES: unknown cipher suite "{name}"')
            if _CIPHERS[name]:
                names.append(_CIPHERS[name])
        if names:
            ctx.set_ciphers(":".join(names))
    curves = env.get(prefix + "TLS_CURVE_PREFERENCES", "")
    if curves:
        groups = []
        for name in (s.strip() for s in curves.split(",")):
            if not name:
                continue
            if name not in _CURVES:
                raise TLSConfigError(
                    f'invalid {prefix}TLS_CURVE_PREFERENCES: unknown curve "{name}"')
            groups.append(_CURVES[name])
        if groups:
            ctx.set_ecdh_curve(groups[0])  # Python's ssl sets one group
    ctx.set_alpn_protocols(["h2", "http/1.1"])  # Go's server offers both
    return ctx


class CertWatcher:
    """Loads ``cert_path`` and ``key_path`` into ``ctx`` now, then every ``period`` seconds if
    either file's sha256 changed (Knative's CertWatcher, which checks every minute)."""

    def __init__(self, ctx: ssl.SSLContext, cert_path: str, key_path: str,
                 period: float = 60.0) -> None:
        self.ctx = ctx
        self.cert_path = cert_path
        self.key_path = key_path
        self.period = period
        self.sums: tuple[bytes, bytes] | None = None
        self.reloads = 0
        self._timer: asyncio.TimerHandle | None = None
        self.load()  # the first load's errors are the caller's (Knative: fatal)

    def load(self) -> bool:
        """Reloads the pair if it changed; True if it did. Raises if a file cannot be read or
        the pair does not parse (the context keeps its last good pair)."""
        with open(self.cert_path, "rb") as f:
            cert = f.read()
        with open(self.key_path, "rb") as f:
            key = f.read()
        sums = (hashlib.sha256(cert).digest(), hashlib.sha256(key).digest())
        if sums == self.sums:
            return False
        self.ctx.load_cert_chain(self.cert_path, self.key_path)
        self.sums = sums
        self.reloads += 1
        log.info(RELOAD_MESSAGE)
        return True

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(self.period, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.load()
        except (OSError, ssl.SSLError) as exc:  # Knative logs it and tries again next time
            log.error("failed to reload the TLS certificate: %s", exc)
        self._timer = loop.call_later(self.period, self._tick, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def cert_paths(certs_dir: str) -> tuple[str, str] | None:
    """The pair's paths if both files exist (Knative: TLS is on when they are mounted)."""
    cert = os.path.join(certs_dir, CERT_NAME)
    key = os.path.join(certs_dir, KEY_NAME)
    return (cert, key) if os.path.exists(cert) and os.path.exists(key) else None
