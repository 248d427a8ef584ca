"""``evaluate``: mIoU of an exported model, run through a runtime adapter, on a validation folder.

The artifact is made by :func:`mobileseg.export.export_model` (contract 2) and run with
:func:`mobileseg.runtimes.get_runtime` (contract 3), so the number measures the file that is benchmarked.

Test-time resize (the papers' protocol, mmseg's ``keep_ratio`` test pipeline): each image is rescaled so that its
short side equals the artifact's short side (at most ``long_factor`` times that on the long side), keeping the
aspect ratio. Artifacts have one fixed input shape, so (``mode="slide"``, the default) the rescaled image is padded
with zeros after normalisation (= the mean colour) up to at least the artifact's shape and covered by windows of
that shape (stride two thirds of a window, aligned to the output stride); overlapping logits are averaged on the
model's output grid. When the rescaled image fits the artifact exactly (e.g. Cityscapes 1024x2048 at 512x1024)
this is the paper's whole-image inference; otherwise it is mmseg's sliding-window inference, and the record says
which happened. ``mode="stretch"`` instead resizes every image to the artifact's shape, ignoring the ratio.
Logits are then resampled bilinearly once, from the model's output grid straight to the label's pixels (padding
excluded), and the argmax is compared with the label.
"""

from __future__ import annotations

import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import formats
from ..errors import MobilesegError
from ..hashing import sha256_file as _sha256
from ..manifest import load as load_manifest
from .datasets import DATASETS, find_pairs, read_image, read_label
from .metrics import ConfusionMatrix
from .resize import logits_to_labels, resize_image


MODES = ("slide", "stretch")


class EvalError(MobilesegError):
    pass


def keep_ratio_size(h0: int, w0: int, short: int, long_max: int) -> tuple[int, int]:
    """mmseg ``keep_ratio`` rescale: the largest scale with short side <= ``short`` and long side <= ``long_max``."""
    scale = min(short / min(h0, w0), long_max / max(h0, w0))
    return max(1, int(h0 * scale + 0.5)), max(1, int(w0 * scale + 0.5))


def window_offsets(size: int, win: int, stride: int) -> list[int]:
    """Window starts covering ``size`` (>= ``win``) with windows of ``win``: regular, the last one flush."""
    if size <= win:
        return [0]
    n = math.ceil((size - win) / stride) + 1
    return sorted({min(i * stride, size - win) for i in range(n)})


