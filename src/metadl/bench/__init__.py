"""Reproduce published few-shot results (``metadl bench``): the table, the runner and its report."""

from metadl.bench.runner import BenchSettings, run_bench
from metadl.bench.table import ROWS, Cell, Row, find_rows

__all__ = ["ROWS", "BenchSettings", "Cell", "Row", "find_rows", "run_bench"]
