"""FCN (Long et al., CVPR 2015; Table 1's "FCN-8s") on dilated MobileNetV2, as mmseg's ``fcn_m-v2-d8``.

Table 1 lists the mmseg model: its size (9.8 M / 39.6 G) is that of mmseg's ``FCNHead`` on the output-stride-8
MobileNetV2 (:data:`.mobilenetv2.OS8`), not of a skip-connected FCN-8s decoder: two 3x3 ConvModules to 512
(``convs.0``, ``convs.1``), the input concatenated back (``concat_input=True``) through a 3x3 ``conv_cat``, and
``conv_seg``. Logits at 1/8.
"""

from __future__ import annotations

import torch
from torch import nn

from ...registry import register_model
from ..layers import ConvModule
from ._common import baseline_spec
from .mobilenetv2 import OS8, MobileNetV2

PAPER = "Fully Convolutional Networks for Semantic Segmentation (CVPR 2015)"


class FCNHead(nn.Module):
    """mmseg ``FCNHead``: ``num_convs`` ConvModules, optional ``conv_cat`` over [input, convs(input)], ``conv_seg``.

    Args:
        in_channels: input channels.
        channels: width of the convs.
        num_classes: output classes.
        num_convs: number of ConvModules.
        kernel_size: their kernel size.
        concat_input: concatenate the input with the conv output before the classifier (through ``conv_cat``).
        dropout: dropout before the classifier (identity at inference; ``None`` for none).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        num_classes: int,
        num_convs: int = 2,
        kernel_size: int = 3,
        concat_input: bool = True,
        dropout: float | None = 0.1,
    ):
        super().__init__()
        pad = kernel_size // 2
        self.convs = nn.Sequential(
            *[
                ConvModule(in_channels if i == 0 else channels, channels, kernel_size, padding=pad)
                for i in range(num_convs)
            ]
        )
        self.concat_input = concat_input
        if concat_input:
            self.conv_cat = ConvModule(in_channels + channels, channels, kernel_size, padding=pad)
        self.dropout = nn.Dropout2d(dropout) if dropout else None
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        out = self.convs(x)
        if self.concat_input:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        if self.dropout is not None:
            out = self.dropout(out)
        return self.conv_seg(out)


class FCN(nn.Module):
    """MobileNetV2 (OS8) + FCN head; logits N x classes x H/8 x W/8."""

    def __init__(self, num_classes: int = 150, channels: int = 512):
        super().__init__()
        self.backbone = MobileNetV2(**OS8, out_indices=(1, 2, 4, 6))
        self.decode_head = FCNHead(320, channels, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone(image)[3])


@register_model(
    baseline_spec("fcn-mbv2", PAPER, dict(params_m=9.8, gflops=39.6, miou=19.7, latency_ms=1015), output_stride=8)
)
def fcn_mbv2(num_classes: int = 150, **kw):
    return FCN(num_classes, **kw)
