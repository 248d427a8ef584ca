"""Measurement records (contract 4) and eval records read into pandas DataFrames, one row per record.

Only ``json`` and ``pandas`` are needed: the report runs where neither torch nor any runtime is installed.
"""
from __future__ import annotations

import glob
import json
from pathlib import Path

from .errors import NoRecordsError, ResultsFileError

# Keys without which a line is not one of our measurement records.
REQUIRED = ("model", "resolution", "format", "runtime", "stats_ms")
EVAL_REQUIRED = ("model", "dataset", "miou", "format")


def _read_jsonl(path: Path, required, what: str) -> list[dict]:
    if not path.is_file():
        raise ResultsFileError(f"{what} file {path} not found: check the path "
                               + ("or run `mobileseg bench` first" if what == "results" else "or run `mobileseg eval` first"))
    records = []
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("["):  # a JSON array of records is accepted too
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResultsFileError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}): "
                                   f"give a {what} file written by mobileseg") from None
        lines = [(i + 1, item) for i, item in enumerate(items)]
    else:
        lines = []
        numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        for k, (n, line) in enumerate(numbered):
            try:
                lines.append((n, json.loads(line)))
            except json.JSONDecodeError:
                if k == len(numbered) - 1 and k > 0 and not text.endswith("\n"):
                    continue  # a last line cut short by an interrupted writer: the complete records stand
                raise ResultsFileError(f"{path} line {n} is not JSON: give a {what} file written by mobileseg "
                                       "(one JSON record per line)") from None
    for n, rec in lines:
        if not isinstance(rec, dict) or any(k not in rec for k in required):
            missing = [k for k in required if not isinstance(rec, dict) or k not in rec]
            raise ResultsFileError(f"{path} record {n} is not a mobileseg {what} record (missing {', '.join(missing)}): "
                                   f"give a file written by `mobileseg {'bench' if what == 'results' else 'eval'}`")
        rec["_file"] = str(path)
        records.append(rec)
    return records


def expand_paths(paths) -> list[Path]:
    """Files and shell patterns -> existing paths (a pattern that matches nothing is reported as missing)."""
    out = []
    for p in paths:
        if Path(p).is_dir():  # a folder: every *.jsonl in it
            p = str(Path(p) / "*.jsonl")
        hits = sorted(glob.glob(str(p))) if any(c in str(p) for c in "*?[") else [str(p)]
        if not hits:
            raise ResultsFileError(f"no file matches {p}: check the pattern or run `mobileseg bench` first")
        out += [Path(h) for h in hits]
    return out


def device_label(dev: dict) -> str:
    """A short human name for a record's ``device``: phone model (or SoC) for ADB devices, 'host' for local."""
    dev = dev or {}
    if dev.get("kind", "local") == "local":
        name = dev.get("model") or "host"
    else:
        name = dev.get("model") or dev.get("soc") or dev.get("serial") or "adb"
    if dev.get("emulated"):
        name += " (emulated)"
    return str(name)


def load_results(paths, device=None, runtime=None, model=None, include_failed: bool = False):
    """Read measurement records into a DataFrame (one row per cell; the newest record wins when a cell repeats).

    Filters (case-insensitive; each may be a string or a list): ``device`` matches the device label, kind, serial,
    model or SoC; ``runtime`` the runtime name or format; ``model`` the model name. Records with status other than
    "ok" are dropped unless ``include_failed``. Raises :class:`NoRecordsError` naming what is available when no
    record is left.
    """
    import pandas as pd

    rows = []
    for path in expand_paths(paths):
        for rec in _read_jsonl(path, REQUIRED, "results"):
            rows.append(_flatten(rec))
    if not rows:
        raise NoRecordsError(f"the results file(s) {', '.join(map(str, paths))} hold no records: run `mobileseg bench` first")
    df = pd.DataFrame(rows)
    every = df
    if not include_failed:
        df = df[df.status == "ok"]
    for values, cols in ((device, ["device", "device_kind", "device_serial", "device_model", "device_soc"]),
                         (runtime, ["runtime", "format"]), (model, ["model"])):
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
            f"statuses {sorted(set(every.status))}: change --device/--runtime")
    df = df.sort_values("timestamp").drop_duplicates("id", keep="last")
    return df.sort_values(["device", "runtime", "model", "res_h", "res_w"]).reset_index(drop=True)


