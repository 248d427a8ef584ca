"""Fidelity: our ncnn timing of an exported .param against ncnn's own benchncnn, on the same pinned core.

    python -m mobileseg.perf.fidelity --benchncnn PATH [--models topformer-t,topformer-s,topformer-b] [--res 512]
                                      [--cpu K] [--loops 50] [--export-dir export] [--out FILE.json]

For each model: the ncnn export (cached by the export stage), then ``taskset -c K benchncnn LOOPS 1 0 -1 0
param=model.ncnn.param shape=[W,H,3]`` (one thread, all cores allowed by powersave 0 but pinned by taskset, CPU only,
no cooling-down pause) and our timing of the same .param with mobileseg's ncnn runtime adapter (one thread, pinned to
K in this process, warm-up then LOOPS timed calls). benchncnn prints min/max/avg only, so the ratios compare like
with like: ours/benchncnn of the minimum and of the mean. benchncnn loads random weights (only the .param is read):
speed does not depend on the values. The PyPI sdist of ncnn has no ``benchmark/``: build benchncnn from ncnn's
repository at the installed version (docs/measurement.md). This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from .. import manifest as _manifest
from ..errors import MobilesegError
from ..results.paths import RUNS_DIR

_LINE = re.compile(
    r"^\s*(?P<name>\S+)\s+min\s*=\s*(?P<min>[\d.]+)\s+max\s*=\s*(?P<max>[\d.]+)\s+avg\s*=\s*"
    r"(?P<avg>[\d.]+)",
    re.M,
)


def parse_benchncnn(text: str) -> dict:
    """``{name: {min_ms, max_ms, avg_ms}}`` from benchncnn's output lines ``NAME  min = A  max = B  avg = C``."""
    out = {
        m.group("name"): {
            "min_ms": float(m.group("min")),
            "max_ms": float(m.group("max")),
            "avg_ms": float(m.group("avg")),
        }
        for m in _LINE.finditer(text)
    }
    if not out:
        tail = " ".join(text.strip().splitlines()[-2:])[:200]
        raise MobilesegError(
            f"benchncnn printed no 'min = ... max = ... avg = ...' line (got: {tail or 'nothing'}): "
            "is it benchncnn, and does it take param= and shape=?"
        )
    return out


def benchncnn_command(binary, param, shape_whc, loops: int, cpu: int | None) -> list[str]:
    w, h, c = shape_whc
    cmd = [str(binary), str(int(loops)), "1", "0", "-1", "0", f"param={param}", f"shape=[{w},{h},{c}]"]
    return (["taskset", "-c", str(cpu)] + cmd) if cpu is not None else cmd


def check_binary(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise MobilesegError(
            f"benchncnn not found at {p}: build it from ncnn's repository (benchmark/) and pass its path"
        )
    if p.is_dir():
        raise MobilesegError(f"{p} is a folder: pass the benchncnn executable inside it")
    if not os.access(p, os.X_OK):
        raise MobilesegError(f"{p} is not executable: chmod +x it")
    return p


def time_ours(folder, manifest, loops: int, warmup: int = 5) -> dict:
    import numpy as np

    from ..bench.overhead import time_calls
    from ..runtimes import get_runtime

    rt = get_runtime("ncnn")
    sess = rt.load(folder, (manifest.get("formats") or {}).get("ncnn"), threads=1, precision="fp32")
    try:
        x = np.ascontiguousarray(np.load(Path(folder) / _manifest.REFERENCE_INPUT), dtype=np.float32)
        samples, _ = time_calls(sess.run, x, warmup, loops)
    finally:
        sess.close()
    s = sorted(samples)
    return {
        "min_ms": s[0],
        "max_ms": s[-1],
        "avg_ms": sum(s) / len(s),
        "median_ms": s[len(s) // 2],
        "loops": len(s),
        "version": rt.version(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mobileseg.perf.fidelity", description=__doc__.splitlines()[0])
    ap.add_argument("--benchncnn", required=True, help="path of a benchncnn built at the installed ncnn version")
    ap.add_argument("--models", default="topformer-t,topformer-s,topformer-b")
    ap.add_argument("--res", default="512")
    ap.add_argument("--cpu", type=int, default=None, help="CPU both run on (default: this process's last one)")
    ap.add_argument("--loops", type=int, default=50)
    ap.add_argument("--export-dir", default="export")
    ap.add_argument("--out", default=os.path.join(RUNS_DIR, "fidelity-benchncnn.json"))
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except MobilesegError as exc:
        print(f"mobileseg: error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from .. import manifest as _manifest
    from ..bench.targets.local import LocalTarget
    from ..export.api import export_model
    from ..registry import parse_resolution

    binary = check_binary(args.benchncnn)
    if args.loops < 1:
        raise MobilesegError(f"--loops must be at least 1, not {args.loops}")
    res = parse_resolution(args.res)
    target = LocalTarget(cpu=args.cpu)  # pins this process (our timing) to the CPU taskset gives benchncnn
    rows = []
    try:
        for model in [m for m in args.models.replace(",", " ").split() if m]:
            folder = Path(args.export_dir) / _manifest.export_dir_name(model, res)
            man = export_model(model, list(res), formats=["ncnn"], out=str(folder)).manifest
            param = folder / "model.ncnn.param"
            cmd = benchncnn_command(binary, param.resolve(), (res[1], res[0], 3), args.loops, target.cpu)
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=folder)
            theirs = parse_benchncnn(done.stdout + done.stderr)
            bn = next(iter(theirs.values()))
            ours = time_ours(folder, man, args.loops)
            rows.append(
                {
                    "model": model,
                    "resolution": list(res),
                    "cpu": target.cpu,
                    "benchncnn": bn,
                    "ours": ours,
                    "ratio_min": ours["min_ms"] / bn["min_ms"],
                    "ratio_avg": ours["avg_ms"] / bn["avg_ms"],
                    "command": " ".join(map(str, cmd)),
                }
            )
            print(
                f"{model} {res[0]}x{res[1]} cpu {target.cpu}: benchncnn min {bn['min_ms']:.2f} avg "
                f"{bn['avg_ms']:.2f} ms; ours min {ours['min_ms']:.2f} avg {ours['avg_ms']:.2f} median "
                f"{ours['median_ms']:.2f} ms; ours/benchncnn min {rows[-1]['ratio_min']:.3f} avg "
                f"{rows[-1]['ratio_avg']:.3f}",
                flush=True,
            )
    finally:
        target.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchncnn": str(binary), "loops": args.loops, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
