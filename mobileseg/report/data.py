"""Measurement records (contract 4) and eval records read into pandas DataFrames, one row per record.

Only ``json`` and ``pandas`` are needed: the report runs where neither torch nor any runtime is installed.
"""

from __future__ import annotations

from pathlib import Path

from ..results.store import read_records
from ..results.table import device_label, frame  # noqa: F401  (device_label: re-exported)
from .errors import NoRecordsError

# Keys without which a line is not one of our measurement records.
REQUIRED = ("model", "resolution", "format", "runtime", "stats_ms")
EVAL_REQUIRED = ("model", "dataset", "miou", "format")


def load_results(paths, device=None, runtime=None, model=None, include_failed: bool = False):
    """Read measurement records into a DataFrame (one row per cell; the newest record wins when a cell repeats).

    Filters (case-insensitive; each may be a string or a list): ``device`` matches the device label, kind, serial,
    model or SoC; ``runtime`` the runtime name or format; ``model`` the model name. Records with status other than
    "ok" are dropped unless ``include_failed``. Raises :class:`NoRecordsError` naming what is available when no
    record is left.
    """
    import pandas as pd

    records, notes = read_records(paths, REQUIRED)
    if not records:
        raise NoRecordsError(
            f"the results file(s) {', '.join(map(str, paths))} hold no records: run `mobileseg bench` first"
        )
    df = frame(records)
    every = df
    if not include_failed:
        df = df[df.status == "ok"]
    for values, cols in (
        (device, ["device", "device_kind", "device_serial", "device_model", "device_soc"]),
        (runtime, ["runtime", "format"]),
        (model, ["model"]),
    ):
        if values:
            values = [values] if isinstance(values, str) else list(values)
            wanted = {v.lower() for v in values}
            hit = pd.Series(False, index=df.index)
            for c in cols:
                hit |= df[c].astype(str).str.lower().isin(wanted)
            df = df[hit]
    if df.empty:
        raise NoRecordsError(
            "no measurement matches the filters "
            f"(device={device or 'any'}, runtime={runtime or 'any'}, model={model or 'any'}); available: "
            f"devices {sorted(set(every.device))}, runtimes {sorted(set(every.runtime))}, "
            f"statuses {sorted(set(every.status))}: change --devices/--runtimes"
        )
    before = len(df)
    df = df.sort_values("timestamp").drop_duplicates("id", keep="last")
    if len(df) < before:  # a cell benched again without --resume
        notes.append(
            f"{before - len(df)} record(s) repeat a cell measured again (bench without --resume): the "
            "newest of each cell is kept"
        )
    df = df.sort_values(["device", "runtime", "model", "height", "width"]).reset_index(drop=True)
    df.attrs["notes"] = list(notes)  # lines skipped and repeats dropped: the report prints them
    return df


def load_evals(paths):
    """Read eval records (written by ``mobileseg eval``) into a DataFrame."""
    import pandas as pd

    rows = []
    records, _notes = read_records(paths, EVAL_REQUIRED, what="eval")
    for rec in records:
        res = rec.get("resolution") or [None, None]
        rows.append(
            {
                "model": rec["model"],
                "dataset": rec["dataset"],
                "format": rec["format"],
                "runtime": rec.get("runtime", ""),
                "miou": float(rec["miou"]),
                "resolution": f"{res[0]}x{res[1]}",
                "images": rec.get("images"),
                "weights": (rec.get("weights") or {}).get("path")
                if isinstance(rec.get("weights"), dict)
                else rec.get("weights"),
                "timestamp": str(rec.get("timestamp") or ""),
                "file": rec["_file"],
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "model",
            "dataset",
            "format",
            "runtime",
            "miou",
            "resolution",
            "images",
            "weights",
            "timestamp",
            "file",
        ],
    )


def attach_miou(df, published, evals=None, dataset: str = "ade20k"):
    """Add ``miou`` and ``miou_source`` to measured rows: an eval record of that model (same input size, then same
    format preferred, then the newest) wins over the published number, and says so (``evaluated (...)``)."""
    from .published import lookup_miou_at

    df = df.copy()
    mious, sources, at = [], [], []
    for r in df.itertuples():
        value, source, res = None, None, None
        if evals is not None and len(evals):
            cand = evals[(evals.model == r.model) & (evals.dataset == dataset)]
            if len(cand):
                cand = cand.assign(_res=(cand.resolution == r.resolution), _fmt=(cand.format == r.format))
                cand = cand.sort_values(["_res", "_fmt", "timestamp"])  # same input size, then same format, newest
                best = cand.iloc[-1]
                value, source = float(best.miou), f"evaluated ({best.format}, {Path(best.file).name})"
                res = best.resolution
        if value is None:
            value, source, res = lookup_miou_at(published, r.model, dataset, (r.height, r.width))
            source = source or "none"  # the paper and table, e.g. "TopFormer paper, Table 1"
        mious.append(value)
        sources.append(source)
        at.append(res)
    df["miou"] = mious
    df["miou_source"] = sources
    # the input size the mIoU belongs to: a point pairs it with a latency at another size only when marked so
    df["miou_resolution"] = at
    return df
