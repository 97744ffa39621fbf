"""The Forwarded shim: cases of knative/serving pkg/queue/forwarded_shim_test.go, and its edges.

Go's handler only calls ``generateForwarded`` when there is no Forwarded header and at least one
X-Forwarded-* header is non-empty; ``forwarded_from`` is that function (absent headers are None).
"""

from __future__ import annotations

import pytest

from proxy.forwarded import forwarded_from


@pytest.mark.parametrize(
    ("xff", "xfh", "xfp", "want"),
    [
        pytest.param(
            b"127.0.0.1, ::1",
            b"h",
            b"p",
            b'for=127.0.0.1;host=h;proto=p, for="[::1]"',
            id="multiple xff",
        ),
        pytest.param(b"127.0.0.1", b"h", b"p", b"for=127.0.0.1;host=h;proto=p", id="single xff"),
        pytest.param(
            b"127.0.0.1, ::1",
            None,
            None,
            b'for=127.0.0.1, for="[::1]"',
            id="multiple xff, no xfh, no xfp",
        ),
        pytest.param(
            b"127.0.0.1, ::1",
            None,
            b"p",
            b'for=127.0.0.1;proto=p, for="[::1]"',
            id="multiple xff, no xfh",
        ),
        pytest.param(
            b"127.0.0.1, ::1",
            b"h",
            None,
            b'for=127.0.0.1;host=h, for="[::1]"',
            id="multiple xff, no xfp",
        ),
        pytest.param(None, b"h", None, b"host=h", id="only xfh"),
        pytest.param(None, None, b"p", b"proto=p", id="only xfp"),
        pytest.param(None, b"h", b"p", b"host=h;proto=p", id="only xfp and xfh"),
        pytest.param(b",,,", None, None, b"for=, for=, for=", id="broken for"),
    ],
)
def test_knative_cases(xff, xfh, xfp, want: bytes) -> None:
    assert forwarded_from(xff, xfh, xfp) == want


def test_spec_example() -> None:
    assert (
        forwarded_from(b"127.0.0.1, ::1", b"h", b"p")
        == b'for=127.0.0.1;host=h;proto=p, for="[::1]"'
    )


def test_no_xff_gives_host_and_proto_only() -> None:
    assert forwarded_from(None, b"h", b"p") == b"host=h;proto=p"


def test_empty_values_count_as_absent() -> None:
    """Go compares with "": an empty header is the same as none."""
    assert forwarded_from(b"", b"h", b"") == b"host=h"
    assert forwarded_from(b"", b"", b"p") == b"proto=p"
    assert forwarded_from(b"", b"", b"") == b""
    assert forwarded_from(None, None, None) == b""


def test_nodes_are_trimmed() -> None:
    assert forwarded_from(b"  1.1.1.1 ,   2.2.2.2  ", None, None) == b"for=1.1.1.1, for=2.2.2.2"


def test_many_nodes_without_spaces() -> None:
    assert (
        forwarded_from(b"127.0.0.1,127.0.0.2,::1", b"localhost", b"http")
        == b'for=127.0.0.1;host=localhost;proto=http, for=127.0.0.2, for="[::1]"'
    )


def test_first_node_ipv6() -> None:
    assert forwarded_from(b"::1", None, b"https") == b'for="[::1]";proto=https'


def test_node_with_port_is_quoted_as_ipv6() -> None:
    """Go's simplification: any node with ':' (even ``host:port``) is written ``"[node]"``."""
    assert forwarded_from(b"10.0.0.1:8080", None, None) == b'for="[10.0.0.1:8080]"'


def test_empty_first_node_keeps_for_and_drops_separator() -> None:
    """Go writes ``for=`` for a non-empty XFF, but ``;`` only after a non-empty first node."""
    assert forwarded_from(b", 1.1.1.1", b"h", b"p") == b"for=host=h;proto=p, for=1.1.1.1"


def test_whitespace_only_xff() -> None:
    assert forwarded_from(b"   ", None, None) == b"for="


def test_trailing_comma_adds_no_node() -> None:
    """Go's consumeNode stops when the cursor passes the end: a trailing comma adds nothing."""
    assert forwarded_from(b"1.1.1.1,", None, None) == b"for=1.1.1.1"
    assert forwarded_from(b"1.1.1.1, ", None, None) == b"for=1.1.1.1, for="


def test_host_and_proto_are_not_trimmed_or_rewritten() -> None:
    assert (
        forwarded_from(b"a", b"Example.COM:443", b"HTTPS")
        == b"for=a;host=Example.COM:443;proto=HTTPS"
    )
