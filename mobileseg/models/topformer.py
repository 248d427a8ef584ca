"""TopFormer: Token Pyramid Transformer for Mobile Semantic Segmentation (Zhang et al., CVPR 2022).

Module tree, parameter names and numerics follow the official release (hustvl/TopFormer,
``mmseg/models/backbones/topformer.py`` + ``decode_heads/simple_head.py``), so that official checkpoints load with
``strict=True`` into ``backbone.*`` / ``decode_head.*``. Quirks of the release reproduced on purpose:

* attention has no ``1/sqrt(d)`` scale (``self.scale`` is set but never applied);
* the token pyramid uses ReLU, the transformer ReLU6, the injection module ``h_sigmoid`` applied *before* the
  bilinear upsample, the head ReLU;
* TopFormer-T's ``linear_fuse`` is a depthwise 1x1 conv; logits come out at 1/8 of the input.

Pyramid pooling averages every scale down to 1/64 of the input (``c2t_stride=2`` on the 1/32 map). It is exact
(and export-friendly, see :func:`mobileseg.models.layers.pool_to`) when H and W are multiples of 64, which is what
the registry enforces.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checkpoint import register_family, rename_prefixes
from ..registry import ModelSpec, register_model
from .layers import Conv2dBN, ConvModule, DropPath, HSigmoid, make_divisible, pool_to, resize

TOPFORMER_PAPER = "TopFormer: Token Pyramid Transformer for Mobile Semantic Segmentation (CVPR 2022)"

# [kernel, expand ratio, out channels, stride] per token-pyramid layer (docs/models.md section 1 / supplement Table 3)
CFGS = {
    "t": dict(
        cfgs=[
            [3, 1, 16, 1],
            [3, 4, 16, 2],
            [3, 3, 16, 1],
            [5, 3, 32, 2],
            [5, 3, 32, 1],
            [3, 3, 64, 2],
            [3, 3, 64, 1],
            [5, 6, 96, 2],
            [5, 6, 96, 1],
        ],
        channels=[16, 32, 64, 96],
        out_channels=[None, 128, 128, 128],
        embed_out_indice=[2, 4, 6, 8],
        num_heads=4,
        head_channels=128,
        is_dw=True,
    ),
    "s": dict(
        cfgs=[
            [3, 1, 16, 1],
            [3, 4, 24, 2],
            [3, 3, 24, 1],
            [5, 3, 48, 2],
            [5, 3, 48, 1],
            [3, 3, 96, 2],
            [3, 3, 96, 1],
            [5, 6, 128, 2],
            [5, 6, 128, 1],
            [3, 6, 128, 1],
        ],
        channels=[24, 48, 96, 128],
        out_channels=[None, 192, 192, 192],
        embed_out_indice=[2, 4, 6, 9],
        num_heads=6,
        head_channels=192,
        is_dw=False,
    ),
    "b": dict(
        cfgs=[
            [3, 1, 16, 1],
            [3, 4, 32, 2],
            [3, 3, 32, 1],
            [5, 3, 64, 2],
            [5, 3, 64, 1],
            [3, 3, 128, 2],
            [3, 3, 128, 1],
            [5, 6, 160, 2],
            [5, 6, 160, 1],
            [3, 6, 160, 1],
        ],
        channels=[32, 64, 128, 160],
        out_channels=[None, 256, 256, 256],
        embed_out_indice=[2, 4, 6, 9],
        num_heads=8,
        head_channels=256,
        is_dw=False,
    ),
}


class InvertedResidual(nn.Module):
    """MobileNetV2 block; ``self.conv`` is a Sequential exactly as in the release (pw, act, dw, act, pw-linear)."""

    def __init__(self, inp: int, oup: int, ks: int, stride: int, expand_ratio: int, act=nn.ReLU):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [Conv2dBN(inp, hidden, ks=1), act()]
        layers += [
            Conv2dBN(hidden, hidden, ks=ks, stride=stride, pad=ks // 2, groups=hidden),
            act(),
            Conv2dBN(hidden, oup, ks=1),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class TokenPyramidModule(nn.Module):
    def __init__(self, cfgs, out_indices, inp_channel=16, act=nn.ReLU, width_mult=1.0):
        super().__init__()
        self.out_indices = list(out_indices)
        self.stem = nn.Sequential(Conv2dBN(3, inp_channel, 3, 2, 1), act())
        self.layers = []
        for i, (k, t, c, s) in enumerate(cfgs):
            out_ch = make_divisible(c * width_mult, 8)
            name = f"layer{i + 1}"
            self.add_module(name, InvertedResidual(inp_channel, out_ch, ks=k, stride=s, expand_ratio=t, act=act))
            inp_channel = out_ch
            self.layers.append(name)

    def forward(self, x):
        outs = []
        x = self.stem(x)
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return outs


class Attention(nn.Module):
    def __init__(self, dim, key_dim, num_heads, attn_ratio=2, act=nn.ReLU6):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.scale = key_dim**-0.5  # kept for fidelity; the release never applies it (see module docstring)
        self.to_q = Conv2dBN(dim, self.nh_kd, 1)
        self.to_k = Conv2dBN(dim, self.nh_kd, 1)
        self.to_v = Conv2dBN(dim, self.dh, 1)
        self.proj = nn.Sequential(act(), Conv2dBN(self.dh, dim, bn_weight_init=0))

    def forward(self, x):
        b, _, h, w = x.shape
        b, h, w = int(b), int(h), int(w)
        n = h * w
        q = self.to_q(x).reshape(b, self.num_heads, self.key_dim, n).permute(0, 1, 3, 2)
        k = self.to_k(x).reshape(b, self.num_heads, self.key_dim, n)
        v = self.to_v(x).reshape(b, self.num_heads, self.d, n).permute(0, 1, 3, 2)
        attn = torch.matmul(q, k).softmax(dim=-1)  # no scale: as released
        out = torch.matmul(attn, v).permute(0, 1, 3, 2).reshape(b, self.dh, h, w)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features, act=nn.ReLU6):
        super().__init__()
        self.fc1 = Conv2dBN(in_features, hidden_features)
        self.dwconv = nn.Conv2d(hidden_features, hidden_features, 3, 1, 1, bias=True, groups=hidden_features)
        self.act = act()
        self.fc2 = Conv2dBN(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class Block(nn.Module):
    def __init__(self, dim, key_dim, num_heads, mlp_ratio=2.0, attn_ratio=2.0, drop_path=0.0, act=nn.ReLU6):
        super().__init__()
        self.attn = Attention(dim, key_dim, num_heads, attn_ratio, act)
        self.drop_path = DropPath(drop_path)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act)

    def forward(self, x):
        x = x + self.drop_path(self.attn(x))
        return x + self.drop_path(self.mlp(x))


class BasicLayer(nn.Module):
    def __init__(self, depth, dim, key_dim, num_heads, mlp_ratio, attn_ratio, drop_path=0.0, act=nn.ReLU6):
        super().__init__()
        dpr = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.transformer_blocks = nn.ModuleList(
            [Block(dim, key_dim, num_heads, mlp_ratio, attn_ratio, dpr[i], act) for i in range(depth)]
        )

    def forward(self, x):
        for blk in self.transformer_blocks:
            x = blk(x)
        return x


class PyramidPoolAgg(nn.Module):
    """Average-pool every pyramid level to the size of the last one divided by ``stride``, concat on channels."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, inputs):
        h, w = int(inputs[-1].shape[-2]), int(inputs[-1].shape[-1])
        oh, ow = (h - 1) // self.stride + 1, (w - 1) // self.stride + 1
        return torch.cat([pool_to(x, (oh, ow)) for x in inputs], dim=1)