def _flatten(rec: dict) -> dict:
    dev = rec.get("device") or {}
    stats = rec.get("stats_ms") or {}
    parity = rec.get("parity") or {}
    h, w = (list(rec["resolution"]) + [None, None])[:2] if isinstance(rec["resolution"], (list, tuple)) else (None, None)
    params = rec.get("params")
    rid = rec.get("id") or "|".join(str(x) for x in (device_label(dev), rec["model"], f"{h}x{w}", rec["format"],
                                                      rec["runtime"], rec.get("precision"), rec.get("graph"),
                                                      rec.get("threads")))
    return {
        "id": rid, "timestamp": str(rec.get("timestamp") or ""), "model": rec["model"], "res_h": h, "res_w": w,
        "resolution": f"{h}x{w}", "format": rec["format"], "runtime": rec["runtime"],
        "runtime_version": rec.get("runtime_version") or "", "precision": rec.get("precision") or "fp32",
        "graph": rec.get("graph") or "logits", "threads": rec.get("threads"),
        "device": device_label(dev), "device_kind": dev.get("kind", "local"), "device_serial": dev.get("serial") or "",
        "device_model": dev.get("model") or "", "device_soc": dev.get("soc") or "", "device_cpu": dev.get("cpu") or "",
        "emulated": bool(rec.get("emulated", dev.get("emulated", False))), "harness": rec.get("harness") or "",
        # benchmark_model prints no median (records say stats_source "tool-summary"): its mean stands in.
        "median_ms": stats.get("median") if stats.get("median") is not None else stats.get("mean"),
        "latency_stat": "median" if stats.get("median") is not None else "mean",
        "p10_ms": stats.get("p10"), "p90_ms": stats.get("p90"),
        "stdev_ms": stats.get("stdev"), "count": stats.get("count"),
        "gflops": rec.get("gflops"), "params_m": (params / 1e6 if isinstance(params, (int, float)) else None),
        "parity_ok": parity.get("ok") if parity.get("checked", True) else None,
        "parity_rel_l2": parity.get("rel_l2"), "status": rec.get("status", "ok"), "error": rec.get("error") or "",
        "file": rec["_file"],
    }


def load_evals(paths):
    """Read eval records (written by ``mobileseg eval``) into a DataFrame."""
    import pandas as pd

    rows = []
    for path in expand_paths(paths):
        for rec in _read_jsonl(path, EVAL_REQUIRED, "eval"):
            res = rec.get("resolution") or [None, None]
            rows.append({"model": rec["model"], "dataset": rec["dataset"], "format": rec["format"],
                         "runtime": rec.get("runtime", ""), "miou": float(rec["miou"]),
                         "resolution": f"{res[0]}x{res[1]}", "images": rec.get("images"),
                         "weights": (rec.get("weights") or {}).get("path") if isinstance(rec.get("weights"), dict)
                         else rec.get("weights"), "timestamp": str(rec.get("timestamp") or ""),
                         "file": rec["_file"]})
    return pd.DataFrame(rows, columns=["model", "dataset", "format", "runtime", "miou", "resolution", "images",
                                       "weights", "timestamp", "file"])


def attach_miou(df, published, evals=None, dataset: str = "ade20k"):
    """Add ``miou`` and ``miou_source`` to measured rows: an eval record of that model (same input size, then same
    format preferred, then the newest) wins over the published number, and says so (``evaluated (...)``)."""
    from .published import lookup_miou

    df = df.copy()
    mious, sources = [], []
    for r in df.itertuples():
        value, source = None, None
        if evals is not None and len(evals):
            cand = evals[(evals.model == r.model) & (evals.dataset == dataset)]
            if len(cand):
                cand = cand.assign(_res=(cand.resolution == r.resolution), _fmt=(cand.format == r.format))
                cand = cand.sort_values(["_res", "_fmt", "timestamp"])  # same input size, then same format, newest
                best = cand.iloc[-1]
                value, source = float(best.miou), f"evaluated ({best.format}, {Path(best.file).name})"
        if value is None:
            value, source = lookup_miou(published, r.model, dataset, (r.res_h, r.res_w))
            source = f"published ({source})" if source else "none"
        mious.append(value)
        sources.append(source)
    df["miou"] = mious
    df["miou_source"] = sources
    return df
