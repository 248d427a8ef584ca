"""Measurement results (contract 4): the record, its statistics, the JSONL store and the one table view.

Plain data only (json, math; pandas for frames): the report reads results where neither torch nor a runtime is
installed. The bench stage writes records through :class:`ResultStore`; every reader (``mobileseg results``, the
report, the bench summary) reads them through :mod:`mobileseg.results.store` and flattens them with
:func:`mobileseg.results.table.row`, so a rule such as "a tool summary without a median reports its mean" holds in
one place.
"""

from .record import SCHEMA_VERSION, LatencyRecord, cell_key, validate_record
from .stats import summarize
from .store import ResultStore, read_records

__all__ = ["SCHEMA_VERSION", "LatencyRecord", "cell_key", "validate_record", "summarize", "ResultStore", "read_records"]