class InjectionMultiSum(nn.Module):
    """Semantics Injection Module: ``local(x_l) * up(h_sigmoid(act(x_g))) + up(global(x_g))``."""

    def __init__(self, inp, oup):
        super().__init__()
        self.local_embedding = ConvModule(inp, oup, 1, act=None)
        self.global_embedding = ConvModule(inp, oup, 1, act=None)
        self.global_act = ConvModule(inp, oup, 1, act=None)
        self.act = HSigmoid()

    def forward(self, x_l, x_g):
        h, w = int(x_l.shape[-2]), int(x_l.shape[-1])
        local_feat = self.local_embedding(x_l)
        sig_act = resize(self.act(self.global_act(x_g)), (h, w))
        global_feat = resize(self.global_embedding(x_g), (h, w))
        return local_feat * sig_act + global_feat


class Topformer(nn.Module):
    """The TopFormer backbone (``backbone.*``): token pyramid, semantics extractor and injection modules.

    With ``injection=False`` it returns the global semantics (the classification trunk of the supplement).
    """

    def __init__(
        self,
        cfgs,
        channels,
        out_channels,
        embed_out_indice,
        decode_out_indices=(1, 2, 3),
        depths=4,
        key_dim=16,
        num_heads=8,
        attn_ratio=2,
        mlp_ratio=2,
        c2t_stride=2,
        drop_path_rate=0.1,
        injection=True,
        **_,
    ):
        super().__init__()
        self.channels = list(channels)
        self.injection = injection
        self.embed_dim = sum(channels)
        self.decode_out_indices = list(decode_out_indices)
        self.tpm = TokenPyramidModule(cfgs, embed_out_indice)
        self.ppa = PyramidPoolAgg(c2t_stride)
        self.trans = BasicLayer(
            depths, self.embed_dim, key_dim, num_heads, mlp_ratio, attn_ratio, drop_path_rate, nn.ReLU6
        )
        if injection:
            self.SIM = nn.ModuleList(
                [
                    InjectionMultiSum(channels[i], out_channels[i]) if i in self.decode_out_indices else nn.Identity()
                    for i in range(len(channels))
                ]
            )

    def forward(self, x):
        outputs = self.tpm(x)
        out = self.trans(self.ppa(outputs))
        if not self.injection:
            return out
        xx = out.split(self.channels, dim=1)
        return [self.SIM[i](outputs[i], xx[i]) for i in range(len(self.channels)) if i in self.decode_out_indices]


