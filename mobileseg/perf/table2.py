"""XFormer's Table 2 on a CUDA GPU: time and memory of DeiT, MobileViT and XFormer (MHSA, XFA) against resolution.

The paper (arXiv 2207.07268, Table 2) measured batch 2 on a 24 GB Titan RTX at 256-1280 px; its claims at 1024 px
are "almost 2x" faster than MobileViT with 32% less memory, and softmax attention (MHSA) out of memory at 1280 where
XFA runs. Rows: DeiT-Tiny and MobileViT-S from timm (the paper's baselines, the ``gpu`` extra) and ``xformer-cls``
from mobileseg with ``attention="mhsa"`` and ``"xfa"``; random weights (time and memory do not depend on them).

Every softmax-attention row runs with both kernels: ``math`` (the explicit matmul-softmax-matmul, the N x N matrix
materialised: what the paper's 2022 code ran) and ``fused`` (PyTorch's scaled-dot-product attention limited to its
flash and memory-efficient kernels: what a user runs today); XFA has no softmax attention, so no kernel. Per cell:
fp32 with TF32 off, inference (``torch.no_grad``; ``--autograd`` records the graph as a training forward does),
``--warmup`` untimed passes, then ``--repeats`` passes each timed with CUDA events (median and its 95% interval,
:mod:`mobileseg.results.stats`), and the peak memory of the caching allocator over those passes, both allocated
(tensors alive) and reserved (what the allocator holds from the driver), the weights and the input included.

``--cap-gb`` (default 24) caps this process's allocator (``torch.cuda.set_per_process_memory_fraction``), so that
out-of-memory means what it meant on the Titan RTX; an OOM is recorded as the cell's status, not an abort.

Run: ``python -m mobileseg.perf.table2 [--res 256 512 ...] [--rows ...] [--kernels math fused]``; writes
``results/runs/table2-<gpu>.{json,md}`` (the committed run: ``results/reference/``).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import gc
import json
import os
import platform
import re
import sys
import time
from dataclasses import dataclass

from ..errors import MobilesegError, require
from ..results.paths import RUNS_DIR
from ..results.stats import median_ci, summarize

RESOLUTIONS = (256, 512, 768, 1024, 1280)
KERNELS = ("math", "fused")
MIB = 2**20
GIB = 2**30
PAPER_SOURCE = "XFormer (arXiv 2207.07268) Table 2: batch 2, Titan RTX 24 GB; time in ms, memory in MB"


@dataclass(frozen=True)
class Row:
    """One row of Table 2: what builds it, and the input sizes it accepts."""

    name: str
    label: str
    attention: str  # "mhsa" or "xfa"
    source: str  # "timm" or "mobileseg"
    size_multiple: int

    @property
    def kernels(self) -> tuple:
        return KERNELS if self.attention == "mhsa" else (None,)

    def build(self, res: int):
        if self.source == "timm":
            timm = require("timm", "gpu", f"the {self.label} row of Table 2")
            if self.name == "deit-tiny":  # position embedding sized for the input, as the paper must have done
                return timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=res)
            return timm.create_model("mobilevit_s", pretrained=False)
        from ..models.xformer import XFormerCls

        return XFormerCls(attention=self.attention)


ROWS = {
    r.name: r
    for r in (
        Row("deit-tiny", "DeiT-Tiny", "mhsa", "timm", 16),
        Row("mobilevit-s", "MobileViT-S", "mhsa", "timm", 32),
        Row("xformer-mhsa", "XFormer MHSA", "mhsa", "mobileseg", 64),
        Row("xformer-xfa", "XFormer XFA", "xfa", "mobileseg", 64),
    )
}

# (time ms, memory MB) per resolution; None: "N/A / OOM" in the paper
PAPER = {
    "deit-tiny": {256: (5.02, 160), 512: (10.33, 789), 768: (37.02, 2554), 1024: (90.81, 6546), 1280: None},
    "mobilevit-s": {
        256: (7.67, 426),
        512: (13.38, 1856),
        768: (42.96, 4965),
        1024: (98.06, 10837),
        1280: (236.9, 20992),
    },
    "xformer-mhsa": {256: (9.34, 520), 512: (16.92, 2434), 768: (35.12, 7031), 1024: (109.77, 16426), 1280: None},
    "xformer-xfa": {
        256: (10.82, 485),
        512: (10.92, 1870),
        768: (28.88, 4176),
        1024: (49.89, 7403),
        1280: (76.56, 10551),
    },
}
RATIO_RES = 1024


def check_rows(names) -> list[Row]:
    """The rows asked for, in Table 2's order; an unknown name is one sentence with the nearest ones."""
    for n in names:
        if n not in ROWS:
            near = difflib.get_close_matches(n, list(ROWS), n=2, cutoff=0.4)
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            raise MobilesegError(f"unknown Table 2 row '{n}': choose from {', '.join(ROWS)}{hint}")
    return [r for r in ROWS.values() if r.name in set(names)]


