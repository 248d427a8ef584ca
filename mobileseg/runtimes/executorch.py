"""ExecuTorch adapter: ``executorch.runtime.Runtime`` loads ``model.pte`` and runs its ``forward`` method.

Threads: XNNPACK's thread pool is process-wide in ExecuTorch's Python bindings; ``threads`` resizes it
(``_unsafe_reset_threadpool``) before each load and the session records the count it reports. The program's input
dtype is read from its method metadata: an fp16 program (``--precision fp16``) gets the float32 input cast to half,
and its output is returned as float32. Ops the runtime lacks fail ``load_method`` ("Missing operator"): that is
one sentence naming the op (:func:`missing_op_sentence`).
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import MobilesegError, require
from .base import Runtime, Session, check_threads

# ExecuTorch's ScalarType codes (c10) -> numpy dtype names
SCALAR_TYPES = {
    0: "uint8",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "int64",
    5: "float16",
    6: "float32",
    7: "float64",
    11: "bool",
}


def _runtime():
    require("executorch.runtime", "executorch", "running ExecuTorch (.pte) artifacts")
    from executorch.runtime import Runtime as EtRuntime

    return EtRuntime.get()


def _pool():
    from executorch.extension.pybindings import portable_lib

    return portable_lib


def missing_op_sentence(path: str, exc) -> str | None:
    """One sentence naming the op when ``exc`` says ExecuTorch lacks one, else None."""
    text = str(exc)
    m = re.search(r"Missing operator:?\s*(?:\[\d+\]\s*)?([\w:.]+)", text) or re.search(
        r"(?:operator|kernel) ['\"]?([\w:.]+)['\"]? (?:not found|is not registered)", text
    )
    if m:
        return (
            f"'{path.rsplit('/', 1)[-1]}' uses the op '{m.group(1)}', which this ExecuTorch runtime does not "
            "have (no kernel registered for it): re-export it with ops XNNPACK or the portable kernels take"
        )
    return None


def _load_method(path: str):
    rt = _runtime()
    try:
        program = rt.load_program(path)
        method = program.load_method("forward")
    except Exception as exc:
        raise MobilesegError(
            missing_op_sentence(path, exc)
            or f"ExecuTorch cannot load {path} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''})"
        ) from None
    return program, method


def read_program_io(path: str) -> dict:
    """Input and output of a ``.pte``'s ``forward`` (for ``bench --artifact``): shapes and dtypes from its metadata."""
    try:
        program = _runtime().load_program(path)
        meta = program.metadata("forward")
    except MobilesegError:
        raise
    except Exception as exc:
        raise MobilesegError(
            f"'{path}' is not an ExecuTorch program this runtime can read "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
        ) from None
    if meta.num_inputs() != 1:
        raise MobilesegError(f"'{path}' has {meta.num_inputs()} inputs; mobileseg benches single-input image models")
    i, o = meta.input_tensor_meta(0), meta.output_tensor_meta(0)
    _load_method(path)  # a missing operator is one sentence now, not a failed cell later
    return {
        "input_name": "input",
        "input_shape": list(i.sizes()),
        "input_dtype": SCALAR_TYPES.get(int(i.dtype()), "float32"),
        "output_name": "output",
        "output_shape": list(o.sizes()),
    }


class ExecuTorchSession(Session):
    def __init__(self, path: str, threads: int, precision: str):
        import torch

        pool = _pool()
        pool._unsafe_reset_threadpool(threads)
        self._program, self._method = _load_method(path)
        meta = self._program.metadata("forward")
        self._dtype = getattr(
            torch,
            {"float16": "float16", "float32": "float32"}.get(
                SCALAR_TYPES.get(int(meta.input_tensor_meta(0).dtype()), "float32"), "float32"
            ),
        )
        self._torch = torch
        self.input_name, self.output_name = "input", "output"
        self.settings = {
            "threads": threads,
            "threadpool_threads": int(pool._threadpool_get_thread_count()),
            "backend": "XNNPACK delegate (+ portable kernels)",
            "precision": precision,
            "program_dtype": str(self._dtype).replace("torch.", ""),
        }

    def run(self, x: np.ndarray) -> np.ndarray:
        t = self._torch.from_numpy(np.ascontiguousarray(x))
        if t.dtype != self._dtype:
            t = t.to(self._dtype)
        out = self._method.execute([t])[0]
        return out.float().numpy() if out.dtype != self._torch.float32 else out.numpy().copy()

    def close(self) -> None:
        self._method = self._program = None


class ExecuTorchRuntime(Runtime):
    name = "executorch"

    def version(self) -> str:
        require("executorch", "executorch", "running ExecuTorch (.pte) artifacts")
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("executorch")
        except PackageNotFoundError:  # pragma: no cover - a source build
            return "unknown"

    def load(
        self, export_dir_or_manifest, fmt_entry=None, threads: int = 1, precision: str = "fp32"
    ) -> ExecuTorchSession:
        threads = check_threads(threads)
        _, _, _, paths = self.artifact(export_dir_or_manifest, fmt_entry)
        return ExecuTorchSession(paths[0], threads, precision)
