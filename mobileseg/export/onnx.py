"""ONNX export: one self-contained file, fixed input shape, simplified with onnxsim, no BatchNormalization left.

torch 2.13's default (dynamo) exporter needs onnxscript and writes weights to a side ``.onnx.data`` file; the
TorchScript exporter (``dynamo=False``) is used with ``external_data=False`` so the artifact is one file. fp16
converts the simplified graph with onnxruntime's own float16 tool: fp16 weights and fp16 tensors between the ops (ARM64's
kernels compute in fp16), the float32 input and output kept (a Cast at each end), as the manifest declares them.
"""

from __future__ import annotations

import os
from collections import Counter

from ..errors import require
from ..formats import FORMATS
from ..runtimes.onnxruntime import scope_name  # the per-layer capture names unnamed nodes the same way
from ._util import Converted, ConverterFailure, captured_output, package_version, require_cheap, workdir

OPSET = 17
CONVERTER = "torch.onnx+onnxsim"


def converter_versions() -> dict:
    return {
        "torch": package_version("torch"),
        "onnx": package_version("onnx"),
        "onnxsim": package_version("onnxsim"),
        "onnxruntime": package_version("onnxruntime"),
    }  # its float16 tool writes the fp16 artifact


def check_available() -> None:
    """Raise MissingDependencyError naming the extra when a package is absent (without importing it: fast)."""
    for mod in ("onnx", "onnxsim", "onnxruntime"):
        require_cheap(mod, "onnx", "ONNX export")


def op_histogram(onnx_model) -> dict:
    return dict(sorted(Counter(n.op_type for n in onnx_model.graph.node).items()))


def keep_scopes(onnx_model) -> int:
    """Name the nodes onnxsim created without a scope (its MatMul+Add -> Gemm fusion) after their parameters, so the
    per-layer report (mobileseg.numerics) can tell which module they compute; returns how many were named."""
    inits = {i.name for i in onnx_model.graph.initializer}
    used = {n.name for n in onnx_model.graph.node}
    count = 0
    for node in onnx_model.graph.node:
        if node.name.startswith("/"):
            continue
        name = scope_name(node, inits)
        if name:
            k, base = 1, name
            while name in used:
                name, k = f"{base}_{k}", k + 1
            used.add(name)
            node.name = name
            count += 1
    return count


def convert(
    model,
    example,
    out_dir: str,
    precision: str = "fp32",
    input_name: str = "input",
    output_name: str = "logits",
    log=None,
) -> Converted:
    import warnings

    import torch

    onnx = require("onnx", "onnx", "ONNX export")
    onnxsim = require("onnxsim", "onnx", "ONNX export")
    path = os.path.join(out_dir, FORMATS["onnx"].model_file)
    info = {"opset": OPSET, "exporter": "torchscript (dynamo=False)", "external_data": False, "weights_dtype": "fp32"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                path,
                dynamo=False,
                opset_version=OPSET,
                external_data=False,
                input_names=[input_name],
                output_names=[output_name],
                do_constant_folding=True,
            )
    except Exception as exc:
        raise ConverterFailure(
            f"torch.onnx {package_version('torch')} (opset {OPSET}) failed: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        ) from exc
    graph = onnx.load(path)
    try:
        with workdir("onnxsim") as tmp, captured_output(os.path.join(tmp, "onnxsim.log")):
            simplified, ok = onnxsim.simplify(graph)  # its native warnings go to the log, not the user's terminal
        if not ok:
            raise RuntimeError("onnxsim's check of the simplified graph failed")
        info["scopes_restored"] = keep_scopes(simplified)
        onnx.save(simplified, path)
        graph = simplified
        info["simplified"] = True
    except Exception as exc:  # keep the unsimplified graph, and say so
        info["simplified"] = False
        info["simplify_error"] = f"onnxsim {package_version('onnxsim')}: {type(exc).__name__}: {str(exc)[:300]}"
        if log:
            log(f"onnx: simplification failed, keeping the unsimplified graph ({info['simplify_error']})")
    hist = op_histogram(graph)
    if hist.get("BatchNormalization"):
        raise ConverterFailure(
            f"{hist['BatchNormalization']} BatchNormalization nodes left in the ONNX graph "
            "after folding (a bug: report it with the model name)"
        )
    info["opset"] = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if precision == "fp16":
        graph = to_fp16(graph)
        onnx.save(graph, path)
        hist = op_histogram(graph)
        info.update(
            weights_dtype="fp16",
            tensors_dtype="fp16",
            fp16_converter=FP16_CONVERTER,
            io_dtype="float32 (Cast nodes at the graph's input and output)",
        )
    return Converted([path], input_name, output_name, hist, info)


FP16_CONVERTER = "onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)"


def to_fp16(graph):
    """``graph`` with fp16 weights and fp16 tensors, its input and output still float32 as the manifest declares
    them (onnxruntime's own converter, shipped with onnxruntime: no other package)."""
    require("onnxruntime", "onnx", "fp16 ONNX export")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        return convert_float_to_float16(graph, keep_io_types=True)
    except Exception as exc:
        raise ConverterFailure(
            f"{FP16_CONVERTER} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        ) from exc
