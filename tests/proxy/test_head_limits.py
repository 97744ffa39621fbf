"""Head size limits, Go's (``proxy.engine.parsers.MAX_REQUEST_HEAD`` and ``MAX_RESPONSE_HEAD``):
request heads up to ``http.DefaultMaxHeaderBytes`` (1 MiB) plus the 4 KiB Go's server allows
beyond it, then 431; response heads up to the transport's 10 MiB, then 502. Both fronts, both
parser backends (the ``front`` fixture)."""

from __future__ import annotations

from typing import Any

import pytest
from fronts import Front
from support import App

from proxy.engine.parsers import MAX_REQUEST_HEAD, MAX_RESPONSE_HEAD

KIB = 1024


def test_the_limits_are_gos() -> None:
    assert MAX_REQUEST_HEAD == (1 << 20) + 4096
    assert MAX_RESPONSE_HEAD == 10 << 20


@pytest.mark.timeout(60)
def test_a_request_head_of_900_kib_reaches_the_app(front: Front, app: App) -> None:
    cookie = "c" * (900 * KIB)  # a big session cookie: 64 KiB used to be the limit here
    r = front.request("GET", "/echo", [("Cookie", cookie)])
    assert r.status == 200, r.status
    assert [v for n, v in r.json()["headers"] if n.lower() == "cookie"] == [cookie]


@pytest.mark.timeout(60)
def test_a_request_head_over_the_limit_gets_431_and_never_reaches_the_app(
        front: Front, app: App) -> None:
    r = front.request("GET", "/echo", [("Cookie", "c" * (MAX_REQUEST_HEAD + 16))])
    assert r.status == 431, r.status
    assert not any(q.path == "/echo" for q in app.requests)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kib", [200, 2 * 1024])
def test_a_big_response_head_is_relayed(front: Front, app: Any, kib: int) -> None:
    r = front.request("GET", f"/bighead?kib={kib}")
    assert r.status == 200, r.status
    assert len(r.header("X-Big") or "") == kib * KIB
    assert r.body == b"ok"


@pytest.mark.timeout(60)
def test_a_response_head_over_10_mib_is_a_502(front: Front, app: Any) -> None:
    r = front.request("GET", f"/bighead?kib={10 * 1024 + 8}")
    assert r.status == 502, r.status
    # Knative's body, Go's transport's words (checked against Knative's binary)
    assert r.body == (b"net/http: HTTP/1.x transport connection broken: net/http: server "
                      b"response headers exceeded 10485760 bytes; aborted\n")
