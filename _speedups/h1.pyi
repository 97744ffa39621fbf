# Type checkers see the pure twin's signatures; at run time the selector may load _h1_c.
from _speedups._h1_py import HttptoolsRequestParser as HttptoolsRequestParser
from _speedups._h1_py import HttptoolsResponseParser as HttptoolsResponseParser
from _speedups._h1_py import RequestSink as RequestSink
from _speedups._h1_py import ResponseSink as ResponseSink

__all__ = [
    "HttptoolsRequestParser", "HttptoolsResponseParser", "RequestSink", "ResponseSink",
    "USING_EXTENSIONS",
]

USING_EXTENSIONS: bool
