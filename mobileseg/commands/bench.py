"""``mobileseg bench``: single-thread latency of exported models on the host or an ADB device, with parity."""
from __future__ import annotations


def _split(values):
    if not values:
        return None
    out = []
    for v in values:
        out += [p for p in str(v).replace(",", " ").split() if p]
    return out


def register(sub) -> None:
    p = sub.add_parser("bench", help="time exported models (one pinned core) and check parity; results -> JSONL",
                       description="Measure every cell (model x resolution x runtime x precision x graph) on the "
                                   "target, check its output against the PyTorch reference, and append one record "
                                   "per cell to a JSON Lines results file.")
    p.add_argument("--device", default="local", help="local (default), adb, adb:HOST:PORT or adb:SERIAL")
    p.add_argument("--threads", type=int, default=1, help="threads per runtime (1: one intra-op thread, no pool)")
    p.add_argument("--models", "-m", nargs="+", help="model names (default: every segmentation model, or the suite's)")
    p.add_argument("--res", nargs="+", help="resolutions, 448 or HxW (default: each model's paper resolution)")
    p.add_argument("--runtimes", nargs="+", help="torch, onnxruntime, ncnn, litert (default: every installed one)")
    p.add_argument("--precision", nargs="+", help="fp32 (default) or fp16")
    p.add_argument("--graph", nargs="+", choices=["logits", "argmax"], help="timed graph boundary (default logits)")
    p.add_argument("--suite", help="a suite file such as bench/smoke.toml; --models/--res/--runtimes then filter it")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up runs per cell (default 5)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--repeats", type=int, default=None, help="timed runs per cell (default 20)")
    g.add_argument("--min-time", type=float, default=None, help="seconds of timed runs per cell instead of --repeats")
    p.add_argument("--cpu", type=int, default=None,
                   help="CPU to pin to (default: the host's last CPU; on a device, the last core of the big cluster)")
    p.add_argument("--harness", choices=["auto", "python", "native"], default="auto",
                   help="what runs the cells on an ADB device: python (device_scripts/harness.py under the "
                        "device's python3: ncnn, onnxruntime, litert), native (the C++ ncnn harness built by "
                        "`mobileseg harness build`, for phones without Python; ncnn only) or auto (default: python "
                        "when the device has it, else native); on the host the runtimes always run in-process")
    p.add_argument("--tflite-benchmark", metavar="PATH", default=None,
                   help="time litert cells on the ADB device with this TFLite benchmark_model binary (built for "
                        "the device; pushed once, same threads and pinning; timings only: parity not checked)")
    p.add_argument("--ort-perf-test", metavar="PATH", default=None,
                   help="time onnxruntime cells on the ADB device with this onnxruntime_perf_test binary (built "
                        "for the device; pushed once, same threads and pinning; timings only: parity not checked)")
    p.add_argument("--cooldown", type=float, default=None, help="max seconds to wait for temperatures between models")
    p.add_argument("--resume", action="store_true", help="skip cells already finished in the results file")
    p.add_argument("--out", default="results", help="results folder (default results/)")
    p.add_argument("--results-file", default=None, help="append to this file instead of <out>/<device>-t<N>.jsonl")
    p.add_argument("--export-dir", default="export", help="export folder (artifacts are reused; default export/)")
    p.add_argument("--no-sgemm", action="store_true", help="skip timing the core's SGEMM reference rate")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def target_options(args) -> dict:
    """The ``open_target`` options given on the command line (only those that differ from the defaults)."""
    opts = {}
    if getattr(args, "harness", "auto") not in (None, "auto"):
        opts["harness"] = args.harness
    for key in ("tflite_benchmark", "ort_perf_test"):
        if getattr(args, key, None):
            opts[key] = getattr(args, key)
    return opts


def run(args) -> int:
    from ..bench import run_bench
    from ._format import table

    records = run_bench(models=_split(args.models), resolutions=_split(args.res), runtimes=_split(args.runtimes),
                        precisions=_split(args.precision), graphs=args.graph, suite=args.suite, device=args.device,
                        threads=args.threads, warmup=args.warmup, repeats=args.repeats, min_time=args.min_time,
                        cpu=args.cpu, resume=args.resume, out_dir=args.out, results_file=args.results_file,
                        export_root=args.export_dir, progress=not args.quiet, cooldown_s=args.cooldown,
                        measure_reference=not args.no_sgemm, target_options=target_options(args))
    rows = [summary_row(r) for r in records]
    if rows:
        print(table(rows))
    print(f"{len(records)} cell(s) measured, {len(records.skipped)} skipped (done earlier); results: {records.path}")
    return 1 if any(r["status"] != "ok" for r in records) else 0


def summary_row(r: dict) -> dict:
    s = r.get("stats_ms") or {}
    p = r.get("parity") or {}
    h, w = r["resolution"]
    med = s.get("median")
    rate = (r["gflops"] / (med / 1e3)) if (med and r.get("gflops")) else None
    if med is None and s.get("mean") is not None:  # a tool summary without a median (benchmark_model)
        med_text = f"{s['mean']:.2f} (mean)"
    else:
        med_text = f"{med:.2f}" if med is not None else ""
    return {"model": r["model"], "res": f"{h}x{w}", "runtime": r["runtime"], "prec": r["precision"],
            "graph": r["graph"], "median ms": med_text,
            "p10": f"{s['p10']:.2f}" if s.get("p10") is not None else "",
            "p90": f"{s['p90']:.2f}" if s.get("p90") is not None else "",
            "n": s.get("count", ""), "GMAC/s": f"{rate:.2f}" if rate else "",
            "rel_l2": f"{p['rel_l2']:.1e}" if p.get("rel_l2") is not None else "",
            "status": r["status"] if r["status"] != "error" else f"error: {r.get('error')}"}
