"""MobileNetV3-Large backbone in mmseg's layout (``mmseg/models/backbones/mobilenet_v3.py``).

Keys: ``layer0.{conv,bn}`` (stem), ``layer{1..15}.{expand_conv,depthwise_conv,se.conv1,se.conv2,linear_conv}``
(mmcv ``ConvModule``s; ``expand_conv`` only when the block widens), ``layer16.{conv,bn}`` (the final 1x1 conv).
BatchNorm eps is 0.001 (``lraspp_m-v3-d8`` config). Hard-swish / hard-sigmoid are the ReLU6 forms of
:mod:`mobileseg.models.layers`, equal to mmcv's ``HSwish`` / ``HSigmoid(bias=3, divisor=6)``.

The stem conv of mmseg is a ``Conv2dAdaptivePadding`` (TensorFlow "SAME" padding): for the even input sizes the
registry allows this is a zero pad of one pixel on the right and bottom, done here with a static ``F.pad``.

``output_stride=16`` (the MobileNetV3 paper's segmentation setting, torchvision's ``dilated=True``): the stride of
``layer13`` is removed and ``layer13..16`` use dilation 2. ``output_stride=8`` is mmseg's ``m-v3-d8`` conversion
(``layer7`` and ``layer13`` stride 1, dilation 2 on ``layer7..12`` and 4 on ``layer13..16``).

``reduce=True`` is the MobileNetV3 paper's "reduce" tail ("the channels of all feature layers in the last block
divided by 2"): mid and out channels of ``layer13..15`` halved (mmseg's ``reduction_factor=2`` rule, 336/480 mid,
80 out) and the final ``layer16`` conv halved to 480 (mmseg keeps 960 there; the paper halves every feature layer of
the block). This reading gives 1.53 M / 1.32 GMACs for LR-ASPP at 512x512 against Table 1's 1.6 M / 1.3 G;
torchvision's ``reduced_tail`` (which keeps ``layer13``'s 672 expansion) gives 1.77 M (+11%), mmseg's rule alone
(960 final conv) 1.69 M / 1.42 G.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..layers import ConvModule, HSigmoid, HSwish, make_divisible

BN_EPS = 1e-3
# kernel, mid channels, out channels, squeeze-excite, activation, stride  (layer1..layer15)
LARGE = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2),
    (3, 200, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 480, 112, True, "hswish", 1),
    (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2),
    (5, 960, 160, True, "hswish", 1),
    (5, 960, 160, True, "hswish", 1),
)
_ACTS = {"relu": nn.ReLU, "hswish": HSwish}


class SameConvModule(ConvModule):
    """``ConvModule`` whose conv pads like TensorFlow "SAME" (mmcv ``Conv2dAdaptivePadding``), from static sizes."""

    def forward(self, x):
        c = self.conv
        pads = []
        for size, k, s, d in zip(
            (int(x.shape[-1]), int(x.shape[-2])), c.kernel_size[::-1], c.stride[::-1], c.dilation[::-1]
        ):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


class SELayer(nn.Module):
    """mmseg ``SELayer``: global mean, ``conv1`` 1x1 + ReLU, ``conv2`` 1x1 + hard-sigmoid, channel scale."""

    def __init__(self, channels: int, ratio: int = 4):
        super().__init__()
        squeeze = make_divisible(channels // ratio, 8)
        self.conv1 = ConvModule(channels, squeeze, 1, norm=False, act=nn.ReLU)
        self.conv2 = ConvModule(squeeze, channels, 1, norm=False, act=HSigmoid)

    def forward(self, x):
        h, w = int(x.shape[-2]), int(x.shape[-1])
        # global average with Python-int kernel sizes (export-friendly, see layers.pool_to)
        s = F.avg_pool2d(x, kernel_size=(h, w), stride=(h, w))
        return x * self.conv2(self.conv1(s))


class InvertedResidualV3(nn.Module):
    def __init__(self, in_ch, out_ch, mid_ch, kernel_size, stride, se, act, dilation=1):
        super().__init__()
        self.with_res_shortcut = stride == 1 and in_ch == out_ch
        self.with_expand_conv = in_ch != mid_ch
        if self.with_expand_conv:
            self.expand_conv = ConvModule(in_ch, mid_ch, 1, act=act, bn_eps=BN_EPS)
        self.depthwise_conv = ConvModule(
            mid_ch,
            mid_ch,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
            groups=mid_ch,
            act=act,
            bn_eps=BN_EPS,
        )
        self.se = SELayer(mid_ch) if se else None
        self.linear_conv = ConvModule(mid_ch, out_ch, 1, act=None, bn_eps=BN_EPS)

    def forward(self, x):
        out = self.expand_conv(x) if self.with_expand_conv else x
        out = self.depthwise_conv(out)
        if self.se is not None:
            out = self.se(out)
        out = self.linear_conv(out)
        return x + out if self.with_res_shortcut else out


class MobileNetV3(nn.Module):
    """MobileNetV3-Large for segmentation, returning the outputs of ``layer{i}`` for ``i`` in ``out_indices``.

    Args:
        out_indices: layer indices (0 = stem, 16 = final 1x1 conv) whose outputs are returned.
        output_stride: 16 (MobileNetV3 paper / torchvision) or 8 (mmseg ``m-v3-d8``).
        reduce: the paper's "reduce" tail (last stage channels halved).
    """

    def __init__(self, out_indices=(6, 16), output_stride: int = 16, reduce: bool = False):
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError("MobileNetV3 output_stride must be 8 or 16")
        self.out_indices = tuple(out_indices)
        self.layer0 = SameConvModule(3, 16, 3, stride=2, act=HSwish, bn_eps=BN_EPS)
        self.layers = ["layer0"]
        self.out_channels = [16]
        in_ch = 16
        for i, (k, mid, out, se, act, s) in enumerate(LARGE):
            idx = i + 1
            if reduce and idx >= 13:
                mid, out = mid // 2, out // 2
            dilation = 1
            if output_stride == 16 and idx >= 13:
                dilation, s = 2, 1
            elif output_stride == 8 and idx >= 7:
                dilation, s = (2 if idx < 13 else 4), 1
            self.add_module(f"layer{idx}", InvertedResidualV3(in_ch, out, mid, k, s, se, _ACTS[act], dilation))
            self.layers.append(f"layer{idx}")
            self.out_channels.append(out)
            in_ch = out
        last = 480 if reduce else 960
        self.layer16 = ConvModule(in_ch, last, 1, act=HSwish, bn_eps=BN_EPS)
        self.layers.append("layer16")
        self.out_channels.append(last)

    def forward(self, x):
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
