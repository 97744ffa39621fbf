# Type checkers see the pure twin's signatures; at run time the selector may load _h1_c.
from _speedups._h1_py import HttptoolsRequestParser as HttptoolsRequestParser
from _speedups._h1_py import HttptoolsResponseParser as HttptoolsResponseParser

__all__ = ["HttptoolsRequestParser", "HttptoolsResponseParser", "USING_EXTENSIONS"]

USING_EXTENSIONS: bool
