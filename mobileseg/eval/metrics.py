"""Segmentation metrics from a confusion matrix (the mmseg definitions).

IoU of class c = TP / (TP + FP + FN). A class that is neither in the labels nor in the predictions of the whole
evaluation has no IoU (NaN) and is left out of the mean; a class predicted but never labelled has IoU 0.
"""

from __future__ import annotations

import numpy as np


class ConfusionMatrix:
    """Accumulates ``counts[label, prediction]`` over images; pixels whose label is ``ignore_index`` are skipped."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.counts = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        pred = np.asarray(pred).reshape(-1).astype(np.int64)
        label = np.asarray(label).reshape(-1).astype(np.int64)
        if pred.shape != label.shape:
            raise ValueError(f"prediction has {pred.size} pixels but the label has {label.size}")
        keep = label != self.ignore_index
        pred, label = pred[keep], label[keep]
        bad = (label < 0) | (label >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"label value {int(label[bad][0])} is outside 0..{self.num_classes - 1} "
                f"and is not the ignore index {self.ignore_index}"
            )
        if ((pred < 0) | (pred >= self.num_classes)).any():
            raise ValueError(f"prediction outside 0..{self.num_classes - 1}")
        self.counts += np.bincount(label * self.num_classes + pred, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def iou(self) -> np.ndarray:
        tp = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(0) + self.counts.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU in percent over the classes present in labels or predictions."""
        iou = self.iou()
        return float(np.nanmean(iou) * 100) if np.isfinite(iou).any() else float("nan")

    def class_accuracy(self) -> np.ndarray:
        tp = np.diag(self.counts).astype(np.float64)
        total = self.counts.sum(1)
        return np.where(total > 0, tp / np.maximum(total, 1), np.nan)

    def macc(self) -> float:
        acc = self.class_accuracy()
        return float(np.nanmean(acc) * 100) if np.isfinite(acc).any() else float("nan")

    def aacc(self) -> float:
        """Pixel accuracy in percent over all labelled pixels."""
        total = self.counts.sum()
        return float(np.trace(self.counts) / total * 100) if total else float("nan")
