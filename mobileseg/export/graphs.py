"""Graph boundaries added on top of a model for export (module level, so the modules pickle for a subprocess)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ARGMAX_FORMULATIONS = ("argmax", "min-index")


class ArgmaxGraph(nn.Module):
    """The model's logits, bilinearly resized to the input size (segmentation), then argmax over classes.

    ``formulation``: ``"argmax"`` uses ``torch.argmax`` (ONNX ArgMax, TFLite ARG_MAX; int64 output).
    ``"min-index"`` computes the same class map from ops pnnx converts to ncnn layers (pnnx keeps ``torch.argmax``
    as a layer ncnn cannot run; ncnn's own ArgMax layer works on the whole flattened blob, not per pixel):
    ``m = amax_c(y)`` (Reduction), ``notmax = min(ceil(m - y), 1)`` (BinaryOp, UnaryOp ceil, Clip: exactly 0 for a
    maximal class and 1 for any smaller float, since ``m - y > 0`` then), class ``= amin_c(c + C * notmax)``
    (Reduction): the first maximal index, as ``torch.argmax`` returns on ties. Its output is float (exact integers).
    """

    def __init__(self, inner: nn.Module, out_size, formulation: str = "argmax"):
        super().__init__()
        if formulation not in ARGMAX_FORMULATIONS:
            raise ValueError(f"unknown argmax formulation {formulation!r}: {', '.join(ARGMAX_FORMULATIONS)}")
        self.model = inner
        self.size = (int(out_size[0]), int(out_size[1]))
        self.spec = getattr(inner, "spec", None)
        self.formulation = formulation

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        if y.dim() == 4 and tuple(y.shape[-2:]) != self.size:
            y = F.interpolate(y, size=self.size, mode="bilinear", align_corners=False)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.logits(x)
        if self.formulation == "argmax":
            return y.argmax(dim=1)
        c = int(y.shape[1])
        shape = [1, c] + [1] * (y.dim() - 2)
        m = torch.amax(y, dim=1, keepdim=True)
        notmax = torch.clamp(torch.ceil(m - y), max=1.0)
        index = torch.arange(c, dtype=y.dtype).view(shape) + float(c) * notmax
        return torch.amin(index, dim=1)

    def with_formulation(self, formulation: str) -> "ArgmaxGraph":
        """The same graph (shared weights) with another argmax formulation."""
        return ArgmaxGraph(self.model, self.size, formulation).eval()
