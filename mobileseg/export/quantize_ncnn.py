"""ncnn int8: ncnn's own int8 fields, written from mobileseg's calibration onto the fp32 pnnx export.

The PyPI ncnn carries neither ncnn2table nor ncnn2int8, and pnnx cannot convert torch-quantized modules, so this
module does their job itself (docs/converters.md "INT8"). ncnn's Convolution, ConvolutionDepthWise and InnerProduct
layers read ``8=1`` (int8_scale_term) in the ``.param``; then, in the ``.bin`` right after their weights and bias,
one weight scale per output channel (per group for depthwise) and one scale for their input blob. Their weights are
stored as int8 (ncnn's int8 weight flag, as ncnn2int8 writes them: a quarter of the fp32 bytes); at run time ncnn
quantizes the input blob, runs the int8 kernels and dequantizes the output (bias and fused activation in float), so
every layer boundary stays float. Gemm layers with constant weights run int8 as ncnn2int8 sets them up (:func:`int8_gemm`).

Scheme (ncnn's, as ncnn2table writes it): symmetric int8 everywhere; weight scale ``127 / max|w|`` per output
channel; input scale ``127 / threshold``, the threshold per blob from the fp32 ncnn net run on the calibration batch.
The threshold rule was chosen by measurement on the trained fixture (TopFormer-T, shapes, 128 px, 16 calibration and
24 held-out images; SQNR against fp32 PyTorch on the parity image, mIoU against the fp32 artifact): MinMax 28.9 dB,
-0.05 points; the 99.999th / 99.99th percentile of |x| 28.6 / 28.0 dB; our reading of ncnn2table's KL search
(2048 bins, 128 levels) 4.5 dB. MatMul, LayerNorm and every other layer stay float, listed in the manifest
(``float_ops``).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

import numpy as np

from ..errors import MobilesegError
from ..formats import FORMATS
from ._util import Converted, ConverterFailure, package_version, workdir
from .ncnn import Layer, read_layers
from .ncnn import convert as convert_float

QUANTIZABLE = ("Convolution", "ConvolutionDepthWise", "InnerProduct")
SCHEME = (
    "ncnn int8 (int8_scale_term=1): weights int8 symmetric per output channel, input blobs int8 symmetric per "
    "tensor, float between layers"
)
METHOD = "MinMax (max |x| of each input blob over the calibration batch)"
CONVERTER = "pnnx + mobileseg's ncnn int8 tables (scales written into .param/.bin)"
TAG_FP32 = 0  # the 4-byte flag before a type-0 weight blob: 0 = raw float32 (what pnnx writes with fp16=False)
TAG_INT8 = 0x000D4B38  # the flag of int8 weight data (ncnn's modelbin.cpp), padded to 4 bytes


def blob_loads(layer: Layer) -> list[tuple[int, int]]:
    """``[(element count, load type)]`` that ``layer.load_model`` reads from the ``.bin``, in order (type 0: a
    4-byte flag then the data; type 1: raw float32), following ncnn's src/layer/*.cpp; [] for layers without weights.
    Types with weights that are not listed here make the walk fail its size check instead of guessing."""
    t, g = layer.type, layer.get
    if g(8) and t in QUANTIZABLE:
        raise ConverterFailure(
            f"ncnn layer {layer.name} is already int8 (8={layer.params[8]}): quantize the fp32 export, not an int8 one"
        )
    if t in ("Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise"):
        if g(19 if t.startswith("Conv") else 28):  # dynamic_weight: the weights are an input blob
            return []
        return [(g(6), 0)] + ([(g(0), 1)] if g(5) else [])
    if t == "InnerProduct":
        return [(g(2), 0)] + ([(g(0), 1)] if g(1) else [])
    if t == "LayerNorm":
        return [(g(0), 1)] * 2 if g(2, 1) else []
    if t == "BatchNorm":
        return [(g(0), 1)] * 4
    if t == "Scale":
        n = g(0)
        return [] if n == -233 else [(n, 1)] * (2 if g(1) else 1)
    if t == "PReLU":
        return [(g(0), 1)]
    if t == "MemoryData":
        dims = [d for d in (g(0), g(1), g(11), g(2)) if d]
        return [(int(np.prod(dims)), g(21, 1))] if dims else []
    if t == "Gemm":
        if g(18):
            raise ConverterFailure(f"ncnn Gemm {layer.name} is already quantized (18={layer.params[18]})")
        m, n, k = g(7), g(8), g(9)
        out = ([(m * k, 0)] if g(4) else []) + ([(n * k, 0)] if g(5) else [])
        if g(6) and g(10) != -1:
            out.append(({0: 1, 1: m, 2: m, 3: n * m, 4: n}[g(10)], 0))
        return out
    return []


@dataclass
class Blob:
    data: bytes  # as stored (type 0: flag included)
    array: np.ndarray | None = None  # the float32 values of a type-0 fp32 blob


def walk_bin(path: str, layers: list[Layer]) -> list[list[Blob]]:
    """Each layer's weight blobs, read in ``load_model`` order; ConverterFailure unless the walk uses every byte."""
    with open(path, "rb") as f:
        raw = f.read()
    pos, out = 0, []
    for layer in layers:
        blobs = []
        for count, kind in blob_loads(layer):
            if kind == 0:
                tag = int.from_bytes(raw[pos : pos + 4], "little")
                if tag != TAG_FP32:
                    raise ConverterFailure(
                        f"ncnn layer {layer.name}: weights stored as flag {tag:#x}, not float32 "
                        "(int8 starts from the fp32 export)"
                    )
                end = pos + 4 + 4 * count
                arr = np.frombuffer(raw[pos + 4 : end], np.float32) if end <= len(raw) else None
            else:
                end, arr = pos + 4 * count, None
            if end > len(raw):
                raise ConverterFailure(
                    f"ncnn weights end inside layer {layer.name} ({layer.type}): the .bin does not match the .param"
                )
            blobs.append(Blob(raw[pos:end], arr))
            pos = end
        out.append(blobs)
    if pos != len(raw):
        kinds = sorted({ly.type for ly in layers if not blob_loads(ly)} - {"Input", "Split"})
        raise ConverterFailure(
            f"ncnn int8: {len(raw) - pos} bytes of model.ncnn.bin belong to a layer type whose "
            f"weights this quantizer cannot read (one of {', '.join(kinds)})"
        )
    return out


