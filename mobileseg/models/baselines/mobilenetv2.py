"""MobileNetV2 backbone in mmseg's layout (``mmseg/models/backbones/mobilenet_v2.py``), for dilated segmentation.

Keys: ``conv1.{conv,bn}``, ``layer{1..7}.{block}.conv.{i}.{conv,bn}`` (mmcv ``ConvModule``s: expand 1x1, depthwise
3x3, linear 1x1). There is no final 1280-channel conv: the heads read the 320-channel ``layer7``. As in mmseg, a
layer's ``dilation`` applies to its first block only (the other blocks of the layer use dilation 1).

Output strides used by the Table 1 baselines:

* ``OS8``  (mmseg ``m-v2-d8``): strides (1, 2, 2, 1, 1, 1, 1), dilations (1, 1, 1, 2, 2, 4, 4);
* ``OS16`` (DeepLabV3+ / R-ASPP "MobileNetV2-s16"): strides (1, 2, 2, 2, 1, 1, 1), dilations (1, 1, 1, 1, 1, 2, 2).
"""

from __future__ import annotations

from torch import nn

from ..layers import ConvModule, make_divisible

# (expand ratio, channels, blocks) per layer
ARCH = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))
OS8 = dict(strides=(1, 2, 2, 1, 1, 1, 1), dilations=(1, 1, 1, 2, 2, 4, 4))
OS16 = dict(strides=(1, 2, 2, 2, 1, 1, 1), dilations=(1, 1, 1, 1, 1, 2, 2))


class InvertedResidual(nn.Module):
    """mmseg's MobileNetV2 block: ``conv`` = [expand 1x1] + depthwise 3x3 + linear 1x1, ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int, dilation: int = 1):
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvModule(in_ch, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvModule(
                hidden, hidden, 3, stride=stride, padding=dilation, dilation=dilation, groups=hidden, act=nn.ReLU6
            ),
            ConvModule(hidden, out_ch, 1, act=None),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """Dilated MobileNetV2 returning the ``layer{i+1}`` outputs listed in ``out_indices``.

    Args:
        strides: stride of the first block of each of the 7 layers.
        dilations: dilation of the first block of each layer (mmseg's rule).
        out_indices: layer indices (0-based) whose outputs are returned, in order.
        widen_factor: channel multiplier.
    """

    def __init__(
        self, strides=OS8["strides"], dilations=OS8["dilations"], out_indices=(1, 2, 4, 6), widen_factor: float = 1.0
    ):
        super().__init__()
        self.out_indices = tuple(out_indices)
        in_ch = make_divisible(32 * widen_factor, 8)
        self.conv1 = ConvModule(3, in_ch, 3, stride=2, padding=1, act=nn.ReLU6)
        self.layers = []
        self.out_channels = []
        for i, ((t, c, n), s, d) in enumerate(zip(ARCH, strides, dilations)):
            out_ch = make_divisible(c * widen_factor, 8)
            blocks = [
                InvertedResidual(in_ch if j == 0 else out_ch, out_ch, s if j == 0 else 1, t, d if j == 0 else 1)
                for j in range(n)
            ]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.layers.append(f"layer{i + 1}")
            self.out_channels.append(out_ch)
            in_ch = out_ch

    def forward(self, x):
        x = self.conv1(x)
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