class SimpleHead(nn.Module):
    """Sum the injected tokens at 1/8 (bilinear upsample of the 1/16 and 1/32 maps), 1x1 conv-BN-ReLU, classifier."""

    def __init__(self, channels, num_classes, is_dw=False, dropout=0.1):
        super().__init__()
        self.linear_fuse = ConvModule(channels, channels, 1, groups=channels if is_dw else 1, act=nn.ReLU)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, inputs):
        out = inputs[0]
        for pred in inputs[1:]:
            out = out + resize(pred, out.shape[-2:])
        return self.conv_seg(self.dropout(self.linear_fuse(out)))


class TopFormerSeg(nn.Module):
    """TopFormer for segmentation: ``backbone`` + ``decode_head``; logits at 1/8 of the input."""

    def __init__(self, variant: str, num_classes: int = 150, drop_path_rate: float = 0.1):
        super().__init__()
        cfg = CFGS[variant]
        self.backbone = Topformer(**cfg, drop_path_rate=drop_path_rate)
        self.decode_head = SimpleHead(cfg["head_channels"], num_classes, is_dw=cfg["is_dw"])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone(image))


class TopFormerCls(nn.Module):
    """TopFormer ImageNet classifier (supplement section A).

    The semantics extractor takes tokens pooled to 1/32 of the 224 input (``c2t_stride=1``); global average pooling
    of the global semantics, then a BatchNorm1d + Linear classifier (``head.bn``, ``head.l``). The release publishes
    no classification code; the BN+Linear head (LeViT style, which TopFormer's attention follows) is our reading,
    chosen because it reproduces the supplement's parameter counts (Table 1: 1.50 / 3.11 / 5.07 M).
    """

    def __init__(self, variant: str, num_classes: int = 1000, drop_path_rate: float = 0.1):
        super().__init__()
        cfg = CFGS[variant]
        self.backbone = Topformer(**cfg, c2t_stride=1, injection=False, drop_path_rate=drop_path_rate)
        dim = self.backbone.embed_dim
        self.head = nn.Sequential()
        self.head.add_module("bn", nn.BatchNorm1d(dim))
        self.head.add_module("l", nn.Linear(dim, num_classes))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.backbone(image)
        return self.head(x.mean(dim=(2, 3)))


