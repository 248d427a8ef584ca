"""TFLite int8: ai-edge-quantizer's static recipe applied to the float file litert-torch writes.

Chosen by measurement against litert-torch's PT2E flow (torch.export -> prepare_pt2e -> calibrate ->
convert_pt2e -> litert_torch.convert with a PT2EQuantizer) on the trained fixture (TopFormer-T, shapes, 128 px, 16
held-out images, the same calibration batch for both, docs/converters.md "INT8"): both reached the same error
(rel L2 0.334 PT2E, 0.333 here, asymmetric int8 activations), but PT2E took 77 s against 4 s here (beside the 24 s
float conversion both need) and wrote int8 model inputs and outputs, where ai-edge-quantizer keeps them float32
(its INPUT/OUTPUT ops left unquantized). With the final calibration reader: rel L2 0.041 (27.8 dB SQNR), argmax
agreement 0.997.

Scheme: weights int8 symmetric per output channel, activations int8 asymmetric per tensor (MinMax over the
calibration batch), integer compute, float32 input and output. ``keep_float``: regular expressions over TFLite
tensor names whose ops stay float.
"""

from __future__ import annotations

import os
import re

from ..errors import MobilesegError
from ..formats import FORMATS
from ._util import Converted, ConverterFailure, captured_output, package_version, workdir
from .tflite import convert as convert_float
from .tflite import op_histogram

SCHEME = "weights int8 symmetric per output channel, activations int8 asymmetric per tensor, float32 input/output"
METHOD = "MinMax (ai-edge-quantizer MIN_MAX_UNIFORM_QUANT)"
CONVERTER = "litert-torch + ai-edge-quantizer (static int8, MinMax)"


