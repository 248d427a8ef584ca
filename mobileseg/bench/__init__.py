"""Benchmarking: measurement records, statistics, the JSONL results store, suites, targets and the runner.

    from mobileseg.bench import run_bench
    records = run_bench(models=["topformer-t"], resolutions=[448], runtimes=["onnxruntime"], device="local")
"""
from .record import SCHEMA_VERSION, LatencyRecord, cell_key
from .runner import BenchRun, run_bench
from .stats import summarize
from .store import ResultStore, read_records
from .suite import Cell, Suite, SuiteError, load_suite

__all__ = ["SCHEMA_VERSION", "LatencyRecord", "cell_key", "run_bench", "BenchRun", "summarize", "ResultStore",
           "read_records", "Cell", "Suite", "SuiteError", "load_suite"]
