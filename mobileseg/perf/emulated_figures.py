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
    from ..cli import main as cli
    from ..emulator import build, control

    out = Path(args.out)
    rc = 0
    for profile, port, extra, runtimes, harness in (
            ("android", args.port, ["--thermal-sim", THERMAL, "--host-proc"], "ncnn", "native"),
            ("debian", args.port + 2, ["--host-proc"], "ncnn,onnxruntime", "python")):
        proc, port = control.launch(port=port, rootfs=str(build.rootfs_dir(profile)), profile=profile,
                                    extra_args=extra)
        try:
            common = ["--device", f"adb:127.0.0.1:{port}", "--adb-transport", "direct", "--harness", harness,
                      "--models", args.models, "--res", args.res, "--runtimes", runtimes, "--warmup", "2",
                      "--export-dir", args.export_dir, "--quiet"]
            rc |= cli(["bench", *common, "--repeats", "10",
                       "--results-file", str(out / f"emulated-{profile}-figures.jsonl")])
            if profile == "android":
                rc |= cli(["bench", *common, "--sustained", str(args.minutes), "--sustained-minute-s",
                           str(args.minute_s), "--results-file", str(out / "emulated-android-sustained.jsonl")])
        finally:
            control.terminate(proc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