def float_ops(path: str) -> dict:
    """``{op: count}`` of ops whose inputs are all float32 (what runs in float), from the interpreter's view."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path)
    dtypes = {t["index"]: str(t["dtype"]) for t in interp.get_tensor_details()}
    out = {}
    for op in interp._get_ops_details():
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        ins = [i for i in op["inputs"] if i >= 0]
        if ins and all("float" in dtypes.get(i, "") for i in ins):
            out[op["op_name"]] = out.get(op["op_name"], 0) + 1
    return dict(sorted(out.items()))


BIASED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
SAME_SCALE_OPS = (
    "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR",
    "RESHAPE",
    "MAX_POOL_2D",
    "TRANSPOSE",
    "SQUEEZE",
    "PAD",
    "DEPTH_TO_SPACE",
    "SPACE_TO_DEPTH",
)
BIAS_HEADROOM = 16  # the bias may use at most 1/16 of int32's range: the accumulator adds the products to it


def widen_for_int32_bias(interp, result: dict) -> dict:
    """Widen the calibrated range of each biased op's input until its bias fits int32; ``{tensor: [old, new]}``.

    An int8 bias is stored as ``round(b / (s_in * s_w))`` in int32. An input whose calibrated range is almost zero
    (random-weight LR-ASPP's head input spans 1e-8, so ``s_in`` = 4e-11) makes that overflow: the bias wraps and the
    layer's output is garbage (rel L2 1.0 at conv_seg, 0.54 at the output). ai-edge-quantizer does not guard this; the
    widened range costs nothing, since such an input contributes less than one bias step.
    """
    import numpy as np

    details = {d["index"]: d for d in interp.get_tensor_details()}
    producers = {
        int(o): (op["op_name"], int(op["inputs"][0]) if len(op["inputs"]) else None)
        for op in interp._get_ops_details()
        for o in op["outputs"]
    }
    widened = {}
    for op in interp._get_ops_details():
        ins = [int(i) for i in op["inputs"]]
        if op["op_name"] not in BIASED_OPS or len(ins) < 3 or min(ins) < 0:
            continue
        data, weight, bias = (details[i] for i in (ins[0], ins[1], ins[-1]))
        stats = result.get(data["name"])
        try:
            w, b = interp.get_tensor(weight["index"]), interp.get_tensor(bias["index"])
        except ValueError:  # not a constant
            continue
        if stats is None or w.dtype != np.float32 or b.dtype != np.float32:
            continue
        axis = 3 if op["op_name"] == "DEPTHWISE_CONV_2D" else 0
        s_w = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1) / 127.0
        need = float(np.max(np.abs(b) / np.maximum(s_w, 1e-30))) / ((2**31 - 1) / BIAS_HEADROOM)
        lo, hi = float(np.min(stats["min"])), float(np.max(stats["max"]))
        if (hi - lo) / 255.0 >= need:
            continue
        # ops that pass their input's scale through (ai-edge-quantizer gives both sides one scale): widen up the chain
        tensor = ins[0]
        while tensor is not None and details[tensor]["name"] in result:
            st = result[details[tensor]["name"]]
            lo = float(np.min(st["min"]))
            if float(np.max(st["max"])) - lo < 255.0 * need:
                widened[details[tensor]["name"]] = [float(np.max(st["max"])) - lo, 255.0 * need]
                st["max"] = np.full_like(np.asarray(st["max"], dtype=np.float32), lo + 255.0 * need)
            op_in = producers.get(tensor)
            tensor = op_in[1] if op_in is not None and op_in[0] in SAME_SCALE_OPS else None
    return widened


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
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer

    path = os.path.join(out_dir, FORMATS["tflite"].model_file)
    op_names, algos = qtyping.TFLOperationName, algorithm_manager.AlgorithmName
    with workdir("tflite-int8") as tmp:
        fl = convert_float(model, example, tmp, precision="fp32", log=log)
        float_path = fl.files[0]
        interp = Interpreter(model_path=float_path)
        tensor_names = [t["name"] for t in interp.get_tensor_details()]
        unknown = [k for k in keep_float if not any(re.search(k, n) for n in tensor_names)]
        if unknown:
            raise MobilesegError(
                f"--int8-keep-float: no TFLite tensor name matches {', '.join(unknown)} (names look "
                f"like {', '.join(tensor_names[1:4])})"
            )
        sig = interp.get_signature_list()
        key = next(iter(sig))
        sig_input = sig[key]["inputs"][0]
        cfg = qtyping.OpQuantizationConfig(
            activation_tensor_config=qtyping.TensorQuantizationConfig(num_bits=8, symmetric=False),
            weight_tensor_config=qtyping.TensorQuantizationConfig(
                num_bits=8, symmetric=True, granularity=qtyping.QuantGranularity.CHANNELWISE
            ),
            compute_precision=qtyping.ComputePrecision.INTEGER,
        )
        try:
            with captured_output(os.path.join(tmp, "aeq.log")):
                qt = quantizer.Quantizer(float_path)
                qt.update_quantization_recipe(".*", op_names.ALL_SUPPORTED, cfg, algos.MIN_MAX_UNIFORM_QUANT)
                for op in (op_names.INPUT, op_names.OUTPUT):
                    qt.update_quantization_recipe(".*", op, None, algos.NO_QUANTIZE)
                for k in keep_float:
                    qt.update_quantization_recipe(k, op_names.ALL_SUPPORTED, None, algos.NO_QUANTIZE)
                data = {key: [{sig_input: calibration.images[i : i + 1]} for i in range(calibration.count)]}
                result = qt.calibrate(data, num_threads=1)
                widened = widen_for_int32_bias(interp, result)
                qt.quantize(result).export_model(path, overwrite=True)
        except Exception as exc:
            raise ConverterFailure(
                f"ai-edge-quantizer {package_version('ai-edge-quantizer')} failed: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            ) from exc
    info = dict(
        fl.info,
        weights_dtype="int8",
        activations_dtype="int8",
        io_dtype="float32",
        int8={
            "scheme": SCHEME,
            "calibration_method": METHOD,
            "kept_float_patterns": list(keep_float),
            "float_ops": float_ops(path),
            "ai_edge_quantizer": package_version("ai-edge-quantizer"),
            "ranges_widened_for_int32_bias": widened,
        },
    )
    return Converted([path], fl.input_name, fl.output_name, op_histogram(path), info)
