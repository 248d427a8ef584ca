"""Benchmark: wall-clock time of ``export_model`` for topformer-b at 512x512 to ONNX, ncnn and TFLite.

Run 1 converts from scratch (``force=True``, parity checks included); run 2 is the identical call, served by the
content-hash cache. Writes ``results/runs/export_time.json`` (the committed run: ``results/reference/``) (goals: run 1 < 60 s, run 2 < 2 s on the 2-core host).

    python -m mobileseg.perf.export_time [--model topformer-b] [--res 512] [--export-dir DIR] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from ..results.paths import RUNS_DIR


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mobileseg.perf.export_time")
    ap.add_argument("--model", default="topformer-b")
    ap.add_argument("--res", default="512")
    ap.add_argument("--formats", default="onnx,ncnn,tflite")
    ap.add_argument("--export-dir", default=None, help="the export folder (default: a temporary folder)")
    ap.add_argument(
        "--out",
        "--results",
        dest="results",
        default=os.path.join(RUNS_DIR, "export_time.json"),
        help="JSON file written (default results/runs/export_time.json)",
    )
    args = ap.parse_args(argv)

    from .. import __version__
    from ..export.api import export_model

    tmp = None
    out = args.export_dir
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="mobileseg-export-bench-")
        out = tmp.name
    runs = []
    for i, force in enumerate((True, False)):
        load_before = _loadavg()
        t = time.perf_counter()
        res = export_model(args.model, args.res, formats=args.formats, out=out, force=force)
        seconds = time.perf_counter() - t
        fmts = {
            f: {
                "ok": e["ok"],
                "convert_s": e.get("seconds", {}).get("convert"),
                "parity_s": e.get("seconds", {}).get("parity"),
                "rel_l2": (e.get("parity") or {}).get("rel_l2"),
            }
            for f, e in res.formats.items()
        }
        runs.append(
            {
                "run": i + 1,
                "cached": res.cached,
                "seconds": round(seconds, 2),
                "ok": res.ok,
                "formats": fmts,
                "loadavg_before": load_before,
                "loadavg_after": _loadavg(),
            }
        )
        print(
            f"run {i + 1}: {seconds:.1f} s (cache: {res.cached}, ok: {res.ok}; load average {load_before}) "
            + ", ".join(f"{f} {v['convert_s']} s" for f, v in fmts.items())
        )
    record = {
        "benchmark": "export_time",
        "model": args.model,
        "resolution": args.res,
        "formats": args.formats,
        "runs": runs,
        "goals_s": {"first": 60, "second": 2},
        "mobileseg": __version__,
        "host": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "versions": res.manifest.get("versions"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": (
            "wall clock of export_model; run 1 converts TFLite in a child process alongside ONNX and ncnn "
            "(its convert_s counts from the child's start, import and model hand-over included); run 2 "
            "includes the sha256 check of every artifact file; loadavg: 1/5/15-minute load averages of "
            "the host (other jobs share it)"
        ),
    }
    os.makedirs(os.path.dirname(args.results) or ".", exist_ok=True)
    with open(args.results, "w") as f:
        json.dump(record, f, indent=2)
    print(f"wrote {args.results}")
    if tmp is not None:
        tmp.cleanup()
    return 0


def _loadavg() -> list:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
