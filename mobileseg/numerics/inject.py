"""Faults written into an artifact, not into PyTorch: what the per-layer report must then point at.

``perturb(export_dir, fmt, module)`` finds the weights of one convolution (or linear) layer inside the artifact's
own files and rewrites them in place: ``noise`` adds seeded Gaussian noise (``scale`` x the weights' std), ``bf16``
rounds them to bfloat16 (that layer computed from reduced-precision weights). Weights are found by value, so the
same code serves every format: the ONNX initializer equal to the module's weight; in the ncnn ``.bin`` and the
``.tflite`` flatbuffer the weight bytes in the layouts those formats store (OIHW; OHWI, and 1HWO for depthwise
convolutions, in LiteRT), as float32 or, in fp16 exports, float16. A weight found nowhere or more than once is an
error rather than a guess.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import MobilesegError
from ..formats import FORMATS

MODES = ("noise", "bf16")


class InjectError(MobilesegError):
    pass


def bf16(w: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), kept as float32."""
    u = np.ascontiguousarray(w, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def faulty(w: np.ndarray, mode: str, scale: float, seed: int) -> np.ndarray:
    if mode == "noise":
        rng = np.random.default_rng(seed)
        return (w + scale * float(np.std(w)) * rng.standard_normal(w.shape)).astype(np.float32)
    if mode == "bf16":
        return bf16(w)
    raise InjectError(f"unknown fault '{mode}': choose one of {', '.join(MODES)}")


def layouts(w: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The memory layouts a converter may store ``w`` (torch OIHW / OI) in."""
    out = [("OIHW", w)]
    if w.ndim == 4:
        out.append(("OHWI", w.transpose(0, 2, 3, 1)))
        if w.shape[1] == 1:
            out.append(("1HWO", w.transpose(1, 2, 3, 0)))
    return out


def module_weight(export_dir: str, module: str) -> np.ndarray:
    from .torch_capture import load_module

    net = load_module(export_dir)
    try:
        layer = net.get_submodule(module)
    except AttributeError:
        raise InjectError(f"the exported model has no module '{module}'") from None
    if getattr(layer, "weight", None) is None:
        raise InjectError(f"module '{module}' ({type(layer).__name__}) has no weight to perturb")
    return layer.weight.detach().float().numpy().copy()


def perturb(export_dir: str, fmt: str, module: str, mode: str = "noise", scale: float = 0.05, seed: int = 0) -> dict:
    """Rewrite ``module``'s weights inside the ``fmt`` artifact of ``export_dir``; returns where and how."""
    w = module_weight(export_dir, module)
    new = faulty(w, mode, scale, seed)
    path = os.path.join(export_dir, FORMATS[fmt].weights_file)
    if fmt == "onnx":
        where = _onnx(path, w, new)
    elif fmt in ("ncnn", "tflite"):
        where = _bytes(path, w, new)
    else:
        raise InjectError(f"cannot inject into the {fmt} format (onnx, ncnn, tflite)")
    fault = {"module": module, "mode": mode, "scale": scale if mode == "noise" else None, "file": path, **where}
    _record_edit(export_dir, fmt, path, fault)
    return fault


def _record_edit(export_dir: str, fmt: str, path: str, fault: dict) -> None:
    """Say in the manifest that ``path`` was edited on purpose: its file record keeps the exported sha256 (so export
    rebuilds it) and gains ``edited`` {sha256, by, fault}, the bytes loaders accept (mobileseg.manifest.verify_files)."""
    from .. import manifest as _manifest
    from ..hashing import sha256_file

    man = _manifest.read(export_dir)
    for f in (_manifest.format_entry(man or {}, fmt) or {}).get("files") or []:
        if isinstance(f, dict) and os.path.abspath(os.path.join(export_dir, f["path"])) == os.path.abspath(path):
            f["edited"] = {
                "sha256": sha256_file(path),
                "by": "mobileseg.numerics.inject",
                "fault": {k: v for k, v in fault.items() if k != "file"},
            }
            _manifest.write(export_dir, man)


def _onnx(path: str, w, new) -> dict:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    hits = [
        t
        for t in model.graph.initializer
        if t.dims and list(t.dims) == list(w.shape) and np.array_equal(numpy_helper.to_array(t), w)
    ]
    if len(hits) != 1:
        raise InjectError(f"found the weight in {len(hits)} ONNX initializers of {path} (need exactly one)")
    hits[0].CopyFrom(numpy_helper.from_array(new.astype(np.float32), hits[0].name))
    onnx.save(model, path)
    return {"where": f"initializer {hits[0].name}"}


def _bytes(path: str, w, new) -> dict:
    with open(path, "rb") as f:
        data = bytearray(f.read())
    found = []
    for name, view in layouts(w):
        for dt in (np.float32, np.float16):
            blob = np.ascontiguousarray(view, dtype=dt).tobytes()
            at = data.find(blob)
            if at >= 0 and data.find(blob, at + 1) < 0 and all(f[2] != at for f in found):
                found.append((name, dt, at, len(blob)))  # (a 1x1 kernel is the same bytes in every layout)
    if len(found) != 1:
        raise InjectError(f"found the weight bytes {len(found)} times in {path} (need exactly one layout/dtype)")
    name, dt, at, n = found[0]
    new_view = dict(layouts(new))[name]
    data[at : at + n] = np.ascontiguousarray(new_view, dtype=dt).tobytes()
    with open(path, "wb") as f:
        f.write(bytes(data))
    return {"where": f"byte offset {at} ({name}, {np.dtype(dt).name})"}
