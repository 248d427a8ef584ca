"""The report's per-op section: for each profiled cell (``bench --profile``), its top-10 ops as a bar plot and a
table. Profiles of numerics-only records (emulated, software Vulkan) are left out like their latencies."""

from __future__ import annotations

from ..results.paths import slug as _slug
from ..results.store import read_records
from ..results.table import device_label, numerics_only
from .tables import html_table, markdown_table

TOP = 10


def top_ops_section(report, results, df) -> None:
    """Add a top-ops plot and table per profiled cell of ``results`` that ``df`` (the report's filtered cells) keeps."""
    import pandas as pd

    from . import plots

    keep = set(df.id) if df is not None and len(df) else set()
    records, _ = read_records(results)
    newest = {}
    for r in sorted(records, key=lambda r: str(r.get("timestamp") or "")):
        prof = r.get("profile") or {}
        if r.get("id") in keep and prof.get("ops") and not numerics_only(r):
            newest[r["id"]] = r
    for r in newest.values():
        prof = r["profile"]
        h, w = r["resolution"]
        cell = f"{r['model']} {h}x{w} {r['runtime']} {r.get('precision', 'fp32')} on {device_label(r.get('device'))}"
        title = f"Top {TOP} ops: {cell} ({prof['source']}, {prof.get('runs')} runs)"
        paths = plots.top_ops(prof["ops"], report.out / f"ops-{_slug(cell)}", title, n=TOP)
        report.plots.append((title, paths))
        t = pd.DataFrame(prof["ops"][:TOP]).assign(share_pct=lambda d: 100 * d.share)
        cols = {"name": "op", "type": "type", "module": "module", "median_ms": "median (ms)", "share_pct": "share (%)"}
        digits = {"median_ms": 4, "share_pct": 1}
        report.tables.append((title, markdown_table(t, cols, digits), html_table(t, cols, digits)))
