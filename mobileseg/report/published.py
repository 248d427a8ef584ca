"""The papers' published numbers (``results/published.csv``) as a pandas DataFrame.

Every row of the papers' result tables is one row of the CSV (one row per dataset when a table row covers several),
with its source (``paper_file``: the paper, ``table``), the numbers as printed, and ``model``:
our registered model name when we define that network. Derived values (sums of backbone + head) say so in ``notes``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..resources import project_path
from .errors import PublishedDataError

COLUMNS = [
    "paper_file",
    "table",
    "method",
    "encoder",
    "dataset",
    "split",
    "resolution",
    "params_m",
    "gflops",
    "gflops_backbone",
    "gflops_head",
    "miou",
    "miou_ms",
    "top1",
    "latency_ms",
    "latency_device",
    "fps",
    "fps_device",
    "notes",
    "model",
]
NUMERIC = ["params_m", "gflops", "gflops_backbone", "gflops_head", "miou", "miou_ms", "top1", "latency_ms", "fps"]
TOPFORMER_PAPER = "000_c195a235d6102671.txt"
# The table whose latencies are the paper's Snapdragon 865 figures (Figure 1 of the TopFormer paper).
FIGURE1_TABLE = "Table 1"
# ``paper_file`` (the name of the paper's text in the project's sources) -> the paper, as a reader names it.
PAPERS = {
    TOPFORMER_PAPER: "TopFormer paper",
    "001_be9ae0a5fe81e4f4.txt": "TopFormer supplementary material",
    "002_0b96ee80c357e09e.txt": "XFormer paper (cross feature attention)",
    "003_19de7a82edf0e122.txt": "SegFormer paper",
}


def source_name(paper_file: str, table: str) -> str:
    """``"TopFormer paper, Table 1"``: where a published number comes from, in a reader's words."""
    return f"{PAPERS.get(paper_file, paper_file)}, {table}" if table else PAPERS.get(paper_file, paper_file)


def default_path() -> Path:
    """``$MOBILESEG_PUBLISHED`` if set, else ``results/published.csv`` of the source tree."""
    env = os.environ.get("MOBILESEG_PUBLISHED")
    if env:
        return Path(env)
    return project_path("results", "published.csv")


def load_published(path=None):
    """Read ``published.csv`` (numbers as floats, empty cells as NaN, text cells as '')."""
    import pandas as pd

    path = Path(path) if path else default_path()
    if not path.is_file():
        raise PublishedDataError(
            f"published numbers not found at {path}: run from a source checkout of mobileseg "
            "or point MOBILESEG_PUBLISHED at a copy of results/published.csv"
        )
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise PublishedDataError(f"{path} is not mobileseg's published.csv (missing columns: {', '.join(missing)})")
    for c in NUMERIC:
        df[c] = pd.to_numeric(df[c].replace("", None), errors="coerce")
    return df


def figure1_rows(df=None):
    """The rows of the TopFormer paper's Table 1 (ADE20K val, Snapdragon 865 latency): the data of its Figure 1."""
    df = load_published() if df is None else df
    rows = df[(df.paper_file == TOPFORMER_PAPER) & (df.table == FIGURE1_TABLE)].copy()
    rows["label"] = [_label(r) for r in rows.itertuples()]
    rows["is_topformer"] = rows.method.str.startswith("TopFormer")
    return rows.reset_index(drop=True)


_SHORT = {
    "MobileNetV2": "MBV2",
    "MobileNetV3-Large": "MBV3-L",
    "MobileNetV3-Large-reduce": "MBV3-L-reduce",
    "EfficientNet": "EffNet",
    "ShuffleNetV2-1.5x": "ShuffleV2-1.5x",
}


def _label(r) -> str:
    if r.method.startswith("TopFormer"):
        return r.encoder + ("†" if r.resolution == "448x448" else "")
    if r.method == r.encoder:
        return r.method
    return f"{r.method} ({_SHORT.get(r.encoder, r.encoder)})"


def lookup_miou(df, model: str, dataset: str, resolution=None):
    """Published mIoU of one of our models on a dataset: ``(miou, source)`` or ``(None, None)``."""
    miou, source, _res = lookup_miou_at(df, model, dataset, resolution)
    return miou, source


def lookup_miou_at(df, model: str, dataset: str, resolution=None):
    """:func:`lookup_miou` plus the resolution the mIoU was published at (``"512x512"``): ``(miou, source, res)``.

    Preference: a row at the same resolution, then the TopFormer paper's Table 1 (the numbers of Figure 1), then
    SegFormer's main tables, then any. ``source`` names the paper and table (:func:`source_name`).
    """
    rows = df[(df.model == model) & (df.dataset == dataset) & df.miou.notna()]
    if rows.empty:
        return None, None, None
    res = f"{resolution[0]}x{resolution[1]}" if resolution is not None else None

    def rank(r):
        return (
            (0 if res and r.resolution == res else 1),
            (0 if r.table == FIGURE1_TABLE and r.paper_file == TOPFORMER_PAPER else 1),
            (0 if r.table in ("Table 1a", "Table 2") else 1),
        )

    best = min(rows.itertuples(), key=rank)
    return float(best.miou), source_name(best.paper_file, best.table), (best.resolution or None)


def paper_latency(df, model: str, resolution=None, exact: bool = False):
    """The TopFormer paper's Snapdragon 865 latency (ms) of one of our models, or None (``exact``: only at
    ``resolution``, never another input size's latency)."""
    rows = figure1_rows(df)
    rows = rows[(rows.model == model) & rows.latency_ms.notna()]
    if rows.empty:
        return None
    if resolution is not None:
        same = rows[rows.resolution == f"{resolution[0]}x{resolution[1]}"]
        if not same.empty:
            return float(same.latency_ms.iloc[0])
        if exact:
            return None
    plain = rows[rows.resolution == "512x512"]
    return float((plain if not plain.empty else rows).latency_ms.iloc[0])


def figure1_resolutions(df, model: str) -> list[str]:
    """The input sizes at which the TopFormer paper's Table 1 gives ``model`` a latency (``["512x512"]``; empty when
    the table does not time it)."""
    rows = figure1_rows(df)
    return list(dict.fromkeys(rows[(rows.model == model) & rows.latency_ms.notna()].resolution))