_PARTS = (
    ("backbone.tpm", "token pyramid"),
    ("backbone.trans", "semantics extractor"),
    ("backbone.SIM", "semantics injection"),
    ("decode_head", "segmentation head"),
    ("head", "classifier"),
)

_PUBLISHED = {
    "t": dict(params_m=1.4, gflops=0.6, miou=32.8, latency_ms=43),
    "s": dict(params_m=3.1, gflops=1.2, miou=36.1, latency_ms=74),
    "b": dict(params_m=5.1, gflops=1.8, miou=37.8, latency_ms=110),
}
_PUBLISHED_CLS = {
    "t": dict(params_m=1.50, gflops=0.126, top1=66.2),
    "s": dict(params_m=3.11, gflops=0.235, top1=72.3),
    "b": dict(params_m=5.07, gflops=0.373, top1=75.3),
}


def _register(variant: str) -> None:
    name = f"topformer-{variant}"
    register_model(
        ModelSpec(
            name=name,
            family="topformer",
            default_resolution=(512, 512),
            output_stride=8,
            size_multiple=64,
            min_size=64,
            resolution_note="the token pyramid is pooled to 1/64 of the input, exact only for multiples of 64",
            paper=TOPFORMER_PAPER,
            table="Table 1 (ADE20K val, 512x512, Snapdragon 865 1 thread)",
            published=_PUBLISHED[variant],
            parts=_PARTS,
        )
    )(lambda num_classes=150, **kw: TopFormerSeg(variant, num_classes, **kw))
    register_model(
        ModelSpec(
            name=f"{name}-cls",
            family="topformer",
            task="classification",
            default_resolution=(224, 224),
            output_stride=32,
            size_multiple=32,
            min_size=32,
            num_classes=1000,
            dataset="imagenet",
            paper=TOPFORMER_PAPER + ", supplementary material",
            table="Supplement Table 1 (ImageNet, 224x224)",
            published=_PUBLISHED_CLS[variant],
            parts=_PARTS,
        )
    )(lambda num_classes=1000, **kw: TopFormerCls(variant, num_classes, **kw))


for _v in ("t", "s", "b"):
    _register(_v)

# Names used in internal/early checkpoints (documented by tools/convert_state_dict.py of the release).
LEGACY_RENAMES = [
    ("patch_embed.", "tpm."),
    ("fuse_blocks.", "SIM."),
    ("to_feat1.", "local_embedding."),
    ("to_feat2.", "global_embedding."),
    ("fuse2.", "global_act."),
]


def convert_topformer_state(state: dict, model_name: str):
    notes = []
    if any(old in k for k in state for old, _ in LEGACY_RENAMES):
        state = rename_prefixes(state, LEGACY_RENAMES)
        notes.append("renamed legacy keys (patch_embed->tpm, fuse_blocks->SIM, to_feat1/2, fuse2)")
    # A bare backbone checkpoint (ImageNet init) has no 'backbone.' prefix.
    if not any(k.startswith(("backbone.", "decode_head.", "head.")) for k in state):
        state = {f"backbone.{k}": v for k, v in state.items()}
        notes.append("added the 'backbone.' prefix (bare backbone checkpoint)")
    return state, notes


register_family("topformer", convert_topformer_state, classifier_keys=("decode_head.conv_seg.weight", "head.l.weight"))
