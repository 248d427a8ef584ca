"""Benchmarking: suites, targets and the one bench loop (records, statistics and the store: :mod:`mobileseg.results`).

    from mobileseg.bench import run_bench
    records = run_bench(models=["topformer-t"], resolutions=[448], runtimes=["onnxruntime"], device="local")

Other stages that measure cells use the loop's pieces: :class:`BenchSettings` (every option, validated once),
``BenchSettings(...).timing()`` and :func:`measure_cell` (one cell on an opened target -> one record).
"""

from ..results.record import SCHEMA_VERSION, LatencyRecord, cell_key
from .runner import BenchRun, measure_cell, run_bench
from .settings import BenchSettings
from ..results.stats import summarize
from ..results.store import ResultStore, read_records
from .suite import Cell, Suite, SuiteError, load_suite

__all__ = [
    "SCHEMA_VERSION",
    "LatencyRecord",
    "cell_key",
    "run_bench",
    "BenchRun",
    "BenchSettings",
    "measure_cell",
    "summarize",
    "ResultStore",
    "read_records",
    "Cell",
    "Suite",
    "SuiteError",
    "load_suite",
]
