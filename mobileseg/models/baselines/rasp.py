"""R-ASPP: the reduced ASPP head of MobileNetV2 (Sandler et al., CVPR 2018, section 6.3), Table 1 of TopFormer.

The MobileNetV2 paper's cheapest DeepLabv3 variant ("MNet V2*", output stride 16, no ASPP dilated branches, no
multi-scale): on the 320-channel ``layer7`` (the second-to-last feature map, without the 1280-channel conv) a 1x1
conv branch and an image-pooling branch of 256 channels each, concatenated, a 1x1 projection to 256 and the
classifier. That paper reports 2.11 M params / 2.75 B MAdds at 512x512 for it (Table 7), Table 1 2.2 M / 2.8 G with
150 classes. Logits at 1/16. No mmseg config exists for it: the names follow mmseg's ``ASPPHead`` with a single 1x1
ASPP branch (``image_pool.1``, ``aspp_modules.0``) and a 1x1 ``bottleneck`` (the reading the paper describes).
"""

from __future__ import annotations

import torch
from torch import nn

from ...registry import register_model
from ..layers import ConvModule, resize
from ._common import baseline_spec
from .deeplabv3plus import ImagePool
from .mobilenetv2 import OS16, MobileNetV2

PAPER = "MobileNetV2: Inverted Residuals and Linear Bottlenecks (CVPR 2018)"


class RASPPHead(nn.Module):
    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.image_pool = ImagePool(in_channels, channels)
        self.aspp_modules = nn.ModuleList([ConvModule(in_channels, channels, 1)])
        self.bottleneck = ConvModule(2 * channels, channels, 1)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        outs = [resize(self.image_pool(x), x.shape[-2:])] + [m(x) for m in self.aspp_modules]
        return self.conv_seg(self.dropout(self.bottleneck(torch.cat(outs, dim=1))))


class RASPP(nn.Module):
    """MobileNetV2 (OS16) + reduced ASPP; logits N x classes x H/16 x W/16."""

    def __init__(self, num_classes: int = 150, channels: int = 256):
        super().__init__()
        self.backbone = MobileNetV2(**OS16, out_indices=(1, 2, 4, 6))
        self.decode_head = RASPPHead(320, channels, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone(image)[3])


@register_model(
    baseline_spec("r-aspp-mbv2", PAPER, dict(params_m=2.2, gflops=2.8, miou=32.0, latency_ms=177), output_stride=16)
)
def r_aspp_mbv2(num_classes: int = 150, **kw):
    return RASPP(num_classes, **kw)
