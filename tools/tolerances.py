"""Measure the numerical error of every parity comparison the tests make, over many seeds and sizes.

The tests' limits are set from this measurement (worst case seen x headroom), and each limit's comment quotes the
worst figure. Rerun after a dependency refresh (``python tools/pins.py drift``) or on a new machine:

    python tools/tolerances.py [--quick] [--out results/tolerances/<name>.json]

It reuses the tests' own model builders and randomisers (imported from tests/), so it measures exactly what the
tests compare. Sections: transformers SegFormer, the TopFormer attention formula, the XFA equations, torch->ONNX
exports (onnxruntime), and each exported format x precision against the BN-folded PyTorch model.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _rel_l2(a, b) -> float:
    """The tests' own figure (float32 norms, as test_segformer computes it), so the tool measures what they assert."""
    from test_segformer import rel_l2

    return rel_l2(a, b)


def transformers_segformer(seeds, sizes):
    """Our SegFormer against transformers' with the same converted random weights (test_segformer)."""
    import torch
    import test_segformer as ts
    from mobileseg.models.segformer import SegFormer
    from mobileseg.models.segformer_convert import convert_segformer_state

    out = []
    for deep in (False, True):
        for seed in seeds:
            torch.manual_seed(seed)
            hf = ts._hf_model(deep)
            ts._randomize(hf, seed)
            state, _ = convert_segformer_state(hf.state_dict())
            ours = SegFormer("b2" if deep else "b0", num_classes=11, norm_eps=1e-5).eval()
            ours.load_state_dict(state, strict=True)
            for h, w in sizes:
                x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
                with torch.no_grad():
                    out.append(
                        {
                            "case": f"{'deeper' if deep else 'b0-sized'} seed={seed} {h}x{w}",
                            "rel_l2": _rel_l2(ours(x), hf(pixel_values=x).logits),
                        }
                    )
    return out


