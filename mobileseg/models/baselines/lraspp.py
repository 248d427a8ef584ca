"""LR-ASPP on MobileNetV3-Large (Howard et al., "Searching for MobileNetV3", ICCV 2019), Table 1 of TopFormer.

Graph (the MobileNetV3 paper's segmentation head, as torchvision's ``lraspp_mobilenet_v3_large``): the backbone runs
at output stride 16 (last stage dilated); on the 960-channel 1/16 map a 1x1 conv-BN-ReLU (``aspp_conv``, 128
channels) is gated by a sigmoid of a pooled 1x1 conv branch (``image_pool``); the product is upsampled to 1/8 and
classified (``conv_seg``), and added to a linear classifier of the 40-channel 1/8 feature (``low_classifier``; the
output of ``layer4``, the first block at 1/8, which is the feature torchvision's implementation taps).
Logits come out at 1/8 of the input. Table 1's 3.2 M / 2.0 G and 1.6 M / 1.3 G are this graph's size (torchvision
publishes 3.22 M params for it); mmseg's ``LRASPPHead`` (``lraspp_m-v3-d8``: output stride 8 with two extra skip
branches up to 1/2) is a different, much heavier graph (about 6.2 G backbone + 3.6 G head at 512x512, by our
count), so it is not what Table 1 lists, and its checkpoints do not fit this graph.

Pooling reading: the paper pools with a 49x49 kernel and stride (16, 20), sized for 1024x2048 Cityscapes crops (a
64x128 map at 1/16); at 512x512 the 1/16 map is 32x32, smaller than that kernel. We pool globally (torchvision's
reading, the kernel's intent at these resolutions) with a Python-int ``avg_pool2d`` so every exporter takes it.
BN eps 0.001 throughout (mmseg ``lraspp_m-v3-d8`` config). Parameter names: mmseg's for the backbone and for the
head parts mmseg shares (``aspp_conv``, ``image_pool.1``, ``conv_seg``).
"""

from __future__ import annotations

import torch
from torch import nn

from ...registry import register_model
from ..layers import ConvModule, pool_to, resize
from ._common import baseline_spec
from .mobilenetv3 import BN_EPS, MobileNetV3

PAPER = "Searching for MobileNetV3 (ICCV 2019)"


class GlobalPool(nn.Module):
    def forward(self, x):
        return pool_to(x, (1, 1))


class LRASPPHead(nn.Module):
    def __init__(
        self, low_channels: int, high_channels: int, num_classes: int, channels: int = 128, dropout: float = 0.1
    ):
        super().__init__()
        self.aspp_conv = ConvModule(high_channels, channels, 1, act=nn.ReLU, bn_eps=BN_EPS)
        self.image_pool = nn.Sequential(
            GlobalPool(), ConvModule(high_channels, channels, 1, norm=False, act=nn.Sigmoid, bias=False)
        )
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, inputs):
        low, high = inputs
        x = self.aspp_conv(high) * self.image_pool(high)  # (N,C,1,1) gate broadcasts: no resize needed
        x = resize(x, low.shape[-2:])
        return self.low_classifier(low) + self.conv_seg(self.dropout(x))


class LRASPP(nn.Module):
    """MobileNetV3-Large (OS16) + LR-ASPP; logits N x classes x H/8 x W/8.

    Args:
        num_classes: output classes (150 for ADE20K).
        reduce: MobileNetV3-Large-reduce backbone (last stage halved, final conv 480).
    """

    def __init__(self, num_classes: int = 150, reduce: bool = False):
        super().__init__()
        self.backbone = MobileNetV3(out_indices=(4, 16), output_stride=16, reduce=reduce)
        self.decode_head = LRASPPHead(self.backbone.out_channels[4], self.backbone.out_channels[16], num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone(image))


@register_model(
    baseline_spec(
        "lraspp-mbv3-large", PAPER, dict(params_m=3.2, gflops=2.0, miou=33.1, latency_ms=126), output_stride=8
    )
)
def lraspp_mbv3_large(num_classes: int = 150, **kw):
    return LRASPP(num_classes, reduce=False, **kw)


@register_model(
    baseline_spec(
        "lraspp-mbv3-large-reduce", PAPER, dict(params_m=1.6, gflops=1.3, miou=32.3, latency_ms=81), output_stride=8
    )
)
def lraspp_mbv3_large_reduce(num_classes: int = 150, **kw):
    return LRASPP(num_classes, reduce=True, **kw)
