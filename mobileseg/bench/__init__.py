"""Benchmarking: suites, targets and the runner (records, statistics and the store: :mod:`mobileseg.results`).

    from mobileseg.bench import run_bench
    records = run_bench(models=["topformer-t"], resolutions=[448], runtimes=["onnxruntime"], device="local")
"""
from ..results.record import SCHEMA_VERSION, LatencyRecord, cell_key
from .runner import BenchRun, run_bench
from ..results.stats import summarize
from ..results.store import ResultStore, read_records
from .suite import Cell, Suite, SuiteError, load_suite

__all__ = ["SCHEMA_VERSION", "LatencyRecord", "cell_key", "run_bench", "BenchRun", "summarize", "ResultStore",
           "read_records", "Cell", "Suite", "SuiteError", "load_suite"]
