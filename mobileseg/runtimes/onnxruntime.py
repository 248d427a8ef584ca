"""onnxruntime adapter: CPU execution provider, ``threads`` intra-op threads, sequential execution (no inter-op pool)."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from ..errors import require
from .base import Runtime, Session, check_threads
from .capture import RuntimeTensor


def scope_name(node, initializers) -> str | None:
    """A torch-style scope name (``/backbone/block1/0/attn/q/Gemm``) for a node that has lost its own, from the
    module path in the name of its weight or bias (``backbone.block1.0.attn.q.bias``), or None."""
    params = [i for i in node.input if i in initializers and i.rpartition(".")[2] in ("weight", "bias")]
    if not params:
        return None
    return "/" + params[-1].rpartition(".")[0].replace(".", "/") + "/" + node.op_type


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


class OnnxSession(Session):
    def __init__(self, path: str, threads: int, opt_level: str = "all"):
        ort = require("onnxruntime", "onnx", "running ONNX artifacts")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        levels = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        so.graph_optimization_level = levels[opt_level]
        # Spinning worker threads only matter with a thread pool; with 1 thread there is none to spin.
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if threads > 1 else "0")
        self._sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
        self.input_name = self._sess.get_inputs()[0].name
        self.output_name = self._sess.get_outputs()[0].name
        self.settings = {
            "threads": threads,
            "intra_op_threads": threads,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "graph_optimization_level": opt_level,
            "provider": "CPUExecutionProvider",
        }

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._sess.run([self.output_name], {self.input_name: x})[0]

    def close(self) -> None:
        self._sess = None


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def version(self) -> str:
        return require("onnxruntime", "onnx", "running ONNX artifacts").__version__

    def load(
        self, export_dir_or_manifest, fmt_entry=None, threads: int = 1, precision: str = "fp32", opt_level: str = "all"
    ) -> OnnxSession:
        threads = check_threads(threads)
        _, _, _, paths = self.artifact(export_dir_or_manifest, fmt_entry)
        sess = OnnxSession(paths[0], threads, opt_level)
        sess.settings["precision"] = precision
        return sess

    def op_profile(self, export_dir, fmt_entry, x, runs, threads=1) -> dict:
        """ONNX Runtime's own profiler (``enable_profiling``) over one warm-up and ``runs`` inferences: its trace
        events, as the device's ``profile_ops.py`` writes them."""
        ort = require("onnxruntime", "onnx", "running ONNX artifacts")
        model_path = self.entry_files(export_dir, fmt_entry)[0]
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.enable_profiling = True
        with tempfile.TemporaryDirectory(prefix="mobileseg-ortprof-") as tmp:
            so.profile_file_prefix = os.path.join(tmp, "ort")
            sess = ort.InferenceSession(str(model_path), sess_options=so, providers=["CPUExecutionProvider"])
            feed = {sess.get_inputs()[0].name: x}
            sess.run(None, feed)  # warm-up, dropped by the reader
            for _ in range(runs):
                sess.run(None, feed)
            path = sess.end_profiling()
            with open(path) as f:
                events = json.load(f)
        return {"source": "onnxruntime-profiler", "events": events, "runs": runs}

    def intermediates(self, files, x, precision="fp32") -> list[RuntimeTensor]:
        """Every float node output, added as a graph output of a copy run in one session (the optimiser then cannot
        fuse across those tensors, which ORT's CPU kernels compute the same either way)."""
        import onnx

        model, order = all_outputs_model(files[0])
        with tempfile.TemporaryDirectory(prefix="mobileseg-numerics-") as tmp:
            p = os.path.join(tmp, "all_outputs.onnx")
            onnx.save(model, p)
            sess = OnnxSession(p, threads=1)
            names = [o.name for o in sess._sess.get_outputs()]
            values = dict(zip(names, sess._sess.run(names, {sess.input_name: x})))
            sess.close()
        return [RuntimeTensor(i, node, op, np.asarray(values[out])) for i, (out, node, op) in enumerate(order)]