def check_options(rows, resolutions, kernels, batch: int, cap_gb: float, warmup: int, repeats: int) -> None:
    """One sentence for the first option that cannot be run (before the GPU is touched)."""
    for k in kernels:
        if k not in KERNELS:
            raise MobilesegError(f"unknown attention kernel '{k}': choose from {', '.join(KERNELS)}")
    for res in resolutions:
        for r in rows:
            if res <= 0 or res % r.size_multiple:
                raise MobilesegError(
                    f"{r.label} needs an input size that is a multiple of {r.size_multiple}, not {res}"
                )
    if batch < 1:
        raise MobilesegError(f"--batch must be at least 1, not {batch}")
    if not cap_gb > 0:
        raise MobilesegError(f"--cap-gb must be above 0, not {cap_gb:g}")
    if warmup < 0:
        raise MobilesegError(f"--warmup must be 0 or more, not {warmup}")
    if repeats < 1:
        raise MobilesegError(f"--repeats must be at least 1, not {repeats}")


def cap_fraction(cap_gb: float, total_bytes: int) -> float:
    """The fraction of the GPU's memory that ``cap_gb`` GiB is (set_per_process_memory_fraction's argument)."""
    cap = cap_gb * GIB
    if cap > total_bytes:
        raise MobilesegError(f"--cap-gb {cap_gb:g} is more than this GPU has ({total_bytes / GIB:.1f} GiB)")
    return cap / total_bytes


def _is_oom(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(exc, oom) or "out of memory" in str(exc).lower()


def _kernel_context(kernel: str | None):
    """math: PyTorch's math SDPA (also for modules that call sdpa); fused: flash and memory-efficient only, so that
    a case neither supports fails instead of falling back to math unnoticed."""
    import contextlib

    if kernel is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if kernel == "math":
        return sdpa_kernel([SDPBackend.MATH])
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION])


