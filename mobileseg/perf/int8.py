"""Benchmark: int8 against fp32 on this host, per runtime, and what int8 costs the trained fixture in mIoU.

    python -m mobileseg.perf.int8 [--models topformer-t topformer-s topformer-b lraspp-mbv3-large] [--res 512]
                                  [--runtimes onnxruntime ncnn litert] [--repeats 20] [--skip-latency] [--skip-miou]
                                  [--out DIR]

1. Latency: ``run_bench`` cells (one pinned thread, the bench's warm-up and statistics, parity in every record) for
   each model x runtime x {fp32, int8}; int8 artifacts are calibrated on synthetic images (the weights are random:
   latency does not depend on them), which their records say. Records go to ``<out>/int8-latency.jsonl``.
2. mIoU: the trained fixture (tests/fixtures/topformer-t-shapes.pth) evaluated on 64 held-out procedural images at
   128 px, int8 (calibrated on 32 other procedural images) against fp32 per runtime: ``<out>/int8-miou.jsonl``.

The summary (``<out>/int8-summary.json`` and ``.md``): per model and runtime the fp32 and int8 medians, the
speed-up (fp32 median / int8 median, both from the same run) and the fixture's mIoU delta.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from ..results.paths import RUNS_DIR

MODELS = ("topformer-t", "topformer-s", "topformer-b", "lraspp-mbv3-large")
FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "topformer-t-shapes.pth"


def latency(models, res, runtimes, repeats, out: Path, export_root: str) -> list[dict]:
    from ..bench import run_bench

    path = out / "int8-latency.jsonl"
    from ..results.store import ResultStore

    run_bench(
        models=list(models),
        resolutions=[res],
        runtimes=list(runtimes),
        precisions=["fp32", "int8"],
        device="local",
        threads=1,
        repeats=repeats,
        results_file=str(path),
        export_root=export_root,
        resume=True,
        progress=True,
        measure_reference=False,
    )
    return ResultStore(path).read()  # with --resume, the cells of earlier runs too


def miou(runtimes, out: Path, export_root: str) -> list[dict]:
    from ..eval.evaluate import append_record, evaluate
    from ..export.synthetic import write_split
    from ..formats import runtime_format

    with tempfile.TemporaryDirectory(prefix="mobileseg-int8-") as tmp:
        calib = write_split(Path(tmp) / "calib", 32, seed=10)
        val = write_split(Path(tmp) / "val", 64, seed=2)
        recs = []
        for rt in runtimes:
            rec = evaluate(
                "topformer-t",
                val,
                fmt=runtime_format(rt),
                weights=FIXTURE,
                res=128,
                runtime=rt,
                precision="int8",
                calib=calib,
                export_root=export_root,
                progress=False,
            )
            rec["data"] = "procedural shapes, 64 images, seed 2 (mobileseg.export.synthetic)"
            rec["int8"]["calibration"]["folder"] = "procedural shapes, 32 images, seed 10"
            append_record(rec, out / "int8-miou.jsonl")
            print(
                f"fixture {rt}: fp32 {rec['fp32_miou']:.2f}% int8 {rec['miou']:.2f}% (delta {rec['miou_delta']:+.2f})",
                flush=True,
            )
            recs.append(rec)
    return recs


def summary(lat: list[dict], mi: list[dict]) -> list[dict]:
    by = {}
    for r in lat:
        if r.get("status") != "ok" and r.get("status") != "parity_failed":
            continue
        by.setdefault((r["model"], r["runtime"]), {})[r["precision"]] = r
    deltas = {r["runtime"]: r for r in mi}
    rows = []
    for (model, rt), p in sorted(by.items()):
        f, q = p.get("fp32"), p.get("int8")
        fm = f["stats_ms"]["median"] if f else None
        qm = q["stats_ms"]["median"] if q else None
        rows.append(
            {
                "model": model,
                "runtime": rt,
                "resolution": (f or q)["resolution"],
                "fp32_median_ms": fm,
                "int8_median_ms": qm,
                "fp32_p10_p90_ms": [f["stats_ms"]["p10"], f["stats_ms"]["p90"]] if f else None,
                "int8_p10_p90_ms": [q["stats_ms"]["p10"], q["stats_ms"]["p90"]] if q else None,
                "speedup": round(fm / qm, 3) if fm and qm else None,
                "int8_sqnr_db": (q or {}).get("parity", {}).get("sqnr_db"),
                "fixture_miou_delta": deltas.get(rt, {}).get("miou_delta") if model == "topformer-t" else None,
            }
        )
    return rows


def int8_runtimes() -> list[str]:
    """Bench's default runtimes that run int8 (the formats table says which)."""
    from ..bench.int8 import can_int8
    from ..formats import default_runtimes

    return [r for r in default_runtimes() if can_int8(r)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mobileseg.perf.int8")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--res", default="512")
    ap.add_argument("--runtimes", nargs="+", default=int8_runtimes())
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--export-dir", default="export")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-miou", action="store_true")
    ap.add_argument("--out", default=RUNS_DIR, help=f"folder written (default {RUNS_DIR})")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from ..results.store import ResultStore

    # a skipped part's summary rows come from what an earlier run left in --out
    lat = (
        ResultStore(out / "int8-latency.jsonl").read()
        if args.skip_latency
        else latency(args.models, args.res, args.runtimes, args.repeats, out, args.export_dir)
    )
    mi = (
        ResultStore(out / "int8-miou.jsonl").read()
        if args.skip_miou
        else miou(args.runtimes, out, os.path.join(args.export_dir, "int8-fixture"))
    )
    rows = summary(lat, mi)
    (out / "int8-summary.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "miou": [
                    {k: r.get(k) for k in ("runtime", "format", "fp32_miou", "miou", "miou_delta", "images")}
                    for r in mi
                ],
            },
            indent=1,
        )
        + "\n"
    )
    lines = [
        "| model | runtime | fp32 ms median (p10-p90) | int8 ms median (p10-p90) | speed-up | int8 SQNR dB "
        "| fixture (128 px, trained) mIoU delta |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['runtime']} | {_f(r['fp32_median_ms'])} ({_spread(r['fp32_p10_p90_ms'])}) | "
            f"{_f(r['int8_median_ms'])} ({_spread(r['int8_p10_p90_ms'])}) | {_f(r['speedup'], '.2f')}x | "
            f"{_f(r['int8_sqnr_db'], '.1f')} | {_f(r['fixture_miou_delta'], '+.2f')} |"
        )
    for r in mi:
        lines.append(
            f"\nfixture (topformer-t, shapes, 128 px) on {r['runtime']}: fp32 {r['fp32_miou']:.2f}%, "
            f"int8 {r['miou']:.2f}%, delta {r['miou_delta']:+.2f} points ({r['images']} images)"
        )
    (out / "int8-summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _spread(v) -> str:
    return "-" if not v else f"{v[0]:.1f}-{v[1]:.1f}"


def _f(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


if __name__ == "__main__":
    raise SystemExit(main())
