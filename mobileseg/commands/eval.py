"""``mobileseg eval``: mIoU of an exported model on a validation folder (ADE20K or Cityscapes layout)."""

from __future__ import annotations

import json
import os

from ..eval.datasets import DATASETS
from ..formats import FORMATS
from ..results.paths import EVAL_FILE, RUNS_DIR
from ._args import add_allow_edited, add_export_dir, add_quiet


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="mIoU of an exported artifact on ADE20K / Cityscapes (feeds `mobileseg report --eval`)"
    )
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--weights", default=None, help="checkpoint (official layouts are converted); default: random init")
    p.add_argument("--format", "-f", default="onnx", choices=list(FORMATS), dest="fmt")
    p.add_argument("--runtime", default=None, help="runtime adapter (default: the host runtime of the format)")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "int8"],
        help="int8: evaluate the int8 artifact and the fp32 one on the same images (miou_delta)",
    )
    p.add_argument("--calib", default=None, metavar="DIR", help="int8: calibration images (default: synthetic)")
    p.add_argument("--calib-count", type=int, default=None, metavar="N", help="int8: calibration images used")
    p.add_argument(
        "--data",
        required=True,
        help="dataset root: images/ + annotations/ (ADE20K) or leftImg8bit/ + gtFine/ (Cityscapes)",
    )
    p.add_argument("--dataset", choices=list(DATASETS), default=None, help="default: detected from --data")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images (sorted by name)")
    p.add_argument(
        "--res", default=None, help="artifact input size, 512 or HxW (default: the model's; 512x1024 for Cityscapes)"
    )
    p.add_argument(
        "--mode",
        choices=["slide", "stretch"],
        default="slide",
        help="slide (default): keep ratio, short side to the artifact's, sliding windows; stretch: resize to the artifact",
    )
    add_export_dir(p, default="export/eval", aliases=("--export-root",))
    p.add_argument(
        "--out",
        default=RUNS_DIR,
        help=f"folder whose eval.jsonl the record is appended to (default {RUNS_DIR}: {EVAL_FILE})",
    )
    add_quiet(p, aliases=("--no-progress",))
    add_allow_edited(p)
    p.add_argument("--json", action="store_true", help="print the whole record")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..eval.evaluate import append_record, evaluate

    rec = evaluate(
        args.model,
        args.data,
        fmt=args.fmt,
        dataset=args.dataset,
        weights=args.weights,
        res=args.res,
        limit=args.limit,
        mode=args.mode,
        export_root=args.export_dir,
        progress=not args.quiet,
        runtime=args.runtime,
        precision=args.precision,
        calib=args.calib,
        calib_count=args.calib_count,
    )
    # --out is a folder; a path ending in .jsonl (the old meaning) is still taken as the file itself
    path = append_record(rec, args.out if str(args.out).endswith(".jsonl") else os.path.join(args.out, "eval.jsonl"))
    if args.json:
        print(json.dumps(rec, indent=2))
    h, w = rec["resolution"]
    print(
        f"{rec['model']} ({rec['format']} via {rec['runtime']} {rec['runtime_version']}, {h}x{w}) on {rec['dataset']} "
        f"val, {rec['images']} images: mIoU {rec['miou']:.2f}%, mAcc {rec['macc']:.2f}%, aAcc {rec['aacc']:.2f}%"
    )
    if rec["weights"]["path"] is None:
        print("note: no --weights given, so the model is randomly initialised and this mIoU means nothing")
    if rec.get("miou_delta") is not None:
        print(
            f"{rec['precision']}: mIoU {rec['miou']:.2f}% vs fp32 {rec['fp32_miou']:.2f}% on the same images: "
            f"delta {rec['miou_delta']:+.2f} points"
        )
    print(f"record appended to {path} (use: mobileseg report --eval {path})")
    return 0
