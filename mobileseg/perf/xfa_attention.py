"""XFA vs standard multi-head self-attention inside XFormer: time and peak memory against resolution.

The shape of Table 2 of the XFormer paper (arXiv 2207.07268), measured on this machine's CPU instead of a Titan
RTX GPU: the ``xformer-cls`` network built with ``attention="xfa"`` (the paper) and ``attention="mhsa"`` (softmax
attention over the same QKV dim, 3 heads of 32), at 256, 512, 768 and 1024 px, batch 1, one thread (the paper
used batch 2 on a GPU).

Per cell, in a fresh subprocess (so that peak memory is that cell's alone):
  * ``model_ms``: median wall time of the whole forward pass (after ``--warmup`` untimed passes);
  * ``attention_ms``: median time spent inside the attention modules (forward hooks, same passes);
  * ``peak_mb``: growth of the process's peak resident memory (``ru_maxrss``) from the built model to the end of
    the timed passes: activation memory including the allocator's caching, not a GPU allocator figure.

Run: ``python -m mobileseg.perf.xfa_attention [--res 256 512 768 1024] [--repeats 3]``; writes
``results/runs/xfa-attention-cpu-1thread.{csv,json}`` (the committed run: ``results/reference/``). The machine is shared: times are noisy (compare within a run).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time

from ..results.paths import RUNS_DIR

RESULT_STEM = "xfa-attention-cpu-1thread"


def _cell(attention: str, res: int, warmup: int, repeats: int) -> dict:
    import resource
    import statistics

    import torch

    torch.set_num_threads(1)
    from mobileseg.models.xformer import CrossFeatureAttention, MultiHeadSelfAttention, XFormerCls

    model = XFormerCls(attention=attention).eval()
    x = torch.randn(1, 3, res, res)
    attn_time = [0.0]
    starts = {}

    def pre(m, inp):
        starts[id(m)] = time.perf_counter()

    def post(m, inp, out):
        attn_time[0] += time.perf_counter() - starts.pop(id(m))

    for m in model.modules():
        if isinstance(m, (CrossFeatureAttention, MultiHeadSelfAttention)):
            m.register_forward_pre_hook(pre)
            m.register_forward_hook(post)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model_ms, attn_ms = [], []
    with torch.no_grad():
        for i in range(warmup + repeats):
            attn_time[0] = 0.0
            t0 = time.perf_counter()
            model(x)
            dt = time.perf_counter() - t0
            if i >= warmup:
                model_ms.append(dt * 1e3)
                attn_ms.append(attn_time[0] * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stage_tokens = [(res // s) ** 2 // 4 for s in (8, 16, 32)]  # tokens per sequence in the XF stages
    return {
        "attention": attention,
        "resolution": res,
        "batch": 1,
        "threads": 1,
        "warmup": warmup,
        "repeats": repeats,
        "model_ms": round(statistics.median(model_ms), 2),
        "attention_ms": round(statistics.median(attn_ms), 2),
        "peak_mb": round((peak - base) / 1024, 1),
        "model_ms_samples": [round(v, 2) for v in model_ms],
        "attention_ms_samples": [round(v, 2) for v in attn_ms],
        "tokens_per_sequence": stage_tokens,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--res", type=int, nargs="+", default=[256, 512, 768, 1024])
    p.add_argument("--attention", nargs="+", default=["xfa", "mhsa"], choices=["xfa", "mhsa"])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=RUNS_DIR, help="folder written (default results/runs)")
    p.add_argument("--cell", nargs=2, metavar=("ATTENTION", "RES"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cell:
        print(json.dumps(_cell(args.cell[0], int(args.cell[1]), args.warmup, args.repeats)))
        return 0
    rows = []
    for res in args.res:
        for attention in args.attention:
            cmd = [
                sys.executable,
                "-m",
                "mobileseg.perf.xfa_attention",
                "--cell",
                attention,
                str(res),
                "--warmup",
                str(args.warmup),
                "--repeats",
                str(args.repeats),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                row = {"attention": attention, "resolution": res, "error": out.stderr.strip().splitlines()[-1:]}
            else:
                row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{attention:5s} {res:5d}px  model {row.get('model_ms', '-'):>9} ms  attention "
                f"{row.get('attention_ms', '-'):>9} ms  peak +{row.get('peak_mb', '-')} MB",
                flush=True,
            )
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    import torch

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    meta = {
        "benchmark": "xfa_attention",
        "model": "xformer-cls",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": {
            "cpu_model": cpu,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "torch": torch.__version__,
        "loadavg_at_end": load,
        "note": "shared 2-core machine, other jobs running: times are noisy; batch 1, 1 thread, CPU "
        "(paper Table 2: batch 2, Titan RTX GPU)",
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, RESULT_STEM + ".json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    cols = ["attention", "resolution", "model_ms", "attention_ms", "peak_mb", "batch", "threads", "repeats"]
    with open(os.path.join(args.out, RESULT_STEM + ".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
