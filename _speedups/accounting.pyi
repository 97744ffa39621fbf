# Type checkers see the pure twin's signatures; at run time the selector may load _accounting_c.
from _speedups._accounting_py import Histogram as Histogram
from _speedups._accounting_py import HistogramGroup as HistogramGroup
from _speedups._accounting_py import RequestStats as RequestStats
from _speedups._accounting_py import StatReport as StatReport

__all__ = ["RequestStats", "StatReport", "Histogram", "HistogramGroup", "USING_EXTENSIONS"]

USING_EXTENSIONS: bool