def predict(run, image: np.ndarray, in_hw, mean, std, out_hw, mode: str = "slide", long_factor: float = 4.0):
    """Class map (label-sized, H0 x W0) for one uint8 RGB image, running ``run`` (N x 3 x H x W -> N x C x h x w).

    Returns ``(prediction, info)`` with ``info`` = {"windows": n, "resized": [h1, w1]}.
    """
    H, W = in_hw
    h0, w0 = image.shape[:2]
    mean = np.asarray(mean, np.float32).reshape(1, 1, 3)
    std = np.asarray(std, np.float32).reshape(1, 1, 3)
    if mode == "stretch":
        x = (resize_image(image, H, W) - mean) / std
        logits = np.asarray(run(np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)))[0]
        stride = H / logits.shape[1]
        return logits_to_labels(logits, h0, w0, stride, H, W), {"windows": 1, "resized": [H, W]}
    short = min(H, W)
    h1, w1 = keep_ratio_size(h0, w0, short, int(long_factor * short))
    x = (resize_image(image, h1, w1) - mean) / std
    os_h, os_w = H / out_hw[0], W / out_hw[1]
    step = int(os_h)
    # canvas: at least the window, a multiple of the output stride (window starts stay on the logit grid)
    ch, cw = max(H, -(-h1 // step) * step), max(W, -(-w1 // step) * step)
    canvas = np.zeros((ch, cw, 3), np.float32)
    canvas[:h1, :w1] = x
    sy = max(step, int(H * 2 / 3) // step * step)
    sx = max(step, int(W * 2 / 3) // step * step)
    acc = count = None
    n = 0
    for y in window_offsets(ch, H, sy):
        for xo in window_offsets(cw, W, sx):
            win = canvas[y : y + H, xo : xo + W].transpose(2, 0, 1)[None]
            out = np.asarray(run(np.ascontiguousarray(win, dtype=np.float32)))[0]
            if acc is None:
                acc = np.zeros((out.shape[0], int(ch / os_h), int(cw / os_w)), np.float32)
                count = np.zeros(acc.shape[1:], np.float32)
            gy, gx = int(y / os_h), int(xo / os_w)
            acc[:, gy : gy + out.shape[1], gx : gx + out.shape[2]] += out
            count[gy : gy + out.shape[1], gx : gx + out.shape[2]] += 1
            n += 1
    acc /= np.maximum(count, 1)
    return logits_to_labels(acc, h0, w0, os_h, h1, w1), {"windows": n, "resized": [h1, w1]}


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.t0, self.last = total, enabled, time.monotonic(), -1.0
        self.tty = enabled and sys.stderr.isatty()

    def update(self, done: int, miou: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not self.tty and done < self.total and now - self.last < 10:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate else 0
        msg = f"[eval] {done}/{self.total} images, mIoU so far {miou:.2f}%, {rate:.2f} img/s, eta {eta:.0f} s"
        print(
            ("\r" + msg) if self.tty else msg,
            end="" if self.tty and done < self.total else "\n",
            file=sys.stderr,
            flush=True,
        )


def run_pairs(run, pairs, dataset: str, in_hw, mean, std, out_hw, mode: str = "slide", progress: bool = False):
    """Predict every (image, label) pair with ``run`` and accumulate the confusion matrix.

    Returns ``(ConfusionMatrix, windows run, images that needed more than one window)``.
    """
    from ..errors import DatasetError

    layout = DATASETS[dataset]
    cm = ConfusionMatrix(layout.num_classes)
    prog = _Progress(len(pairs), progress)
    windows = slid = 0
    for i, (img_path, lab_path) in enumerate(pairs, 1):
        image = read_image(img_path)
        label = read_label(lab_path, dataset)
        if label.shape != image.shape[:2]:
            raise DatasetError(
                f"{Path(lab_path).name} is {label.shape[1]}x{label.shape[0]} but its image is "
                f"{image.shape[1]}x{image.shape[0]}: the label does not belong to the image"
            )
        pred, info = predict(run, image, in_hw, mean, std, out_hw, mode, layout.long_factor)
        cm.update(pred, label)
        windows += info["windows"]
        slid += info["windows"] > 1
        prog.update(i, cm.miou())
    return cm, windows, slid


def export_for_eval(
    model: str,
    fmt: str,
    res,
    num_classes: int,
    weights=None,
    export_root=None,
    log=None,
    precision: str = "fp32",
    calib=None,
    calib_count=None,
) -> Path:
    """Export (or reuse, through the exporter's cache) the artifact for ``fmt``; returns the export folder.

    Folders: ``<export_root>/<weights stem or random-init>-<classes>c/<model>_<H>x<W>``.
    """
    from ..export import export_model
    from ..manifest import export_dir_name, ok_formats, read

    export_root = Path(export_root or "export/eval")
    tag = "random-init" if weights is None else Path(weights).stem
    folder = export_root / f"{tag}-{num_classes}c" / export_dir_name(model, tuple(res), precision)
    old = read(folder)
    have = ok_formats(old) if old and old.get("num_classes") == num_classes else set()
    if precision == "int8":  # int8 formats share one calibration: convert only the one asked for
        have = set()
    result = export_model(
        model,
        resolution=tuple(res),
        formats=sorted(have | {fmt}),
        precision=precision,
        graph="logits",
        weights=None if weights is None else str(weights),
        num_classes=num_classes,
        out=str(folder),
        log=log,
        **({"calib": calib, "calib_count": calib_count} if precision == "int8" else {}),
    )
    entry = result.manifest["formats"].get(fmt) or {}
    if not entry.get("ok", False) and not (precision == "int8" and entry.get("files")):
        # an int8 artifact outside its parity limit is still evaluated: its mIoU is what the user asked for
        raise EvalError(
            f"the {fmt} export of {model} at {res[0]}x{res[1]} failed "
            f"({entry.get('error') or (entry.get('parity') or {})}): see `mobileseg export --model "
            f"{model} --formats {fmt}`"
        )
    return Path(result.out_dir)


def evaluate(
    model: str,
    data,
    fmt: str = "onnx",
    dataset: str | None = None,
    weights=None,
    res=None,
    limit: int | None = None,
    mode: str = "slide",
    export_root=None,
    progress: bool = True,
    runtime: str | None = None,
    precision: str = "fp32",
    calib=None,
    calib_count=None,
) -> dict:
    """mIoU of ``model`` exported to ``fmt`` on the validation folder ``data``; returns the eval record (a dict).

    ``precision`` int8 (``calib``/``calib_count``: :mod:`mobileseg.export.calibration`) also evaluates the fp32
    artifact of the same format and runtime on the same images: the record's ``miou_delta`` is int8 - fp32.
    """
    from ..registry import get_spec, parse_resolution
    from ..runtimes import get_runtime

    if fmt not in formats.FORMATS:
        raise EvalError(f"unknown format '{fmt}': choose one of {', '.join(formats.FORMATS)}")
    if mode not in MODES:
        raise EvalError(f"unknown mode '{mode}': choose one of {', '.join(MODES)}")
    if limit is not None and limit < 1:
        raise EvalError("--limit must be at least 1")
    dataset, pairs = find_pairs(data, dataset)
    layout = DATASETS[dataset]
    spec = get_spec(model)
    if spec.task != "segmentation":
        raise EvalError(f"{spec.name} is a classification model: mIoU needs a segmentation model")
    if res is None:
        res = spec.default_resolution if dataset == spec.dataset else (layout.short_side // 2, layout.short_side)
    h, w = parse_resolution(res)
    spec.check_resolution(h, w)
    if weights is not None and not Path(weights).is_file():
        raise EvalError(f"weights file {weights} not found: check --weights")
    num_classes = layout.num_classes
    if weights is not None:
        from ..checkpoint import infer_num_classes, read_checkpoint

        ck_classes = infer_num_classes(read_checkpoint(str(weights), spec), spec)
        if ck_classes and ck_classes != num_classes:
            raise EvalError(
                f"the checkpoint {weights} predicts {ck_classes} classes but {dataset} has "
                f"{num_classes}: use weights trained on {dataset}"
            )
    if limit:
        pairs = pairs[:limit]
    say = (lambda m: print(f"[export] {m}", file=sys.stderr)) if progress else None
    if precision not in formats.FORMATS[fmt].precisions:
        raise EvalError(
            f"{fmt} artifacts cannot be {precision}: choose from {', '.join(formats.FORMATS[fmt].precisions)}"
        )
    rt = get_runtime(runtime or formats.host_runtime(fmt))
    if formats.runtime_format(rt.name) != fmt:
        raise EvalError(f"runtime {rt.name} runs {formats.runtime_format(rt.name)} artifacts, not {fmt}")
    fp32 = None
    if precision != "fp32":
        fp32 = evaluate(model, data, fmt, dataset, weights, res, limit, mode, export_root, progress, rt.name)
    folder = export_for_eval(
        spec.name,
        fmt,
        (h, w),
        num_classes,
        weights,
        export_root,
        log=say,
        precision=precision,
        calib=calib,
        calib_count=calib_count,
    )
    _, man = load_manifest(folder)
    entry = man["formats"][fmt]
    inp = man.get("input") or {}
    mean, std = inp.get("mean", spec.mean), inp.get("std", spec.std)
    out_shape = (man.get("output") or {}).get("shape") or list(spec.output_shape(h, w, 1))
    if out_shape[1] != num_classes:
        raise EvalError(f"the artifact outputs {out_shape[1]} classes but {dataset} has {num_classes}")
    t0 = time.monotonic()
    sess = rt.load(str(folder), entry, threads=1, precision=precision)
    try:
        cm, windows, slid = run_pairs(sess.run, pairs, dataset, (h, w), mean, std, out_shape[2:], mode, progress)
    finally:
        sess.close()
    iou = cm.iou()
    return {
        "kind": "eval",
        "schema_version": 1,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": spec.name,
        "dataset": dataset,
        "split": "val",
        "format": fmt,
        "runtime": rt.name,
        "runtime_version": rt.version(),
        "resolution": [h, w],
        "num_classes": num_classes,
        "miou": round(cm.miou(), 4),
        "macc": round(cm.macc(), 4),
        "aacc": round(cm.aacc(), 4),
        "per_class_iou": [None if v != v else round(float(v) * 100, 4) for v in iou],
        "images": len(pairs),
        "limit": limit,
        "data": str(data),
        "test_time": {
            "mode": mode,
            "short_side": min(h, w),
            "long_max": int(layout.long_factor * min(h, w)),
            "keep_ratio": mode == "slide",
            "windows": windows,
            "images_slid": slid,
            "logits": "bilinear from the output grid to the label size",
        },
        "weights": {
            "path": str(weights) if weights else None,
            "sha256": _sha256(weights) if weights else None,
            "note": None if weights else "random initialisation: the mIoU is meaningless",
        },
        "export_dir": str(folder),
        "seconds": round(time.monotonic() - t0, 3),
        **(_int8_fields(man, fp32, cm.miou()) if fp32 is not None else {"precision": precision}),
    }


def _int8_fields(man: dict, fp32: dict, miou: float) -> dict:
    """What an int8 eval record adds: the fp32 artifact's mIoU on the same images, the delta, the calibration."""
    return {
        "precision": man.get("precision"),
        "fp32_miou": fp32["miou"],
        "miou_delta": round(miou - fp32["miou"], 4),
        "fp32_export_dir": fp32["export_dir"],
        "int8": man.get("int8"),
    }


def append_record(record: dict, path) -> Path:
    """Append an eval record through the results store (crash-safe, locked, like measurement records)."""
    from ..results.store import ResultStore

    ResultStore(path).append(record)
    return Path(path)
