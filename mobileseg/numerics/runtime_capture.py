"""Runtime side: every intermediate tensor of an artifact, run by its own runtime on the reference input.

* ONNX Runtime: every float node output is added as a graph output (one session over a modified copy; the
  optimiser then cannot fuse across those tensors, which ORT's CPU kernels compute the same either way).
* ncnn: every layer's output blob is extracted from one extractor without light mode (``Split`` copies skipped),
  with the fp16 switches of the ncnn adapter for the precision.
* LiteRT: ``experimental_preserve_all_tensors`` keeps every op's output; tensors are read in op order.

Each tensor carries the runtime's name for it (ONNX: the producing node's name; ncnn: ``layer:blob``; LiteRT: the
tensor name) and the op type. Values are returned as the runtime holds them (LiteRT keeps NHWC); :mod:`.match`
aligns layouts.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

from ..errors import MobilesegError, require
from .. import formats
from ..formats import FORMATS, RUNTIMES


@dataclass
class RuntimeTensor:
    index: int
    name: str
    op: str
    value: np.ndarray
    layout: str = "NCHW"  # what a 4-D tensor is: NCHW (onnx, ncnn) or NHWC (LiteRT)


def capture(runtime: str, export_dir: str, x: np.ndarray, precision: str = "fp32") -> list[RuntimeTensor]:
    fmt = RUNTIMES[runtime].format
    files = [os.path.join(export_dir, f) for f in FORMATS[fmt].files]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        from ..manifest import ArtifactError

        raise ArtifactError(
            f"{export_dir} has no {fmt} artifact ({os.path.basename(missing[0])} is missing): "
            f"export it with `mobileseg export ... --formats torch,{fmt}`"
        )
    from .. import manifest as _manifest

    if os.path.isfile(os.path.join(export_dir, _manifest.FILE)):  # a damaged file: one sentence, not a traceback
        _manifest.artifact_paths(export_dir, None, fmt)
    if runtime == "onnxruntime":
        return onnx_tensors(files[0], x)
    if runtime in ("ncnn", "ncnn-vulkan"):
        return ncnn_tensors(files[0], files[1], x, precision, vulkan=runtime == "ncnn-vulkan")
    if runtime == "litert":
        return litert_tensors(files[0], x)
    raise MobilesegError(
        f"per-layer capture is not available for the {runtime} runtime "
        f"(it is for onnxruntime, ncnn, ncnn-vulkan and litert)"
    )


def all_outputs_model(path: str):
    """``(model, order)``: the ONNX model with every float node output added as a graph output, and
    ``[(output name, node name, op type)]`` in graph order (also pushed to devices: their harness needs no onnx)."""
    onnx = require("onnx", "onnx", "per-layer ONNX capture")
    model = onnx.load(path)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)
    }
    from ..export.onnx import scope_name

    present = {o.name for o in model.graph.output}
    inits = {i.name for i in model.graph.initializer}
    order = []
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        # artifacts exported before the converter kept scopes: the same naming, from the parameters
        name = node.name if node.name.startswith("/") else (scope_name(node, inits) or node.name)
        for out in node.output:
            if out and types.get(out) == onnx.TensorProto.FLOAT:
                order.append((out, name or out, node.op_type))
                if out not in present:
                    model.graph.output.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
    return model, order


def onnx_tensors(path: str, x: np.ndarray) -> list[RuntimeTensor]:
    import onnx

    from ..runtimes.onnxruntime import OnnxSession

    model, order = all_outputs_model(path)
    with tempfile.TemporaryDirectory(prefix="mobileseg-numerics-") as tmp:
        p = os.path.join(tmp, "all_outputs.onnx")
        onnx.save(model, p)
        sess = OnnxSession(p, threads=1)
        names = [o.name for o in sess._sess.get_outputs()]
        values = dict(zip(names, sess._sess.run(names, {sess.input_name: x})))
        sess.close()
    return [RuntimeTensor(i, node, op, np.asarray(values[out])) for i, (out, node, op) in enumerate(order)]


def from_npz(path: str, runtime: str, order=None) -> list[RuntimeTensor]:
    """The tensors a device harness saved (``--intermediates``); ``order``: the ONNX output -> node names."""
    with np.load(path, allow_pickle=False) as z:
        names = [str(n) for n in z["__names__"]]
        ops = [str(o) for o in z["__ops__"]]
        values = [z[f"t{i:04d}"] for i in range(len(names))]
    layout = formats.layout(runtime)
    if runtime == "onnxruntime" and order:
        got = dict(zip(names, values))
        return [RuntimeTensor(i, n, op, np.asarray(got[out])) for i, (out, n, op) in enumerate(order) if out in got]
    return [RuntimeTensor(i, n, op, v, layout) for i, (n, op, v) in enumerate(zip(names, ops, values))]


def ncnn_tensors(param: str, binary: str, x: np.ndarray, precision: str, vulkan: bool = False) -> list[RuntimeTensor]:
    from ..export.ncnn import read_param
    from ..runtimes import get_runtime

    rt = get_runtime("ncnn-vulkan" if vulkan else "ncnn")
    index, _ = rt.vulkan()
    from ..runtimes.ncnn import NcnnSession

    sess = NcnnSession(param, binary, 1, precision, None, None, None, None, vulkan_device=index)
    ncnn = sess._ncnn
    layers = read_param(param)
    out = []
    keep = np.ascontiguousarray(x[0] if x.ndim == 4 else x, dtype=np.float32)
    ex = sess._net.create_extractor()
    try:
        ex.set_light_mode(False)
        ex.input(sess.input_name, ncnn.Mat(keep))
        for typ, name, _ins, outs in layers:
            if typ in ("Input", "Split"):
                continue
            for blob in outs:
                ret, mat = ex.extract(blob)
                if ret != 0:
                    continue
                out.append(RuntimeTensor(len(out), f"{name}:{blob}", typ, np.array(mat, copy=True)))
    finally:
        ex = mat = None
        sess.close()
    return out


def litert_tensors(path: str, x: np.ndarray) -> list[RuntimeTensor]:
    import warnings

    from ..runtimes.litert import _interpreter_module, allocate_tensors

    mod, _ = _interpreter_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is intended for debugging": that is what this is
        interp = mod.Interpreter(model_path=path, num_threads=1, experimental_preserve_all_tensors=True)
    allocate_tensors(interp)
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.asarray(x, dtype=inp["dtype"]))
    interp.invoke()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    out, seen = [], set()
    for op in interp._get_ops_details():
        for t in op["outputs"]:
            d = details.get(int(t))
            value = None if d is None or t in seen else _litert_value(d, interp.get_tensor(int(t)))
            if value is None:
                continue
            seen.add(t)
            out.append(RuntimeTensor(len(out), d["name"], op["op_name"], value, formats.layout("tflite")))
    return out


def _litert_value(detail: dict, raw: np.ndarray):
    """A float copy of an op output: float32 as is; an int8 model's quantized activations dequantized by their
    per-tensor scale and zero point ((q - zero_point) * scale), so int8 layers are compared in real units."""
    if raw.dtype == np.float32:
        return raw.copy()
    scale, zero = detail.get("quantization") or (0.0, 0)
    if raw.dtype in (np.int8, np.uint8, np.int16) and scale:
        return (raw.astype(np.float32) - np.float32(zero)) * np.float32(scale)
    return None
