"""PyTorch eager adapter: the reference runtime.

It runs the torch artifact (``model.pt``): the BN-folded module that export checked and compared every other
artifact against, saved with ``torch.save`` (see :mod:`mobileseg.export.pytorch`). It does not rebuild or re-fold
the model. ``threads`` is set before the file is loaded; ``threads=1`` sets one intra-op thread and one inter-op
thread (torch allows setting the inter-op count only before any parallel work; the setting in force is recorded).
"""

from __future__ import annotations

import numpy as np

from .base import Runtime, Session, check_threads


class TorchSession(Session):
    def __init__(self, path: str, threads: int, precision: str):
        import torch

        self._torch = torch
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set (or parallel work already ran) in this process
            pass
        self._model = torch.load(path, weights_only=False, map_location="cpu").eval()
        self.settings = {
            "threads": threads,
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "mode": "eager, inference_mode",
            "precision": "fp32",
            "bn_folded": True,
        }

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self._model(self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def close(self) -> None:
        self._model = None


class TorchRuntime(Runtime):
    name = "torch"
    no_op_profile = "no per-op profile for torch cells (use torch.profiler directly)"

    def version(self) -> str:
        import torch

        return torch.__version__

    def load(self, export_dir_or_manifest, fmt_entry=None, threads: int = 1, precision: str = "fp32") -> TorchSession:
        threads = check_threads(threads)
        _, _, _, paths = self.artifact(export_dir_or_manifest, fmt_entry)
        return TorchSession(paths[0], threads, precision)
