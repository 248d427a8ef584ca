"""``mobileseg export``: BN-folded ONNX / ncnn / TFLite artifacts with a manifest and a parity check each."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX, ncnn and TFLite (BatchNorm folded, parity-checked)")
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--res", default=None, help="448 or HxW such as 512x1024 (default: the model's)")
    p.add_argument("--formats", default="onnx,ncnn,tflite", help="comma-separated subset of onnx,ncnn,tflite")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"],
                   help="fp16 writes fp16 weights for ncnn and TFLite (parity limit 2e-2)")
    p.add_argument("--graph", default="logits", choices=["logits", "argmax"],
                   help="logits at the model's stride (default) or + bilinear resize to input size + argmax")
    p.add_argument("--weights", default=None, help="checkpoint file (default: seeded random weights)")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--out", default=None, help="output folder (default: export/<model>_<H>x<W>[_fp16][_argmax])")
    p.add_argument("--no-parity", action="store_true", help="skip running the artifacts against PyTorch")
    p.add_argument("--force", action="store_true", help="convert again even if the cached artifacts are current")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export.api import export_model
    from ._format import table

    quiet = args.json
    res = export_model(args.model, args.res, formats=args.formats, precision=args.precision, graph=args.graph,
                       weights=args.weights, num_classes=args.num_classes, out=args.out,
                       parity=not args.no_parity, force=args.force, log=None if quiet else print)
    if args.json:
        print(json.dumps(res.manifest, indent=2))
        return 0 if res.ok else 1
    man = res.manifest
    h, w = man["resolution"]
    print(f"{man['model']} {h}x{w} ({man['precision']}, graph {man['graph']}) -> {res.out_dir}"
          f"{' (cache)' if res.cached else ''} in {res.seconds:.1f} s")
    print(table(res.rows()))
    for fmt, why in res.failures().items():
        print(f"{fmt}: FAILED: {why}")
    return 0 if res.ok else 1
