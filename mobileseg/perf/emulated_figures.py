"""Measurement: load, first-run, memory and sustained figures from both device harnesses on the emulated devices.

    python -m mobileseg.perf.emulated_figures [--models topformer-t] [--res 64] [--port 5641] [--out DIR]

Starts the emulated android phone (native ncnn harness, with ``--thermal-sim`` and ``--host-proc``) and the debian
board (device Python harness, ``--host-proc``) on ``--port`` and ``--port + 2``, benches the cells on each (ncnn on
the phone; ncnn and onnxruntime on the board), then a short sustained run on the phone with minutes of
``--minute-s`` seconds. Writes ``<out>/emulated-<profile>-figures.jsonl`` and ``<out>/emulated-android-sustained.jsonl``.
Emulated: the timings and memory are qemu's, numerics only; what they show is that every harness reports them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..results.paths import RUNS_DIR

THERMAL = "rise=1,tau=200,trip=48,drop=0.15,floor=0.3,period=0.004"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mobileseg.perf.emulated_figures")
    ap.add_argument("--models", default="topformer-t")
    ap.add_argument("--res", default="64")
    ap.add_argument("--port", type=int, default=5641)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--minute-s", type=float, default=4.0)
    ap.add_argument("--export-dir", default="export")
    ap.add_argument("--out", default=RUNS_DIR)
    args = ap.parse_args(argv)
    from ..bench import run_bench
    from ..emulator import build, control

    out = Path(args.out)
    rc = 0
    for profile, port, extra, runtimes, harness in (
        ("android", args.port, ["--thermal-sim", THERMAL, "--host-proc"], ["ncnn"], "native"),
        ("debian", args.port + 2, ["--host-proc"], ["ncnn", "onnxruntime"], "python"),
    ):
        proc, port = control.launch(port=port, rootfs=str(build.rootfs_dir(profile)), profile=profile, extra_args=extra)
        try:
            common = dict(
                device=f"adb:127.0.0.1:{port}",
                target_options={"harness": harness, "adb_transport": "direct"},
                models=args.models.split(","),
                resolutions=[args.res],
                runtimes=runtimes,
                warmup=2,
                export_root=args.export_dir,
                progress=False,
            )
            runs = [run_bench(**common, repeats=10, results_file=out / f"emulated-{profile}-figures.jsonl")]
            if profile == "android":
                runs.append(
                    run_bench(
                        **common,
                        sustained=args.minutes,
                        sustained_minute_s=args.minute_s,
                        results_file=out / "emulated-android-sustained.jsonl",
                    )
                )
            for run in runs:
                for r in run:
                    rc |= r["status"] != "ok"
                    print(
                        f"{profile} {r['runtime']} {r['harness']}: load {r.get('load_ms')} ms, first run "
                        f"{r.get('first_run_ms')} ms, memory {r.get('memory')}, sustained "
                        f"{(r.get('sustained') or {}).get('slowdown_minute')}",
                        flush=True,
                    )
        finally:
            control.terminate(proc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