def int8_weights(weights: np.ndarray, scales: np.ndarray) -> bytes:
    """The weight blob as ncnn2int8 stores it: the int8 flag, then ``round(w * scale)`` per channel clamped to
    [-127, 127] (rounding half away from zero, as ncnn's ``float2int8``), padded to 4 bytes. A quarter of the fp32
    file's weight bytes, and the same values ncnn would compute at load from the fp32 weights."""
    rows = scales.shape[0]
    v = weights.reshape(rows, -1).astype(np.float32) * scales[:, None]
    q = np.clip(np.trunc(v + np.copysign(np.float32(0.5), v)), -127, 127).astype(np.int8).tobytes()
    return TAG_INT8.to_bytes(4, "little") + q + b"\0" * (-len(q) % 4)


def weight_scales(layer: Layer, weights: np.ndarray) -> np.ndarray:
    """``127 / max|w|`` per output channel (per group for depthwise), 1 for an all-zero channel (ncnn2table's)."""
    rows = layer.get(7, 1) if layer.type == "ConvolutionDepthWise" else layer.get(0)
    absmax = np.abs(weights.reshape(rows, -1)).max(axis=1)
    return np.where(absmax == 0, 1.0, 127.0 / np.where(absmax == 0, 1.0, absmax)).astype(np.float32)


class _Calibrator:
    """Thresholds of the blobs feeding the quantized layers, from the fp32 ncnn net on the calibration images."""

    def __init__(self, param: str, binary: str, input_name: str, blobs: list[str]):
        from ..runtimes.ncnn import NcnnSession

        self._sess = NcnnSession(str(param), str(binary), 1, "fp32", input_name, None, None, None)
        self.blobs = blobs

    def _each(self, images):
        ncnn = self._sess._ncnn
        for i in range(images.shape[0]):
            ex = self._sess._net.create_extractor()
            ex.set_light_mode(False)
            ex.input(self._sess.input_name, ncnn.Mat(np.ascontiguousarray(images[i], dtype=np.float32)))
            for b in self.blobs:
                ret, mat = ex.extract(b)
                if ret != 0:
                    raise ConverterFailure(f"ncnn could not compute blob {b} for calibration (error {ret})")
                yield b, np.abs(np.array(mat, copy=False)).ravel()

    def thresholds(self, images) -> dict:
        """``{blob: max |x|}`` over the batch (MinMax: chosen by measurement, see the module docstring)."""
        absmax = dict.fromkeys(self.blobs, 0.0)
        for b, a in self._each(images):
            absmax[b] = max(absmax[b], float(a.max()) if a.size else 0.0)
        return absmax

    def close(self):
        self._sess.close()


def int8_gemm(layer: Layer) -> bool:
    """A Gemm ncnn runs in int8 from its weights alone (``18=2``, as ncnn2int8 writes it): constant B stored
    N x K (transB), no constant A, not quantized already. Its input is quantized per row at run time by ncnn itself,
    so it needs no calibration; its weights take one scale for the whole matrix (ncnn's layout has no more)."""
    g = layer.get
    return layer.type == "Gemm" and g(5) == 1 and g(4) == 0 and g(3) == 1 and not g(18)


