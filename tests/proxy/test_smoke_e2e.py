from __future__ import annotations

from support import Client, request


def test_get_through_proxy(proxy, app):
    r = request(proxy.port, "GET", "/echo?x=1", [("X-Test", "a")])
    assert r.status == 200
    seen = r.json()
    assert seen["target"] == "/echo?x=1"
    assert ["X-Test", "a"] in seen["headers"]


def test_keepalive_reuses_upstream(proxy, app):
    with Client(proxy.port) as c:
        for _ in range(5):
            c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response().status == 200
    assert app.connections == 1
