"""Runtime adapters (contract 3): load an exported artifact with N threads, run a numpy array, return a numpy array.

One module per runtime; adding a runtime touches one file plus one line in :data:`RUNTIMES`. Adapters import no
model code: they run the files written by :func:`mobileseg.export.export_model` (the ``torch`` adapter rebuilds the
exported PyTorch model from the manifest through the registry, as the eager reference).

    rt = get_runtime("onnxruntime")
    sess = rt.load("export/topformer-t_448x448", None, threads=1)   # None: the manifest's entry for rt.format
    out = sess.run(x)
    sess.close()

``threads=1`` means one intra-op thread and no inter-op pool in every runtime (DESIGN.md section 6).
"""
from __future__ import annotations

from importlib import import_module

from ..errors import MobilesegError
from .base import Runtime, Session, load_manifest, resolve_artifact

# runtime name -> (module, class)
RUNTIMES = {
    "torch": ("torch_eager", "TorchRuntime"),
    "onnxruntime": ("onnxruntime", "OnnxRuntime"),
    "ncnn": ("ncnn", "NcnnRuntime"),
    "litert": ("litert", "LiteRTRuntime"),
}

# the runtime that checks each export format on the host
DEFAULT_RUNTIME = {"onnx": "onnxruntime", "ncnn": "ncnn", "tflite": "litert", "torch": "torch"}


class UnknownRuntimeError(MobilesegError, KeyError):
    def __str__(self) -> str:
        return self.args[0] if self.args else ""


def get_runtime(name: str) -> Runtime:
    """The adapter called ``name`` (one of :data:`RUNTIMES`); its package is imported lazily by ``version``/``load``."""
    key = str(name).strip().lower().replace("_", "").replace("-", "")
    aliases = {"ort": "onnxruntime", "tflite": "litert", "tfliteruntime": "litert", "aiedgelitert": "litert",
               "torcheager": "torch", "pytorch": "torch"}
    key = aliases.get(key, key)
    if key not in RUNTIMES:
        raise UnknownRuntimeError(f"unknown runtime '{name}': choose one of {', '.join(RUNTIMES)}")
    module, cls = RUNTIMES[key]
    return getattr(import_module(f"{__name__}.{module}"), cls)()


def runtime_for_format(fmt: str) -> Runtime:
    return get_runtime(DEFAULT_RUNTIME[fmt])


__all__ = ["RUNTIMES", "DEFAULT_RUNTIME", "Runtime", "Session", "get_runtime", "runtime_for_format",
           "load_manifest", "resolve_artifact", "UnknownRuntimeError"]
