"""``mobileseg export``: BN-folded ONNX / ncnn / TFLite artifacts with a manifest and a parity check each."""

from __future__ import annotations

import json

from ..formats import DEFAULT_EXPORT_FORMATS, FORMATS, GRAPHS, PRECISIONS
from ._args import add_export_dir, add_list, add_quiet, split_list


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX, ncnn and TFLite (BatchNorm folded, parity-checked)")
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--res", default=None, help="448 or HxW such as 512x1024 (default: the model's)")
    p.add_argument(
        "--input-shape",
        default=None,
        metavar="NxCxHxW",
        help="with --model my_package.my_module:build_fn (any importable function returning an "
        "nn.Module): the input it takes, e.g. 1x3x512x512",
    )
    add_list(p, "--formats", f"any of {', '.join(FORMATS)} (default {' '.join(DEFAULT_EXPORT_FORMATS)})")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=list(PRECISIONS),
        help="fp16 writes fp16 weights for ncnn and TFLite (parity limit 2e-2); int8: static "
        "post-training quantization of ONNX, ncnn and TFLite (docs/converters.md, INT8)",
    )
    p.add_argument(
        "--calib",
        default=None,
        metavar="DIR",
        help="int8: folder of calibration images (default: synthetic images, said so in the manifest)",
    )
    p.add_argument(
        "--calib-count",
        type=int,
        default=None,
        metavar="N",
        help="int8: calibrate on the first N images of --calib in name order (default 32)",
    )
    add_list(
        p,
        "--int8-keep-float",
        "int8: layers kept in float (ONNX node names or torch module paths; "
        "ncnn layer names or patterns; TFLite tensor-name patterns)",
    )
    p.add_argument(
        "--graph",
        default="logits",
        choices=list(GRAPHS),
        help="logits at the model's stride (default) or + bilinear resize to input size + argmax",
    )
    p.add_argument("--weights", default=None, help="checkpoint file (default: seeded random weights)")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument(
        "--out", default=None, help="the export folder written (default: <export-dir>/<model>_<H>x<W>[_fp16][_argmax])"
    )
    add_export_dir(p)
    p.add_argument("--no-parity", action="store_true", help="skip running the artifacts against PyTorch")
    add_list(
        p,
        "--parity-runtimes",
        "runtimes that check their format instead of its host runtime, e.g. "
        "ncnn-vulkan: the ncnn artifact judged on the Vulkan device (limit: mobileseg/parity.py)",
    )
    p.add_argument("--force", action="store_true", help="convert again even if the cached artifacts are current")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export.api import export_model
    from ._format import table

    import os

    from ..manifest import export_dir_name
    from ..registry import get_spec, parse_resolution

    quiet = args.json or args.quiet
    if args.input_shape:  # a user's factory at that shape: every get_spec below sees it
        from ..export.api import factory_resolution

        h, w = factory_resolution(args.model, args.input_shape, args.res)
        args.res = args.res or f"{h}x{w}"
    out = args.out
    if out is None and args.export_dir != "export":
        spec = get_spec(args.model)
        res = parse_resolution(args.res) if args.res else spec.default_resolution
        out = os.path.join(args.export_dir, export_dir_name(spec.name, res, args.precision, args.graph))
    default = list(DEFAULT_EXPORT_FORMATS)
    if args.precision == "int8":  # without --formats: every format that has an int8 path
        from ..export.quantize import int8_formats

        default = list(int8_formats())
    res = export_model(
        args.model,
        args.res,
        formats=split_list(args.formats) or default,
        precision=args.precision,
        graph=args.graph,
        weights=args.weights,
        num_classes=args.num_classes,
        out=out,
        parity=not args.no_parity,
        force=args.force,
        log=None if quiet else print,
        parity_runtimes=split_list(args.parity_runtimes),
        calib=args.calib,
        calib_count=args.calib_count,
        int8_keep_float=split_list(args.int8_keep_float),
        input_shape=args.input_shape,
    )
    if args.json:
        print(json.dumps(res.manifest, indent=2))
        return 0 if res.ok else 1
    man = res.manifest
    h, w = man["resolution"]
    print(
        f"{man['model']} {h}x{w} ({man['precision']}, graph {man['graph']}) -> {res.out_dir}"
        f"{' (cache)' if res.cached else ''} in {res.seconds:.1f} s"
    )
    print(table(res.rows()))
    for fmt, why in res.failures().items():
        print(f"{fmt}: FAILED: {why}")
    return 0 if res.ok else 1
