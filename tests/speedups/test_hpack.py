"""The compiled HPACK codec (``_speedups._hpack_c``) against its reference and pure twin, the
``hpack`` library: same headers out of the same blocks, blocks the reference decodes back, the
same errors on malformed input, the header list limit enforced as it decodes."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import hpack
import pytest
from hpack.exceptions import (
    HPACKDecodingError,
    InvalidTableIndexError,
    InvalidTableSizeError,
    OversizedHeaderListError,
)
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def c() -> ModuleType:
    try:
        return importlib.import_module("_speedups._hpack_c")
    except ImportError as exc:
        if os.environ.get("DATAPLANE_NO_EXTENSIONS"):
            pytest.skip(f"compiled HPACK not built and DATAPLANE_NO_EXTENSIONS is set: {exc}")
        pytest.fail(f"_speedups._hpack_c not importable ({exc}); build with `pip install -e .`")


NAMES = [b":method", b":path", b":authority", b":scheme", b":status", b"user-agent", b"accept",
         b"cookie", b"content-type", b"grpc-status", b"x-custom", b"x-\xff"]
header = st.tuples(st.sampled_from(NAMES) | st.binary(min_size=1, max_size=20),
                   st.binary(max_size=300))
blocks = st.lists(st.lists(header, max_size=12), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(blocks=blocks, huffman=st.booleans(), table=st.sampled_from([0, 64, 256, 4096]))
def test_decodes_what_the_reference_encodes(c: ModuleType, blocks: list, huffman: bool,
                                            table: int) -> None:
    ref = hpack.Encoder()
    ref.header_table_size = table  # size updates in the blocks, and evictions
    ours = c.Decoder()
    ours.max_header_list_size = 1 << 30
    for hs in blocks:
        assert ours.decode(ref.encode(hs, huffman=huffman), raw=True) == hs


@settings(max_examples=300, deadline=None)
@given(blocks=blocks)
def test_the_reference_decodes_what_it_encodes(c: ModuleType, blocks: list) -> None:
    ours = c.Encoder()
    ref = hpack.Decoder()
    ref.max_header_list_size = 1 << 30
    for hs in blocks:
        assert [tuple(h) for h in ref.decode(ours.encode(hs), raw=True)] == hs


@pytest.mark.parametrize("block,error", [
    (b"\x80", InvalidTableIndexError),  # index 0
    (b"\xbe", InvalidTableIndexError),  # index 62: the dynamic table is empty
    (b"\x40\x05ab", HPACKDecodingError),  # a string longer than the block
    (b"\x7f", HPACKDecodingError),  # an integer cut short
    (b"\x7f\xff\xff\xff\xff\xff\x01", HPACKDecodingError),  # an integer too large
    (b"\x3f\xe2\x1f", InvalidTableSizeError),  # a size update over the allowed 4096
    (b"\x82\x20", HPACKDecodingError),  # a size update after a field
    (b"\x00\x81\x00\x01a", HPACKDecodingError),  # Huffman: padding of zeros
    (b"\x00\x84\xff\xff\xff\xff\x01a", HPACKDecodingError),  # Huffman: EOS in the string
], ids=["index-0", "index-62", "long-string", "short-integer", "huge-integer",
        "table-too-big", "late-size-update", "bad-padding", "eos"])
def test_malformed_blocks_raise_what_hpack_raises(c: ModuleType, block: bytes,
                                                  error: type) -> None:
    with pytest.raises(error):
        hpack.Decoder().decode(block, raw=True)
    with pytest.raises(error):
        c.Decoder().decode(block, raw=True)


def test_the_header_list_limit_stops_a_bomb(c: ModuleType) -> None:
    ref = hpack.Encoder()
    block = ref.encode([(b"x-bomb", b"b" * 4000)]) + bytes([0x80 | 62]) * 400
    d = c.Decoder()
    d.max_header_list_size = 1 << 20
    with pytest.raises(OversizedHeaderListError):
        d.decode(block, raw=True)


def test_the_encoder_never_grows_the_peers_table(c: ModuleType) -> None:
    ours = c.Encoder()
    ref = hpack.Decoder()
    ref.decode(ours.encode([(b"x-a", b"1"), (b":method", b"GET")]), raw=True)
    ref.decode(ours.encode([(b"x-b", b"2")]), raw=True)
    assert len(ref.header_table.dynamic_entries) == 0
    assert ours.encode([(b":method", b"GET")]) == b"\x82"  # whole in the static table: 1 byte
