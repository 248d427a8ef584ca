"""PyTorch eager adapter: the reference runtime.

It runs no file: it rebuilds the exported model (same name, classes, weights, BN folding, classifier scaling and
graph boundary, all read from the manifest) through :mod:`mobileseg.export.api`, so its output is what the
artifacts were compared against. ``threads=1`` sets one intra-op thread and one inter-op thread (torch allows setting
the inter-op count only before any parallel work; the setting actually in force is recorded).
"""
from __future__ import annotations

import numpy as np

from .base import Runtime, Session, check_threads, load_manifest


class TorchSession(Session):
    def __init__(self, model, threads: int, precision: str):
        import torch

        self._torch = torch
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set (or parallel work already ran) in this process
            pass
        self._model = model
        self.settings = {"threads": threads, "intra_op_threads": torch.get_num_threads(),
                         "inter_op_threads": torch.get_num_interop_threads(), "mode": "eager, inference_mode",
                         "precision": "fp32", "bn_folded": True}

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self._model(self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def close(self) -> None:
        self._model = None


class TorchRuntime(Runtime):
    name = "torch"
    format = "torch"
    extra = ""

    def version(self) -> str:
        import torch

        return torch.__version__

    def load(self, export_dir_or_manifest, fmt_entry=None, threads: int = 1, precision: str = "fp32") -> TorchSession:
        from ..export.api import build_export_model

        threads = check_threads(threads)
        _, man = load_manifest(export_dir_or_manifest)
        w = man.get("weights") or {}
        model, _ = build_export_model(man["model"], tuple(man["resolution"]), num_classes=man.get("num_classes"),
                                      weights=w.get("path"), graph=man.get("graph", "logits"),
                                      classifier_scale=w.get("classifier_scale"),
                                      classifier_shift=w.get("classifier_shift"))
        return TorchSession(model, threads, precision)
