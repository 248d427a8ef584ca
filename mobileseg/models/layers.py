"""Small layers shared by the model definitions.

They are written so that every export path handles them: hard-sigmoid and hard-swish are expressed with ReLU6
(an op every converter and runtime knows) instead of ``F.hardsigmoid``/``F.hardswish`` whose lowering differs across
converters, and resizes are plain bilinear ``F.interpolate`` calls with an explicit output size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without going below 90% of it (MobileNet rule)."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class HSigmoid(nn.Module):
    """relu6(x + 3) / 6, the hard sigmoid of MobileNetV3 / TopFormer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


class HSwish(nn.Module):
    """x * relu6(x + 3) / 6."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (F.relu6(x + 3.0) / 6.0)


class Conv2dBN(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d with children ``c`` and ``bn``: the ``Conv2d_BN`` of the TopFormer release."""

    def __init__(
        self, in_ch, out_ch, ks=1, stride=1, pad=0, dilation=1, groups=1, bn_weight_init=1.0, bn_eps: float = 1e-5
    ):
        super().__init__()
        self.add_module("c", nn.Conv2d(in_ch, out_ch, ks, stride, pad, dilation, groups, bias=False))
        bn = nn.BatchNorm2d(out_ch, eps=bn_eps)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.constant_(bn.bias, 0.0)
        self.add_module("bn", bn)


class ConvModule(nn.Module):
    """mmcv's ``ConvModule`` layout: children ``conv``, ``bn`` (optional) and ``activate`` (optional).

    As in mmcv, the conv has a bias only when no norm follows (``bias='auto'``).
    """

    def __init__(
        self,
        in_ch,
        out_ch,
        kernel_size=1,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        norm: bool = True,
        act: type[nn.Module] | None = nn.ReLU,
        bn_eps: float = 1e-5,
        bias: bool | str = "auto",
    ):
        super().__init__()
        if bias == "auto":
            bias = not norm
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation, groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_ch, eps=bn_eps) if norm else None
        self.activate = act() if act is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activate is not None:
            x = self.activate(x)
        return x


def resize(x: torch.Tensor, size, mode: str = "bilinear", align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize to an explicit (H, W) given as Python ints (keeps exported graphs shape-static)."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


def pool_to(x: torch.Tensor, out_hw) -> torch.Tensor:
    """Average-pool ``x`` to ``out_hw``.

    When the input size is a multiple of the output size this is a fixed-kernel ``avg_pool2d`` (identical numbers to
    ``adaptive_avg_pool2d``) with Python-int kernel sizes, the form every converter handles (pnnx cannot load an
    avg-pool whose kernel is an expression of ``x.shape``). Otherwise it falls back to ``adaptive_avg_pool2d``.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    oh, ow = int(out_hw[0]), int(out_hw[1])
    if (oh, ow) == (h, w):
        return x
    if h % oh == 0 and w % ow == 0:
        kh, kw = h // oh, w // ow
        return F.avg_pool2d(x, kernel_size=(kh, kw), stride=(kh, kw))
    return F.adaptive_avg_pool2d(x, (oh, ow))


class DropPath(nn.Module):
    """Stochastic depth (identity at inference)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep
