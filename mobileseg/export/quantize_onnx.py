"""ONNX int8: onnxruntime.quantization static post-training quantization, QDQ format.

The float graph comes from :mod:`.onnx` (the same exporter and simplifier as fp32); ``quantize_static`` then
inserts QuantizeLinear/DequantizeLinear pairs: weights int8 symmetric per output channel, activations int8
asymmetric per tensor (ranges by MinMax over the calibration batch). Input and output stay float32 (the graph starts
with a QuantizeLinear and ends with a DequantizeLinear). Chosen by measurement on the trained fixture (TopFormer-T,
shapes, 128 px, 16 held-out images; docs/converters.md "INT8"): asymmetric activations 30.2 dB SQNR (uint8 or
int8 alike), symmetric 25.4 dB; Percentile (99.999) 28.1 dB and Entropy 25.4 dB did not beat MinMax.
``keep_float`` names ONNX nodes (or the torch module paths they came from) excluded from quantization.
"""

from __future__ import annotations

import os

from ..formats import FORMATS
from ._util import Converted, ConverterFailure, captured_output, package_version, workdir
from .onnx import convert as convert_float
from .onnx import op_histogram

SCHEME = "QDQ (S8S8): weights int8 symmetric per output channel, activations int8 asymmetric per tensor"
METHOD = "MinMax"
CONVERTER = "onnxruntime.quantization (quantize_static, QDQ)"


def float_ops(graph) -> dict:
    """``{op_type: count}`` of compute nodes left in float: their data input (and, for Conv/MatMul/Gemm, their
    weights) does not come from a DequantizeLinear."""
    produced_by_dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    out = {}
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant") or not n.input:
            continue
        need = n.input[:2] if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") else n.input[:1]
        if not all(i in produced_by_dq for i in need):
            out[n.op_type] = out.get(n.op_type, 0) + 1
    return dict(sorted(out.items()))


def _exclusions(graph, keep_float) -> tuple[list, list]:
    """ONNX node names matching ``keep_float`` (exact node name, or a torch module path as a prefix)."""
    names = [n.name for n in graph.node]
    chosen, unknown = [], []
    for want in keep_float or ():
        w = want.strip()
        slash = "/" + w.replace(".", "/") + "/"
        hits = [n for n in names if n == w or slash in ("/" + n.lstrip("/") + "/")]
        (chosen.extend(hits) if hits else unknown.append(w))
    return list(dict.fromkeys(chosen)), unknown


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
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    path = os.path.join(out_dir, FORMATS["onnx"].model_file)
    with workdir("onnx-int8") as tmp:
        fl = convert_float(
            model, example, tmp, precision="fp32", input_name=input_name, output_name=output_name, log=log
        )
        float_path = fl.files[0]
        graph = onnx.load(float_path)
        exclude, unknown = _exclusions(graph.graph, keep_float)
        if unknown:
            from ..errors import MobilesegError

            sample = ", ".join(n.name for n in graph.graph.node[:4])
            raise MobilesegError(
                f"--int8-keep-float: no ONNX node is named {', '.join(unknown)} (node names look "
                f"like {sample}; a torch module path such as decode_head.conv_seg works too)"
            )

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter(calibration.images[i : i + 1] for i in range(calibration.count))

            def get_next(self):
                x = next(self.it, None)
                return None if x is None else {input_name: x}

        try:
            with captured_output(os.path.join(tmp, "quantize.log")):
                quantize_static(
                    float_path,
                    path,
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=exclude or None,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
                )
        except Exception as exc:
            raise ConverterFailure(
                f"onnxruntime.quantization {package_version('onnxruntime')} failed: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            ) from exc
    q = onnx.load(path)
    info = dict(
        fl.info,
        weights_dtype="int8",
        activations_dtype="int8",
        io_dtype="float32",
        int8={
            "scheme": SCHEME,
            "calibration_method": METHOD,
            "kept_float_nodes": exclude,
            "float_ops": float_ops(q.graph),
        },
    )
    return Converted([path], fl.input_name, fl.output_name, op_histogram(q), info)
