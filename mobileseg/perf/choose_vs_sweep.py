"""Benchmark: ``mobileseg choose`` against an exhaustive ``bench --target-ci 1`` sweep of the same candidates.

    python -m mobileseg.perf.choose_vs_sweep [--models ...] [--res 128] [--runtimes onnxruntime ncnn litert]
                                             [--budget-ms 33] [--max-time 300] [--out DIR]

1. Exports every candidate once (a bench of one sample per cell), so neither side pays for exports.
2. The sweep: ``run_bench(..., target_ci=1, max_time=30)``, every cell until the 95% interval of its median is
   within 1% (or 30 s); its winner by choose's own rule, on one look: the highest ranking key (accuracy evidence of
   :mod:`mobileseg.choose.accuracy`) among the cells whose interval lies wholly within the budget, the lowest
   median breaking ties.
3. ``mobileseg choose`` on the same candidates and budget.

Both run as commands in their own processes (the same start-up for both), back to back in this one run, with the
exports warm; the summary
(``<out>/choose-vs-sweep.json`` and ``.md``) gives both winners, whether they agree, and the time ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..results.paths import RUNS_DIR

MODELS = ("topformer-t", "topformer-s", "topformer-b", "lraspp-mbv3-large")
RUNTIMES = ("onnxruntime", "ncnn", "litert")


def sweep_winner(records: list, budget_ms: float) -> tuple[str | None, list]:
    """The sweep's winner (a candidate id) by choose's ranking, and its rows."""
    from ..choose import accuracy
    from ..choose.candidates import Candidate

    table = accuracy.published_table()
    rows = []
    for r in records:
        if r.get("status") != "ok":
            continue
        c = Candidate(r["model"], tuple(r["resolution"]), r["runtime"], r["precision"], r["graph"], r["threads"])
        ev = accuracy.published(c, table)
        key = (1, ev.miou) if ev.miou is not None else (0, ev.proxy if ev.proxy is not None else -1e9)
        s = r["stats_ms"]
        rows.append(
            {
                "id": c.id,
                "median": s["median"],
                "high": s.get("median_ci_high"),
                "key": key,
                "count": s["count"],
                "elapsed_s": (r.get("sampling") or {}).get("elapsed_s"),
            }
        )
    feasible = [x for x in rows if x["high"] is not None and x["high"] <= budget_ms]
    if not feasible:
        return None, rows
    best = max(feasible, key=lambda x: (x["key"], -x["median"]))
    return best["id"], rows


def _mobileseg(argv: list) -> int:
    """Run a ``mobileseg`` command in its own process, as a user would (both sides pay the same start-up)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "mobileseg", *argv]).returncode


def main(argv=None) -> int:
    from ..bench import run_bench

    p = argparse.ArgumentParser(prog="python -m mobileseg.perf.choose_vs_sweep", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--res", default="128")
    p.add_argument("--runtimes", nargs="+", default=list(RUNTIMES))
    p.add_argument("--budget-ms", type=float, default=33.0)
    p.add_argument("--max-time", type=float, default=300.0, help="choose's --max-time")
    p.add_argument("--sweep-max-time", type=float, default=30.0, help="the sweep's --max-time per cell")
    p.add_argument("--out", default=str(Path(RUNS_DIR) / "perf-choose-vs-sweep"))
    p.add_argument("--export-dir", default="export")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(
        models=args.models,
        resolutions=[args.res],
        runtimes=args.runtimes,
        precisions=["fp32"],
        device="local",
        threads=1,
        export_root=args.export_dir,
        measure_reference=False,
    )
    n = len(args.models) * len(args.runtimes)
    print(f"exporting {n} candidates (one sample each, not timed)", flush=True)
    run_bench(**common, repeats=1, warmup=0, results_file=str(out / "warm.jsonl"), progress=False)

    cells = [
        "--models",
        *args.models,
        "--res",
        args.res,
        "--runtimes",
        *args.runtimes,
        "--precisions",
        "fp32",
        "--export-dir",
        args.export_dir,
        "--quiet",
    ]
    sweep_file = out / "sweep.jsonl"
    if sweep_file.exists():
        sweep_file.unlink()
    t0 = time.monotonic()
    _mobileseg(
        [
            "bench",
            *cells,
            "--target-ci",
            "1",
            "--max-time",
            f"{args.sweep_max_time:g}",
            "--no-sgemm",
            "--results-file",
            str(sweep_file),
        ]
    )
    sweep_s = time.monotonic() - t0
    from ..results.store import ResultStore

    sweep_id, sweep_rows = sweep_winner(ResultStore(sweep_file).read(), args.budget_ms)
    print(f"sweep: {sweep_s:.1f} s, winner {sweep_id}", flush=True)

    choose_dir = out / "choose"
    for f in choose_dir.glob("*.jsonl"):
        f.unlink()  # a fresh race, not a resumed one
    t0 = time.monotonic()
    rc = _mobileseg(
        [
            "choose",
            "--budget-ms",
            f"{args.budget_ms:g}",
            *cells,
            "--max-time",
            f"{args.max_time:g}",
            "--out",
            str(choose_dir),
        ]
    )
    choose_s = time.monotonic() - t0
    summary = json.loads((out / "choose" / "choose.json").read_text())
    chosen = next((c["id"] for c in summary["candidates"] if c["fate"] == "chosen"), None)
    samples = sum(c["samples"] for c in summary["candidates"])
    result = {
        "candidates": n,
        "budget_ms": args.budget_ms,
        "res": args.res,
        "models": args.models,
        "runtimes": args.runtimes,
        "sweep": {
            "seconds": round(sweep_s, 1),
            "winner": sweep_id,
            "samples": sum(r["count"] for r in sweep_rows),
            "rows": sweep_rows,
        },
        "choose": {
            "seconds": round(choose_s, 1),
            "race_seconds": summary.get("race_seconds"),
            "rc": rc,
            "state": summary["state"],
            "winner": chosen,
            "samples": samples,
            "tie": summary.get("tie"),
        },
        "same_winner": chosen is not None and chosen == sweep_id,
        "time_ratio_choose_over_sweep": round(choose_s / sweep_s, 3) if sweep_s else None,
        "note": "one run on a shared host; both phases after the exports, measured back to back",
    }
    (out / "choose-vs-sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# choose vs an exhaustive --target-ci 1 sweep ({n} host candidates at {args.res}, budget "
        f"{args.budget_ms:g} ms)",
        "",
        "| | wall s | samples | winner |",
        "| --- | --- | --- | --- |",
        f"| sweep (--target-ci 1, --max-time {args.sweep_max_time:g}) | {sweep_s:.1f} | "
        f"{result['sweep']['samples']} | {sweep_id} |",
        f"| choose ({summary['state']}) | {choose_s:.1f} | {samples} | {chosen} |",
        "",
        f"same winner: {result['same_winner']}; time ratio choose/sweep: {result['time_ratio_choose_over_sweep']}",
        "",
    ]
    (out / "choose-vs-sweep.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0 if result["same_winner"] else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
