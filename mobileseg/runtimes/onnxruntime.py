"""onnxruntime adapter: CPU execution provider, ``threads`` intra-op threads, sequential execution (no inter-op pool)."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from ..errors import require
from .base import Runtime, Session, check_threads


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
