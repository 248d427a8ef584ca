"""DeepLabV3+ (Chen et al., ECCV 2018) and its reduced-channel "Lite-ASPP" on MobileNetV2, Table 1 of TopFormer.

Head: mmseg's ``DepthwiseSeparableASPPHead`` (``configs/_base_/models/deeplabv3plus_r50-d8.py``): image pooling +
1x1 + three depthwise-separable dilated 3x3 ASPP branches (``image_pool``, ``aspp_modules``), a dense 3x3
``bottleneck``, a 48-channel 1x1 ``c1_bottleneck`` on the 1/4 feature (``layer2``, 24 channels), two
depthwise-separable 3x3 convs (``sep_bottleneck``) and ``conv_seg`` at 1/4. Logits come out at 1/4 of the input.

Output stride: TopFormer's own COCO-Stuff table (Table 10) names this baseline "DeepLabV3+ MobileNetV2-s16" with a
2.46 G backbone and a 23.44 G head, i.e. Table 1's 25.8 G; the mmseg ``m-v2-d8`` config would run the 2560-channel
3x3 bottleneck on a 64x64 map (over 50 GMACs in total). We therefore build the backbone at output stride 16
(:data:`.mobilenetv2.OS16`) with the DeepLabV3+ paper's ASPP rates for that stride, (1, 6, 12, 18); rates do not
change the size. ``align_corners=False`` as in mmseg.

Lite-ASPP (Table 1: 2.9 M / 4.4 G, "the reduced channel version of DeepLabv3+") is the same graph with 128 head
channels instead of 512: the published papers leave the width open, 128 is the reading that lands on Table 1's
size (2.8 M / 4.3 GMACs).
"""

from __future__ import annotations

import torch
from torch import nn

from ...registry import register_model
from ..layers import ConvModule, pool_to, resize
from ._common import DepthwiseSeparableConvModule, baseline_spec
from .mobilenetv2 import OS16, MobileNetV2

PAPER = "Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation (ECCV 2018)"


class ImagePool(nn.Module):
    """``Sequential(AdaptiveAvgPool2d(1), ConvModule)`` of mmseg's ASPPHead, with an export-friendly global mean."""

    def __init__(self, in_ch, channels):
        super().__init__()
        self.add_module("1", ConvModule(in_ch, channels, 1))

    def forward(self, x):
        return getattr(self, "1")(pool_to(x, (1, 1)))


class DepthwiseSeparableASPPHead(nn.Module):
    def __init__(
        self,
        in_channels: int,
        channels: int,
        c1_in_channels: int,
        c1_channels: int,
        num_classes: int,
        dilations=(1, 6, 12, 18),
        dropout: float = 0.1,
    ):
        super().__init__()
        self.image_pool = ImagePool(in_channels, channels)
        self.aspp_modules = nn.ModuleList(
            [
                ConvModule(in_channels, channels, 1)
                if d == 1
                else DepthwiseSeparableConvModule(in_channels, channels, 3, padding=d, dilation=d)
                for d in dilations
            ]
        )
        self.bottleneck = ConvModule((len(dilations) + 1) * channels, channels, 3, padding=1)
        self.c1_bottleneck = ConvModule(c1_in_channels, c1_channels, 1)
        self.sep_bottleneck = nn.Sequential(
            DepthwiseSeparableConvModule(channels + c1_channels, channels, 3, padding=1),
            DepthwiseSeparableConvModule(channels, channels, 3, padding=1),
        )
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, inputs):
        c1, x = inputs[0], inputs[-1]
        size = x.shape[-2:]
        outs = [resize(self.image_pool(x), size)] + [m(x) for m in self.aspp_modules]
        out = self.bottleneck(torch.cat(outs, dim=1))
        c1 = self.c1_bottleneck(c1)
        out = torch.cat([resize(out, c1.shape[-2:]), c1], dim=1)
        return self.conv_seg(self.dropout(self.sep_bottleneck(out)))


class DeepLabV3Plus(nn.Module):
    """MobileNetV2 (OS16) + DeepLabV3+ head; logits N x classes x H/4 x W/4.

    Args:
        num_classes: output classes.
        channels: head width (512: DeepLabV3+, 128: Lite-ASPP).
        dilations: ASPP rates (first must be 1, the plain 1x1 branch).
    """

    def __init__(self, num_classes: int = 150, channels: int = 512, dilations=(1, 6, 12, 18)):
        super().__init__()
        self.backbone = MobileNetV2(**OS16, out_indices=(1, 2, 4, 6))
        self.decode_head = DepthwiseSeparableASPPHead(320, channels, 24, 48, num_classes, dilations)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(image)
        return self.decode_head([feats[0], feats[3]])


@register_model(
    baseline_spec(
        "deeplabv3plus-mbv2", PAPER, dict(params_m=15.4, gflops=25.8, miou=38.1, latency_ms=1035), output_stride=4
    )
)
def deeplabv3plus_mbv2(num_classes: int = 150, **kw):
    return DeepLabV3Plus(num_classes, channels=512, **kw)


@register_model(
    baseline_spec(
        "lite-aspp-mbv2",
        PAPER + " (reduced-channel Lite-ASPP)",
        dict(params_m=2.9, gflops=4.4, miou=36.6, latency_ms=235),
        output_stride=4,
    )
)
def lite_aspp_mbv2(num_classes: int = 150, **kw):
    return DeepLabV3Plus(num_classes, channels=128, **kw)
