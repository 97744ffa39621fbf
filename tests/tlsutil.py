"""Helpers of the TLS tests: self-signed pairs made with the ``openssl`` command, and a small
TLS client that reads HTTP/1.1 answers."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
from pathlib import Path

__all__ = ["TLSClient", "client_context", "der", "install", "make_ca_pair", "make_pair"]


def make_pair(directory: Path, name: str) -> tuple[bytes, bytes]:
    """A self-signed EC pair for 127.0.0.1 (CN ``name``), as PEM bytes."""
    work = directory / f".{name}"
    work.mkdir(exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(work / "k"), "-out", str(work / "c"), "-days", "2",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30)
    return (work / "c").read_bytes(), (work / "k").read_bytes()


def make_ca_pair(directory: Path, name: str, san: str = "DNS:data-plane.knative.dev,IP:127.0.0.1",
                 ) -> tuple[bytes, bytes, bytes]:
    """A CA (CN ``name`` CA) and a pair it signed for ``san``, as Knative's
    ``routing-serving-certs`` Secret holds them: (tls.crt, tls.key, ca.crt), PEM bytes."""
    work = directory / f".{name}"
    work.mkdir(exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    run("req", "-x509", *ec, "-keyout", str(work / "ca.k"), "-out", str(work / "ca.c"),
        "-days", "2", "-subj", f"/CN={name} CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    run("req", *ec, "-keyout", str(work / "k"), "-out", str(work / "csr"), "-subj", f"/CN={name}")
    (work / "ext").write_text(f"subjectAltName={san}\n")
    run("x509", "-req", "-in", str(work / "csr"), "-CA", str(work / "ca.c"), "-CAkey",
        str(work / "ca.k"), "-CAcreateserial", "-out", str(work / "c"), "-days", "2",
        "-extfile", str(work / "ext"))
    return (work / "c").read_bytes(), (work / "k").read_bytes(), (work / "ca.c").read_bytes()


def install(directory: Path, pair: tuple[bytes, bytes]) -> None:
    """Puts the pair in place the way a volume update does: each file replaced whole."""
    for data, name in zip(pair, ("tls.crt", "tls.key"), strict=True):
        tmp = directory / f"{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)


def der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def client_context(version: ssl.TLSVersion | None = None,
                   alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the served certificate is compared by its bytes
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


class TLSClient:
    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = ctx.wrap_socket(raw)
        self.buf = b""

    def get(self, target: str = "/echo", headers: bytes = b"") -> tuple[int, bytes]:
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: example.com\r\n".encode()
                          + headers + b"\r\n")
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(int(v) for n, _, v in (ln.partition(b":") for ln in lines[1:])
                      if n.strip().lower() == b"content-length")
        while len(rest) < length:
            rest += self._recv()
        self.buf = rest[length:]
        return status, rest[:length]

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        return data

    def served(self) -> bytes:
        cert = self.sock.getpeercert(binary_form=True)
        assert cert is not None
        return cert

    def close(self) -> None:
        self.sock.close()
