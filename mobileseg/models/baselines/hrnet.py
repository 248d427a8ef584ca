"""HRNet-W18-Small (Wang et al., TPAMI 2020) with mmseg's FCN head, Table 1 of TopFormer (mmseg ``fcn_hr18s``).

Backbone in mmseg's layout (``mmseg/models/backbones/hrnet.py``): stem ``conv1/bn1/conv2/bn2`` (two stride-2 3x3
convs), ``layer1`` (Bottleneck blocks, 64 -> 256), ``transition{1,2,3}`` and ``stage{2,3,4}`` of HRModules
(``branches`` of BasicBlocks, ``fuse_layers``). W18-Small (``configs/hrnet/fcn_hr18s_*``): stage1 2 blocks;
stage2 1 module x (2, 2) blocks; stage3 3 modules x (2, 2, 2); stage4 2 modules x (2, 2, 2, 2); widths 18/36/72/144.

Head (``configs/_base_/models/fcn_hr18.py``): the four branches resized to 1/4 and concatenated (270 channels,
``resize_concat``), one 1x1 ConvModule (``convs.0``), no dropout, ``conv_seg``. Logits at 1/4. The fuse layers'
upsampling is an explicit bilinear resize to the target branch size (``align_corners=False``, what mmseg does after
its ``nn.Upsample``), so no parameter names change.
"""

from __future__ import annotations

import torch
from torch import nn

from ...registry import register_model
from ..layers import resize
from ._common import baseline_spec
from .fcn import FCNHead

PAPER = "Deep High-Resolution Representation Learning for Visual Recognition (TPAMI 2020)"

W18_SMALL = dict(
    stage1=dict(num_blocks=(2,), num_channels=(64,)),
    stage2=dict(num_modules=1, num_blocks=(2, 2), num_channels=(18, 36)),
    stage3=dict(num_modules=3, num_blocks=(2, 2, 2), num_channels=(18, 36, 72)),
    stage4=dict(num_modules=2, num_blocks=(2, 2, 2, 2), num_channels=(18, 36, 72, 144)),
)


def _conv_bn(in_ch, out_ch, k, stride=1, relu=True):
    layers = [nn.Conv2d(in_ch, out_ch, k, stride, k // 2, bias=False), nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _make_blocks(block, in_ch, planes, n, stride=1):
    downsample = None
    if stride != 1 or in_ch != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(in_ch, planes * block.expansion, 1, stride, bias=False), nn.BatchNorm2d(planes * block.expansion)
        )
    layers = [block(in_ch, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, n)]
    return nn.Sequential(*layers)


class HRModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output branch sums all branches brought to its resolution."""

    def __init__(self, num_blocks, channels):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            [_make_blocks(BasicBlock, channels[i], channels[i], num_blocks[i]) for i in range(n)]
        )
        self.fuse_layers = None
        if n > 1:
            fuse = []
            for i in range(n):
                row = []
                for j in range(n):
                    if j > i:  # 1x1 conv + BN, then upsample (in forward)
                        row.append(_conv_bn(channels[j], channels[i], 1, relu=False))
                    elif j == i:
                        row.append(None)
                    else:  # (i - j) stride-2 3x3 convs, ReLU between them
                        steps = []
                        for k in range(i - j):
                            last = k == i - j - 1
                            steps.append(
                                _conv_bn(channels[j], channels[i] if last else channels[j], 3, 2, relu=not last)
                            )
                        row.append(nn.Sequential(*steps))
                fuse.append(nn.ModuleList(row))
            self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU()

    def forward(self, xs):
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j > i:
                    y = y + resize(layer(xs[j]), xs[i].shape[-2:])
                elif j < i:
                    y = y + layer(xs[j])
            out.append(self.relu(y))
        return out


def _transition(pre, cur):
    layers = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(_conv_bn(pre[i], c, 3) if c != pre[i] else None)
        else:
            steps = [_conv_bn(pre[-1], c if j == i - len(pre) else pre[-1], 3, 2) for j in range(i + 1 - len(pre))]
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNet(nn.Module):
    """mmseg ``HRNet`` (multi-scale output): returns the four branches at 1/4, 1/8, 1/16, 1/32."""

    def __init__(self, extra=W18_SMALL):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        s1 = extra["stage1"]
        self.layer1 = _make_blocks(Bottleneck, 64, s1["num_channels"][0], s1["num_blocks"][0])
        pre = [s1["num_channels"][0] * Bottleneck.expansion]
        self.num_stages = 0
        for k in (2, 3, 4):
            cfg = extra[f"stage{k}"]
            cur = list(cfg["num_channels"])
            setattr(self, f"transition{k - 1}", _transition(pre, cur))
            setattr(
                self, f"stage{k}", nn.Sequential(*[HRModule(cfg["num_blocks"], cur) for _ in range(cfg["num_modules"])])
            )
            pre = cur
        self.out_channels = pre

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for k in (2, 3, 4):
            trans = getattr(self, f"transition{k - 1}")
            xs = []
            for i, t in enumerate(trans):
                # as mmseg: a branch without transition passes through, a new branch grows from the lowest one
                xs.append(ys[i] if t is None else t(ys[-1]))
            ys = getattr(self, f"stage{k}")(xs)
        return ys


class HRNetFCN(nn.Module):
    """HRNet-W18-Small + FCN head over the concatenated branches; logits N x classes x H/4 x W/4."""

    def __init__(self, num_classes: int = 150):
        super().__init__()
        self.backbone = HRNet(W18_SMALL)
        ch = sum(self.backbone.out_channels)
        self.decode_head = FCNHead(ch, ch, num_classes, num_convs=1, kernel_size=1, concat_input=False, dropout=None)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(image)
        size = feats[0].shape[-2:]
        x = torch.cat([feats[0]] + [resize(f, size) for f in feats[1:]], dim=1)
        return self.decode_head(x)


@register_model(
    baseline_spec("hrnet-w18-small", PAPER, dict(params_m=4.0, gflops=10.2, miou=33.4, latency_ms=639), output_stride=4)
)
def hrnet_w18_small(num_classes: int = 150, **kw):
    return HRNetFCN(num_classes, **kw)
