"""Measurement: per-layer numerics of TopFormer-T, SegFormer-B0 and LR-ASPP at fp32 and fp16 on ONNX Runtime,
ncnn and LiteRT on this host: one JSON report per (model, format, precision), one error-vs-depth plot per model, and
``summary.md`` / ``summary.json`` with the matched share of leaf modules per format.

    python -m mobileseg.perf.numerics_reference [--models ...] [--res 128] [--export-dir DIR]
                                                [--out results/runs/numerics]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from ..results.paths import RUNS_DIR

MODELS = ("topformer-t", "segformer-b0", "lraspp-mbv3-large")
FORMATS = ("onnx", "ncnn", "tflite")
PRECISIONS = ("fp32", "fp16")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mobileseg.perf.numerics_reference")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--res", default="128")
    ap.add_argument("--formats", nargs="+", default=list(FORMATS))
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS))
    ap.add_argument("--export-dir", default="export/numerics")
    ap.add_argument("--out", default=os.path.join(RUNS_DIR, "numerics"))
    args = ap.parse_args(argv)

    from .. import __version__
    from ..export.api import export_model
    from ..manifest import export_dir_name
    from ..numerics.analyze import per_layer
    from ..numerics.plot import plot
    from ..numerics.layer_report import write
    from ..registry import parse_resolution

    os.makedirs(args.out, exist_ok=True)
    res = parse_resolution(args.res)
    rows = []
    for model in args.models:
        reports = []
        for precision in args.precisions:
            folder = os.path.join(args.export_dir, export_dir_name(model, res, precision))
            t0 = time.perf_counter()
            result = export_model(model, list(res), formats=["torch", *args.formats], precision=precision, out=folder)
            print(f"{model} {precision}: exported in {time.perf_counter() - t0:.0f} s", flush=True)
            for fmt in args.formats:
                entry = result.formats.get(fmt) or {}
                if not entry.get("files"):
                    rows.append(
                        {
                            "model": model,
                            "format": fmt,
                            "precision": precision,
                            "error": entry.get("error") or "not exported",
                        }
                    )
                    continue
                rep = per_layer(folder, fmt, precision=precision)
                rep["export_dir"] = os.path.basename(folder)  # where it was is this machine's business
                path = write(rep, os.path.join(args.out, model))
                reports.append(rep)
                rows.append(_row(rep, entry, path))
                print(f"  {fmt}: {rows[-1]}", flush=True)
        if reports:
            plot(reports, os.path.join(args.out, model, f"{model}-error-vs-depth.png"))
    meta = {
        "mobileseg": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "resolution": list(res),
        "command": "python -m mobileseg.perf.numerics_reference " + " ".join(argv or []),
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(_markdown(rows, meta))
    print(f"written: {args.out}/summary.md")
    return 0


def _row(rep: dict, entry: dict, path: str) -> dict:
    s = rep["summary"]
    first = rep["first_diverging"]
    worst = max((r["rel_l2"] for r in rep["layers"]), default=None)
    return {
        "model": rep["model"],
        "format": rep["format"],
        "runtime": rep["runtime"],
        "precision": rep["precision"],
        "rows": s["rows"],
        "leaf_modules": s["leaf_modules"],
        "matched": s["matched"],
        "fused": s["fused"],
        "identity": s["identity"],
        "removed": s.get("removed", 0),
        "unmatched": s["unmatched"],
        "matched_pct": s["matched_pct"],
        "accounted_pct": s["accounted_pct"],
        "methods": s["methods"],
        "max_layer_rel_l2": worst,
        "output_rel_l2": (entry.get("parity") or {}).get("rel_l2"),
        "limit": rep["limit_rel_l2"],
        "first_diverging": first and first["module"],
        "first_diverging_rel_l2": first and first["rel_l2"],
        "report": os.path.relpath(path),
    }


def _g(v) -> str:
    return "-" if v is None else f"{v:.2e}"


def _markdown(rows: list[dict], meta: dict) -> str:
    out = [
        f"# Per-layer numerics at {meta['resolution'][0]}x{meta['resolution'][1]} (host {meta['machine']})",
        "",
        f"`{meta['command']}`",
        "",
        "| model | format | precision | tensors | matched % | accounted % | max layer rel-L2 | output rel-L2 "
        "| limit | first diverging |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['model']} | {r['format']} | {r['precision']} | - | - | - | - | - | - | {r['error']} |")
            continue
        out.append(
            f"| {r['model']} | {r['format']} | {r['precision']} | {r['rows']} | {r['matched_pct']} | "
            f"{r['accounted_pct']} | {_g(r['max_layer_rel_l2'])} | {_g(r['output_rel_l2'])} | {r['limit']:g} | "
            f"{r['first_diverging'] or 'none'} |"
        )
    out += [
        "",
        "matched %: leaf modules whose own output tensor was found in the runtime; accounted %: matched, fused "
        "into a matched tensor (BN into conv, activation into conv), identity (folded BatchNorm, eval dropout) or "
        "removed by the converter (no op carries its path).",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
