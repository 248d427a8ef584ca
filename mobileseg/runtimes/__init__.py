"""Runtime adapters (contract 3): load an exported artifact with N threads, run a numpy array, return a numpy array.

One module per runtime; adding a runtime is its adapter module plus one row in :data:`mobileseg.formats.RUNTIMES`.
Adapters import no model code: they run the files written by :func:`mobileseg.export.export_model`.

    rt = get_runtime("onnxruntime")
    sess = rt.load("export/topformer-t_448x448", None, threads=1)   # None: the manifest's entry for rt.format
    out = sess.run(x)
    sess.close()

``threads=1`` means one intra-op thread and no inter-op pool in every runtime (docs/measurement.md).
"""

from __future__ import annotations

from importlib import import_module

from .. import formats
from ..errors import MobilesegError
from .base import Runtime, Session, load_manifest, resolve_artifact


class UnknownRuntimeError(MobilesegError, KeyError):
    def __str__(self) -> str:
        return self.args[0] if self.args else ""


def get_runtime(name: str) -> Runtime:
    """The adapter called ``name`` (a key of :data:`mobileseg.formats.RUNTIMES`); its package is imported lazily by ``version``/``load``."""
    key = formats.runtime_key(name)
    if key is None:
        raise UnknownRuntimeError(f"unknown runtime '{name}': choose one of {', '.join(formats.RUNTIMES)}")
    module, cls = formats.RUNTIMES[key].adapter.split(":")
    return getattr(import_module(f"{__name__}.{module}"), cls)()


def runtime_for_format(fmt: str) -> Runtime:
    """The runtime that checks ``fmt`` artifacts on the host."""
    return get_runtime(formats.host_runtime(fmt))


__all__ = [
    "Runtime",
    "Session",
    "get_runtime",
    "runtime_for_format",
    "load_manifest",
    "resolve_artifact",
    "UnknownRuntimeError",
]
