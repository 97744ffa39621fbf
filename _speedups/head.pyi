# Type checkers see the pure twin's signatures; at run time the selector may load _head_c.
from _speedups._head_py import build_head as build_head
from _speedups._head_py import connection_tokens as connection_tokens
from _speedups._head_py import h2_frame as h2_frame
from _speedups._head_py import h2_headers as h2_headers
from _speedups._head_py import join_bytes as join_bytes
from _speedups._head_py import scan_headers as scan_headers
from _speedups._head_py import valid_host as valid_host

__all__ = [
    "scan_headers", "build_head", "connection_tokens", "valid_host", "join_bytes",
    "h2_headers", "h2_frame", "USING_EXTENSIONS",
]

USING_EXTENSIONS: bool
