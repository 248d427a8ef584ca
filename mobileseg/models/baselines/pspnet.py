"""PSPNet (Zhao et al., CVPR 2017) on dilated MobileNetV2, Table 1 of TopFormer (mmseg ``pspnet_m-v2-d8``).

mmseg ``PSPHead``: pyramid pooling to 1, 2, 3, 6 bins (``psp_modules.{i}`` = pool + 1x1 ConvModule to 512), bilinear
upsample (``align_corners=False``), concat with the 320-channel input, 3x3 ``bottleneck`` to 512, ``conv_seg``.
Backbone at output stride 8 (:data:`.mobilenetv2.OS8`); logits at 1/8. The 3x3 and 6x6 poolings of a 64x64 map are
exported as constant bin-averaging matrix products (:func:`._common.adaptive_avg_pool`, same numbers as
``adaptive_avg_pool2d``); the resolution must be a multiple of 32 (feature maps of whole pixels).
"""

from __future__ import annotations

import torch
from torch import nn

from ...registry import register_model
from ..layers import ConvModule, resize
from ._common import AdaptiveAvgPool, baseline_spec
from .mobilenetv2 import OS8, MobileNetV2

PAPER = "Pyramid Scene Parsing Network (CVPR 2017)"


class PSPHead(nn.Module):
    def __init__(
        self, in_channels: int, channels: int, num_classes: int, pool_scales=(1, 2, 3, 6), dropout: float = 0.1
    ):
        super().__init__()
        self.psp_modules = nn.ModuleList(
            [nn.Sequential(AdaptiveAvgPool(s), ConvModule(in_channels, channels, 1)) for s in pool_scales]
        )
        self.bottleneck = ConvModule(in_channels + len(pool_scales) * channels, channels, 3, padding=1)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        outs = [x] + [resize(m(x), size) for m in self.psp_modules]
        return self.conv_seg(self.dropout(self.bottleneck(torch.cat(outs, dim=1))))


class PSPNet(nn.Module):
    """MobileNetV2 (OS8) + PSP head; logits N x classes x H/8 x W/8."""

    def __init__(self, num_classes: int = 150, channels: int = 512):
        super().__init__()
        self.backbone = MobileNetV2(**OS8, out_indices=(1, 2, 4, 6))
        self.decode_head = PSPHead(320, channels, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone(image)[3])


@register_model(
    baseline_spec("pspnet-mbv2", PAPER, dict(params_m=13.7, gflops=52.2, miou=29.6, latency_ms=1065), output_stride=8)
)
def pspnet_mbv2(num_classes: int = 150, **kw):
    return PSPNet(num_classes, **kw)
