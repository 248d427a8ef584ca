"""LiteRT (TFLite) adapter: ``ai_edge_litert.interpreter.Interpreter(model_path, num_threads=N)``.

``tflite_runtime`` is accepted as a fallback where it imports (e.g. an ARM board with numpy 1; on numpy 2 it fails
with ``_ARRAY_API not found``; see docs/converters.md). The default op resolver applies the XNNPACK delegate.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager

import numpy as np

from .. import formats
from ..errors import MissingDependencyError, require
from .base import Runtime, Session, check_threads
from .capture import RuntimeTensor


def _interpreter_module():
    """``(module, package name)`` of the first TFLite interpreter that imports."""
    try:
        return require("ai_edge_litert.interpreter", "tflite", "running TFLite artifacts"), "ai-edge-litert"
    except MissingDependencyError as first:
        try:
            import tflite_runtime.interpreter as tfl  # noqa: PLC0415

            return tfl, "tflite-runtime"
        except Exception:  # ImportError, or numpy-2 ABI errors of the frozen tflite-runtime wheel
            raise first from None


# What LiteRT's C++ logger prints on stderr each time an interpreter applies its default delegate
# (in allocate_tensors): no news to a user, and it broke the progress lines of export and bench.
XNNPACK_NOTICE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextmanager
def without_xnnpack_notice():
    """Hold back :data:`XNNPACK_NOTICE` from the process's stderr (native code's included) for the duration; every
    other line written there meanwhile, a real error among them, is passed on when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            held.seek(0)
            lines = held.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(ln for ln in lines if ln.strip() != XNNPACK_NOTICE)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def allocate_tensors(interp) -> None:
    """``interp.allocate_tensors()`` without LiteRT's delegate notice on stderr."""
    with without_xnnpack_notice():
        interp.allocate_tensors()


def _litert_value(detail: dict, raw: np.ndarray):
    """A float copy of an op output: float32 as is; an int8 model's quantized activations dequantized by their
    per-tensor scale and zero point ((q - zero_point) * scale), so int8 layers are compared in real units."""
    if raw.dtype == np.float32:
        return raw.copy()
    scale, zero = detail.get("quantization") or (0.0, 0)
    if raw.dtype in (np.int8, np.uint8, np.int16) and scale:
        return (raw.astype(np.float32) - np.float32(zero)) * np.float32(scale)
    return None


class LiteRTSession(Session):
    def __init__(self, path: str, threads: int, precision: str):
        mod, package = _interpreter_module()
        self._interp = mod.Interpreter(model_path=path, num_threads=threads)
        allocate_tensors(self._interp)
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self.input_name = self._in["name"]
        self.output_name = self._out["name"]
        self.settings = {
            "threads": threads,
            "interpreter": package,
            "xnnpack": True,
            "op_resolver": "auto (builtin ops + default XNNPACK delegate)",
            "weights": precision,
            "compute": "int8" if precision == "int8" else "fp32",
        }

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self._in["dtype"])
        if tuple(x.shape) != tuple(self._in["shape"]):
            raise ValueError(f"input shape {list(x.shape)} != the model's {list(self._in['shape'])}")
        self._interp.set_tensor(self._in["index"], x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out["index"]).copy()

    def close(self) -> None:
        self._interp = None


class LiteRTRuntime(Runtime):
    name = "litert"
    no_op_profile = "LiteRT's op profiler is in benchmark_model: use --device adb with --tflite-benchmark"

    def version(self) -> str:
        mod, package = _interpreter_module()
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(package)
        except PackageNotFoundError:  # pragma: no cover
            return getattr(mod, "__version__", "unknown")

    def load(self, export_dir_or_manifest, fmt_entry=None, threads: int = 1, precision: str = "fp32") -> LiteRTSession:
        threads = check_threads(threads)
        _, _, _, paths = self.artifact(export_dir_or_manifest, fmt_entry)
        return LiteRTSession(paths[0], threads, precision)

    def intermediates(self, files, x, precision="fp32") -> list[RuntimeTensor]:
        """Every op's output in op order, kept by ``experimental_preserve_all_tensors`` (NHWC, as LiteRT holds it)."""
        import warnings

        mod, _ = _interpreter_module()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "preserve_all_tensors is intended for debugging": that is what this is
            interp = mod.Interpreter(model_path=files[0], num_threads=1, experimental_preserve_all_tensors=True)
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