def topformer_attention(seeds, sizes):
    """TopFormer's attention against the release formula written by hand (test_topformer)."""
    import torch
    import test_topformer as tt
    import mobileseg

    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        m = mobileseg.create_model("topformer-t")
        tt._randomize(m)
        attn = m.backbone.trans.transformer_blocks[0].attn.eval()
        for h, w in sizes:
            x = torch.randn(1, 208, h // 16, w // 16, generator=torch.Generator().manual_seed(seed))
            with torch.no_grad():
                ref = tt.release_attention(attn, x)
                out.append(
                    {
                        "case": f"seed={seed} tokens={h // 16}x{w // 16}",
                        "max_abs": float((attn(x) - ref).abs().max()),
                        "rel_l2": _rel_l2(attn(x), ref),
                    }
                )
    return out


def xfa_equations(seeds, tokens):
    """XFormer's cross feature attention against equations 2-5 (test_xformer)."""
    import torch
    import test_xformer as tx

    out = []
    for seed in seeds:
        for n in tokens:
            a, x, ref = tx.xfa_and_equations(seed, n)
            with torch.no_grad():
                y = a(x)
            out.append(
                {"case": f"seed={seed} tokens={n}", "max_abs": float((y - ref).abs().max()), "rel_l2": _rel_l2(y, ref)}
            )
    return out


def onnx_exports(seeds, models, sizes):
    """torch.onnx (legacy exporter, as the model tests use it) run by onnxruntime at one thread."""
    import io

    import onnxruntime as ort
    import torch
    import test_baselines as tb
    import mobileseg

    out = []
    for name in models:
        for seed in seeds:
            torch.manual_seed(seed)
            m = tb._randomise(mobileseg.create_model(name)).eval()
            for h, w in sizes:
                x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
                buf = io.BytesIO()
                torch.onnx.export(m, (x,), buf, dynamo=False, opset_version=17)
                so = ort.SessionOptions()
                so.intra_op_num_threads = 1
                s = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
                y = torch.from_numpy(s.run(None, {s.get_inputs()[0].name: x.numpy()})[0])
                with torch.no_grad():
                    out.append({"case": f"{name} seed={seed} {h}x{w}", "rel_l2": _rel_l2(y, m(x))})
    return out


def exported_formats(models, sizes, precisions, workdir):
    """Every format x precision through mobileseg's own export and parity check (the limits of mobileseg.parity)."""
    from mobileseg.export import export_model

    out = []
    for name in models:
        for res in sizes:
            for precision in precisions:
                r = export_model(
                    name,
                    resolution=res,
                    precision=precision,
                    out=str(Path(workdir) / f"{name}_{res}_{precision}"),
                    force=True,
                )
                for fmt, entry in r.manifest["formats"].items():
                    p = entry.get("parity") or {}
                    out.append(
                        {
                            "case": f"{name} {res}x{res} {fmt} {precision}",
                            "format": fmt,
                            "precision": precision,
                            "rel_l2": p.get("rel_l2"),
                            "argmax_agree": p.get("argmax_agree"),
                            "error": entry.get("error"),
                        }
                    )
    return out


def _baselines():
    import test_baselines as tb

    return list(tb.ALL)


def summarise(rows, key="rel_l2"):
    vals = [r[key] for r in rows if r.get(key) is not None]
    worst = max(rows, key=lambda r: r.get(key) or 0.0) if vals else None
    return {
        "cases": len(rows),
        f"worst_{key}": max(vals) if vals else None,
        "worst_case": worst["case"] if worst else None,
        "rows": rows,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds and sizes (a smoke run of the tool)")
    ap.add_argument("--sections", default="transformers,topformer,xfa,onnx,formats")
    ap.add_argument("--out", type=Path, help="write the JSON here (default: print a summary only)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mobileseg-tolerances"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    seeds = range(3) if args.quick else range(12)
    sections = set(args.sections.split(","))
    result = {
        "host": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "versions": {},
        "sections": {},
    }
    for pkg in (
        "torch",
        "transformers",
        "onnx",
        "onnxruntime",
        "ncnn",
        "pnnx",
        "ai-edge-litert",
        "litert-torch",
        "numpy",
    ):
        try:
            from importlib.metadata import version

            result["versions"][pkg] = version(pkg)
        except Exception:
            result["versions"][pkg] = None
    jobs = {
        "transformers": lambda: summarise(transformers_segformer(seeds, [(64, 64), (96, 128), (128, 160), (160, 224)])),
        "topformer": lambda: summarise(topformer_attention(seeds, [(128, 128), (256, 256), (512, 512)]), "max_abs"),
        "xfa": lambda: summarise(xfa_equations(seeds, [10, 64, 256, 1024]), "max_abs"),
        "onnx": lambda: summarise(
            onnx_exports(
                range(2) if args.quick else range(3),
                ["segformer-b0", "xformer-segformer", "topformer-t"] + _baselines(),
                [(64, 64), (128, 128)] if args.quick else [(64, 64), (128, 128), (128, 192)],
            )
        ),
        "formats": lambda: _formats_summary(
            exported_formats(
                ["topformer-t"] if args.quick else ["topformer-t", "topformer-b", "segformer-b0", "lraspp-mbv3-large"],
                [64] if args.quick else [64, 128, 256],
                ["fp32", "fp16"],
                args.workdir,
            )
        ),
    }
    for name, job in jobs.items():
        if name not in sections:
            continue
        t0 = time.monotonic()
        result["sections"][name] = job()
        s = {k: v for k, v in result["sections"][name].items() if k != "rows"}
        print(f"{name}: {s} ({time.monotonic() - t0:.0f} s)", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def _formats_summary(rows):
    by = {}
    for r in rows:
        by.setdefault(f"{r['format']} {r['precision']}", []).append(r)
    return {
        "cases": len(rows),
        "by_format": {k: {kk: vv for kk, vv in summarise(v).items() if kk != "rows"} for k, v in sorted(by.items())},
        "rows": rows,
    }


if __name__ == "__main__":
    sys.exit(main())