def fused_backend(device: str = "cuda", head_dim: int = 32) -> str | None:
    """Which fused kernel fp32 attention gets on this GPU: 'flash', 'efficient' or None (tried one by one)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(2, 3, 64, head_dim, device=device)
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        try:
            with sdpa_kernel([be]):
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
            return name
        except RuntimeError:  # "No available kernel" for this dtype / head size
            continue
    return None


def measure_cell(
    row: Row,
    kernel: str | None,
    res: int,
    batch: int = 2,
    warmup: int = 10,
    repeats: int = 50,
    autograd: bool = False,
    device: str = "cuda",
    build=None,
    cuda_graph: bool = False,
) -> dict:
    """Time and peak memory of one cell. ``build(res)`` makes the model (default: the row's); an out-of-memory
    error anywhere gives ``status: "oom"``. Peak memory is the CUDA caching allocator's (None off CUDA).
    ``cuda_graph`` times replays of one captured inference pass (CUDA only, no autograd)."""
    if cuda_graph and (autograd or not device.startswith("cuda")):
        raise MobilesegError("CUDA-graph timing needs a CUDA device and inference (no autograd)")
    import torch

    from ..models.xformer import set_fused_attn

    rec = {
        "row": row.name,
        "label": row.label,
        "attention": row.attention,
        "kernel": kernel,
        "resolution": res,
        "batch": batch,
        "autograd": autograd,
        "cuda_graph": cuda_graph,
        "status": "ok",
        "error": None,
    }
    cuda = device.startswith("cuda")
    model = x = graph = out = None
    try:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model = (build or row.build)(res).to(device).eval()
        rec["params"] = sum(p.numel() for p in model.parameters())
        if kernel is not None:
            rec["attention_modules"] = set_fused_attn(model, kernel == "fused")
        x = torch.randn(batch, 3, res, res, device=device)
        grad = torch.enable_grad() if autograd else torch.no_grad()
        samples = []
        with grad, _kernel_context(kernel):
            for _ in range(warmup):
                model(x)
            if cuda:
                torch.cuda.synchronize()
                rec["base_allocated_mib"] = torch.cuda.memory_allocated() / MIB
                torch.cuda.reset_peak_memory_stats()
            run = functools.partial(model, x)
            if cuda_graph:  # one captured pass, replayed: the time of the GPU's work without Python's launches
                graph, out = _capture(model, x)
                run = graph.replay
            for _ in range(repeats):
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    out = run()
                    end.record()
                    samples.append((start, end))
                else:
                    t0 = time.perf_counter()
                    out = run()
                    samples.append((time.perf_counter() - t0) * 1e3)
                if not cuda_graph:
                    del out  # the next pass must not find this one's graph (autograd) or output still alive
            if cuda:
                torch.cuda.synchronize()
                samples = [s.elapsed_time(e) for s, e in samples]
                rec["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / MIB
                rec["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / MIB
        rec["timer"] = ("cuda-graph-replay" if cuda_graph else "cuda-events") if cuda else "perf_counter"
        rec["samples_ms"] = [round(v, 4) for v in samples]
        rec["stats_ms"] = {**summarize(samples), **median_ci(samples)}
    except Exception as exc:  # noqa: BLE001 - an OOM (or a failure) is this cell's result, not the run's end
        rec["status"] = "oom" if _is_oom(exc) else "error"
        rec["error"] = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        if cuda:
            rec["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / MIB
            rec["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / MIB
    finally:
        model = x = graph = out = run = None  # noqa: F841 - released before the next cell's empty_cache
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    return rec


def _capture(model, x):
    """A CUDA graph of one ``model(x)`` pass (warmed on a side stream, as capture requires) and its output."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            model(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = model(x)
    return graph, out


def cells(rows, resolutions, kernels):
    """(row, kernel, res) in table order: each row's kernels, each kernel's resolutions from small to large."""
    for r in rows:
        for k in r.kernels:
            if k is None or k in kernels:
                for res in sorted(resolutions):
                    yield r, k, res


def _median(rec):
    return (rec.get("stats_ms") or {}).get("median") if rec.get("status") == "ok" else None


def ratios(records, res: int = RATIO_RES) -> list[dict]:
    """Table 2's two claims at ``res``: XFormer XFA against MobileViT, time and memory (ours per MobileViT kernel
    and autograd mode, beside the paper's)."""
    pt, pm = PAPER["xformer-xfa"][res], PAPER["mobilevit-s"][res]
    out = [
        {
            "source": "paper",
            "kernel": None,
            "autograd": None,
            "speedup": pm[0] / pt[0],
            "memory_saving": 1 - pt[1] / pm[1],
            "xfa_ms": pt[0],
            "mobilevit_ms": pm[0],
            "xfa_mb": pt[1],
            "mobilevit_mb": pm[1],
        }
    ]
    by = {(r["row"], r["kernel"], r["resolution"], r["autograd"]): r for r in records}
    for grad in sorted({r["autograd"] for r in records}):
        xfa = by.get(("xformer-xfa", None, res, grad))
        for k in KERNELS:
            mv = by.get(("mobilevit-s", k, res, grad))
            if not xfa or not mv or _median(xfa) is None or _median(mv) is None:
                continue
            out.append(
                {
                    "source": "ours",
                    "kernel": k,
                    "autograd": grad,
                    "speedup": _median(mv) / _median(xfa),
                    "memory_saving": 1 - xfa["peak_allocated_mib"] / mv["peak_allocated_mib"],
                    "memory_saving_reserved": 1 - xfa["peak_reserved_mib"] / mv["peak_reserved_mib"],
                    "xfa_ms": _median(xfa),
                    "mobilevit_ms": _median(mv),
                    "xfa_mb": xfa["peak_allocated_mib"],
                    "mobilevit_mb": mv["peak_allocated_mib"],
                }
            )
    return out


def _cell_text(rec) -> str:
    if rec is None:
        return "-"
    if rec["status"] == "oom":
        return "OOM"
    if rec["status"] != "ok":
        return "error"
    s = rec["stats_ms"]
    ci = ""
    if s.get("median_ci_low") is not None:
        ci = f" [{s['median_ci_low']:.2f}-{s['median_ci_high']:.2f}]"
    return f"{s['median']:.2f}{ci} / {rec['peak_allocated_mib']:.0f} ({rec['peak_reserved_mib']:.0f})"


def _paper_text(v) -> str:
    return "OOM" if v is None else f"{v[0]:g} / {v[1]:g}"


def markdown(meta: dict, records: list[dict]) -> str:
    """The table beside the paper's figures, one block per autograd mode, and the two ratios at 1024 px."""
    res_list = sorted({r["resolution"] for r in records})
    lines = [
        f"# XFormer Table 2 on {meta.get('gpu', '?')}",
        "",
        f"Batch {meta.get('batch')}, fp32 (TF32 off), {meta.get('warmup')} warm-up + {meta.get('repeats')} "
        f"timed passes per cell ({'replays of a captured CUDA graph' if meta.get('cuda_graph') else 'CUDA events'}"
        f"), memory cap {meta.get('cap_gb')} GiB; torch "
        f"{meta.get('torch')}, timm {meta.get('timm')}. Cells: median ms [95% interval] / peak allocated MiB "
        f"(peak reserved MiB). Paper: {PAPER_SOURCE}. Fused kernel: {meta.get('fused_backend')}.",
        "",
    ]
    by = {(r["row"], r["kernel"], r["resolution"], r["autograd"]): r for r in records}
    for grad in sorted({r["autograd"] for r in records}):
        mode = "autograd on (graph recorded, as in training)" if grad else "inference (torch.no_grad)"
        lines += [
            f"## {mode}",
            "",
            "| model | attention | kernel | source | " + " | ".join(f"{r} px" for r in res_list) + " |",
            "|---" * (4 + len(res_list)) + "|",
        ]
        for row in ROWS.values():
            if not any(r["row"] == row.name and r["autograd"] == grad for r in records):
                continue
            lines.append(
                f"| {row.label} | {row.attention.upper()} | | paper | "
                + " | ".join(
                    _paper_text(PAPER[row.name].get(res, ())) if res in PAPER[row.name] else "-" for res in res_list
                )
                + " |"
            )
            for k in row.kernels:
                if not any(by.get((row.name, k, res, grad)) for res in res_list):
                    continue
                lines.append(
                    f"| {row.label} | {row.attention.upper()} | {k or '-'} | ours | "
                    + " | ".join(_cell_text(by.get((row.name, k, res, grad))) for res in res_list)
                    + " |"
                )
        lines.append("")
    rs = ratios(records)
    lines += [
        f"## XFormer XFA against MobileViT-S at {RATIO_RES} px",
        "",
        "| source | MobileViT kernel | autograd | speed-up (MobileViT ms / XFA ms) | memory saving "
        "(1 - XFA / MobileViT, allocated) | reserved |",
        "|---|---|---|---|---|---|",
    ]
    for r in rs:
        res_mem = f"{r['memory_saving_reserved']:.0%}" if "memory_saving_reserved" in r else "-"
        lines.append(
            f"| {r['source']} | {r['kernel'] or '-'} | {'-' if r['autograd'] is None else r['autograd']} | "
            f"{r['speedup']:.2f}x ({r['mobilevit_ms']:.2f} / {r['xfa_ms']:.2f}) | {r['memory_saving']:.0%} "
            f"({r['mobilevit_mb']:.0f} -> {r['xfa_mb']:.0f}) | {res_mem} |"
        )
    return "\n".join(lines) + "\n"


def write(stem: str, meta: dict, records: list[dict]) -> None:
    """``<stem>.json`` (meta, ratios, one record per cell) and ``<stem>.md`` (the tables)."""
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "ratios": ratios(records), "records": records}, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(markdown(meta, records))


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def _meta(args, torch, fused: str | None) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        timm_version = version("timm")
    except PackageNotFoundError:
        timm_version = None
    props = torch.cuda.get_device_properties(0)
    return {
        "benchmark": "table2",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "gpu": props.name,
        "gpu_memory_gib": round(props.total_memory / GIB, 1),
        "cap_gb": args.cap_gb,
        "cap_note": "GiB of this process's caching allocator (set_per_process_memory_fraction); the Titan RTX's "
        "24 GB also held the CUDA context",
        "batch": args.batch,
        "cuda_graph": args.cuda_graph,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "precision": "fp32",
        "tf32": False,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "timm": timm_version,
        "python": platform.python_version(),
        "fused_backend": fused,
        "paper": PAPER_SOURCE,
        "memory_definition": "torch.cuda.max_memory_allocated / max_memory_reserved over the timed passes, "
        "weights and input included, MiB",
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mobileseg.perf.table2", description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=list(ROWS), help=f"any of {', '.join(ROWS)} (default all)")
    p.add_argument("--res", type=int, nargs="+", default=list(RESOLUTIONS))
    p.add_argument(
        "--kernels",
        nargs="+",
        default=list(KERNELS),
        help="attention kernels of the MHSA rows: math "
        "(explicit softmax matrix), fused (flash / memory-efficient SDPA); default both",
    )
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument(
        "--cap-gb",
        type=float,
        default=24.0,
        help="GiB this process may allocate on the GPU (default 24, the paper's Titan RTX)",
    )
    p.add_argument("--autograd", action="store_true", help="also measure with autograd recording (no torch.no_grad)")
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="time replays of a captured CUDA graph (the GPU's time "
        "without Python's kernel launches); inference only, not with --autograd",
    )
    p.add_argument("--out", default=RUNS_DIR, help="folder written (default results/runs)")
    args = p.parse_args(argv)
    try:
        if args.cuda_graph and args.autograd:
            raise MobilesegError("--cuda-graph times inference passes only: leave out --autograd")
        rows = check_rows(args.rows)
        check_options(rows, args.res, args.kernels, args.batch, args.cap_gb, args.warmup, args.repeats)
        import torch

        if any(r.source == "timm" for r in rows):
            require("timm", "gpu", "Table 2's DeiT and MobileViT rows")
        if not torch.cuda.is_available():
            raise MobilesegError(
                f"Table 2 is a GPU measurement and torch sees no CUDA device here (torch {torch.__version__})"
            )
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        torch.cuda.set_per_process_memory_fraction(
            cap_fraction(args.cap_gb, torch.cuda.get_device_properties(0).total_memory)
        )
    except MobilesegError as exc:
        print(f"mobileseg.perf.table2: {exc}", file=sys.stderr)
        return 2
    fused = fused_backend() if "fused" in args.kernels else None
    meta = _meta(args, torch, fused)
    records = []
    stem = os.path.join(args.out, f"table2-{_slug(meta['gpu'])}" + ("-cuda-graph" if args.cuda_graph else ""))
    os.makedirs(args.out, exist_ok=True)
    for grad in [False, True] if args.autograd else [False]:
        for row, kernel, res in cells(rows, args.res, args.kernels):
            rec = measure_cell(
                row, kernel, res, args.batch, args.warmup, args.repeats, autograd=grad, cuda_graph=args.cuda_graph
            )
            records.append(rec)
            print(
                f"{row.label:13s} {kernel or '-':5s} {res:5d}px grad={int(grad)}  {_cell_text(rec)}"
                + (f"  {rec['error']}" if rec["status"] == "error" else ""),
                flush=True,
            )
            write(stem, meta, records)  # after every cell: a run cut short keeps what it measured
    print(markdown(meta, records))
    print(f"written: {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