def _kept(layers: list[Layer], keep_float) -> set[str]:
    """Names of quantizable layers matching ``keep_float`` (an exact layer name or a regular expression)."""
    names = [ly.name for ly in layers if ly.type in QUANTIZABLE or int8_gemm(ly)]
    kept, unknown = set(), []
    for k in keep_float or ():
        try:
            hits = [n for n in names if n == k or re.fullmatch(k, n)]
        except re.error:
            hits = [n for n in names if n == k]
        (kept.update(hits) if hits else unknown.append(k))
    if unknown:
        raise MobilesegError(
            f"--int8-keep-float: no quantizable ncnn layer (Convolution, InnerProduct, Gemm) is named "
            f"{', '.join(unknown)} "
            f"(names look like {', '.join(names[:3])}; regular expressions work too)"
        )
    return kept


def quantize_files(
    param: str, binary: str, out_param: str, out_bin: str, calibration, input_name: str, keep_float=(), log=None
) -> dict:
    """Write the int8 ``.param``/``.bin`` pair from an fp32 one; returns what the manifest records of it."""
    head, layers = read_layers(param)
    blobs = walk_bin(binary, layers)
    kept = _kept(layers, keep_float)
    chosen = [i for i, ly in enumerate(layers) if ly.type in QUANTIZABLE and ly.name not in kept and blobs[i]]
    # a Split's outputs are its input: calibrate the producing blob
    alias = {t: ly.bottoms[0] for ly in layers if ly.type == "Split" for t in ly.tops}
    feeds = {i: alias.get(layers[i].bottoms[0], layers[i].bottoms[0]) for i in chosen}
    gemms = {i for i, ly in enumerate(layers) if int8_gemm(ly) and ly.name not in kept and blobs[i]}
    cal = _Calibrator(param, binary, input_name, sorted(set(feeds.values())))
    try:
        if log:
            log(f"ncnn: calibrating {len(cal.blobs)} blobs on {calibration.count} images ...")
        thresholds = cal.thresholds(calibration.images)
    finally:
        cal.close()
    with open(out_bin, "wb") as f:
        for i, (layer, lblobs) in enumerate(zip(layers, blobs)):
            scales = weight_scales(layer, lblobs[0].array) if i in feeds else None
            if i in gemms:
                absmax = float(np.abs(lblobs[0].array).max())
                scales = np.full(layer.get(8), 127.0 / absmax if absmax else 1.0, np.float32)
            for k, b in enumerate(lblobs):
                f.write(int8_weights(b.array, scales) if scales is not None and k == 0 else b.data)
            if i in gemms:
                f.write(scales[:1].tobytes())  # B_data_int8_scale, after the C (bias) blob
                layer.params[18] = "2"
            if i in feeds:
                t = thresholds[feeds[i]]
                f.write(scales.tobytes())
                f.write(np.float32(127.0 / t if t > 0 else 1.0).tobytes())
                layer.params[8] = "1"
    with open(out_param, "w") as f:
        f.write("\n".join(head + [ly.line() for ly in layers]) + "\n")
    float_ops = {}
    for i, ly in enumerate(layers):
        if i not in feeds and i not in gemms and ly.type not in ("Input", "Split"):
            float_ops[ly.type] = float_ops.get(ly.type, 0) + 1
    return {
        "int8_layers": len(feeds) + len(gemms),
        "kept_float_layers": sorted(kept),
        "float_ops": dict(sorted(float_ops.items())),
        "thresholds": {layers[i].name: round(thresholds[feeds[i]], 6) for i in sorted(feeds)},
    }


def convert(
    model,
    example,
    out_dir: str,
    calibration,
    keep_float=(),
    input_name: str = "input",
    output_name: str = "logits",
    log=None,
) -> Converted:
    dst_param, dst_bin = (os.path.join(out_dir, name) for name in FORMATS["ncnn"].files)
    with workdir("ncnn-int8") as tmp:
        fl = convert_float(model, example, tmp, precision="fp32", log=log)
        param, binary = fl.files
        q = quantize_files(
            param,
            binary,
            os.path.join(tmp, "q.param"),
            os.path.join(tmp, "q.bin"),
            calibration,
            fl.input_name,
            keep_float,
            log,
        )
        shutil.move(os.path.join(tmp, "q.param"), dst_param)
        shutil.move(os.path.join(tmp, "q.bin"), dst_bin)
    thresholds = q.pop("thresholds")
    info = dict(
        fl.info,
        weights_dtype="int8",
        activations_dtype="int8",
        io_dtype="float32",
        int8={
            "scheme": SCHEME,
            "calibration_method": METHOD,
            **q,
            "ncnn": package_version("ncnn"),
            "input_thresholds": thresholds,
        },
    )
    return Converted([dst_param, dst_bin], fl.input_name, fl.output_name, fl.op_histogram, info)
