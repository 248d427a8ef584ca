"""SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers (Xie et al., NeurIPS 2021).

Mix Transformer encoder (MiT-B0..B5) + All-MLP decoder. Module tree and parameter names follow the official release
(NVlabs/SegFormer, an mmseg-0.x fork: ``mix_transformer.py`` + ``segformer_head.py``), so official checkpoints load
with ``strict=True`` into ``backbone.*`` / ``decode_head.*``. Hugging Face ``transformers`` and mmseg-1.x files are
renamed on the fly by :mod:`mobileseg.models.segformer_convert`.

Numerics that differ between implementations are constructor parameters:

* LayerNorm eps: the release uses 1e-6 for the block norms (``norm1``/``norm2``) and the stage norms, and torch's
  default 1e-5 for the patch-embedding norm and the attention's spatial-reduction norm. ``transformers`` builds
  every LayerNorm with 1e-5 (despite ``SegformerConfig.layer_norm_eps=1e-6``); mmseg-1.x uses 1e-6 everywhere.
  ``norm_eps`` (block + stage norms), ``patch_norm_eps`` and ``attn_norm_eps`` select them.
* ``decoder="mlp"`` (default) is the paper's All-MLP head of the release: per-stage Linear to C, concat
  ``[c4, c3, c2, c1]`` at 1/4, 1x1 conv-BN-ReLU, classifier. ``decoder="mmseg1"`` is mmseg-1.x's ``SegformerHead``,
  a different graph (per-stage 1x1 conv-BN-ReLU, concat ``[c1..c4]``), needed to run mmseg-1.x segmentor files.

Logits come out at 1/4 of the input (the paper's timed graph); mmseg upsamples them to the image afterwards.

MACs. The paper's FLOPs (Table 1a: B0 8.4 G, B1 15.9 G, B2 62.4 G at 512x512) are NOT mmcv's hook count alone: the
release's ``tools/get_flops.py`` adds, per block, the two attention products ``q @ k^T`` and ``attn @ v``
(``2 * N * N/R^2 * C`` MACs, its ``sra_flops``) that mmcv cannot see because they are functional ``matmul`` calls.
``mobileseg.flops.count_complexity`` reports them as ``matmul_macs``; ``macs + matmul_macs`` reproduces the paper
within 1% (B0 at 512x512: 7.40 G mmcv + 1.04 G attention = 8.44 G), while ``macs`` alone is 12% low for B0/B1
(B2: 6%, its wider decoder weighs more). The tests check the sum against the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import ModelSpec, register_model
from .layers import ConvModule, DropPath, resize

SEGFORMER_PAPER = "SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers (NeurIPS 2021)"

# mit_b0..mit_b5 (docs/models.md section 2): embed dims, depths; heads 1/2/5/8, mlp 4, sr 8/4/2/1 for all.
MIT_CFGS = {
    "b0": dict(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2), decoder_dim=256),
    "b1": dict(embed_dims=(64, 128, 320, 512), depths=(2, 2, 2, 2), decoder_dim=256),
    "b2": dict(embed_dims=(64, 128, 320, 512), depths=(3, 4, 6, 3), decoder_dim=768),
    "b3": dict(embed_dims=(64, 128, 320, 512), depths=(3, 4, 18, 3), decoder_dim=768),
    "b4": dict(embed_dims=(64, 128, 320, 512), depths=(3, 8, 27, 3), decoder_dim=768),
    "b5": dict(embed_dims=(64, 128, 320, 512), depths=(3, 6, 40, 3), decoder_dim=768),
}
NUM_HEADS = (1, 2, 5, 8)
MLP_RATIOS = (4, 4, 4, 4)
SR_RATIOS = (8, 4, 2, 1)


def tokens_to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, N, C) tokens -> (B, C, H, W) map with Python-int shapes."""
    b, c = int(x.shape[0]), int(x.shape[2])
    return x.permute(0, 2, 1).reshape(b, c, h, w)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map -> (B, H*W, C) tokens."""
    b, c, h, w = (int(s) for s in x.shape)
    return x.reshape(b, c, h * w).permute(0, 2, 1)


class OverlapPatchEmbed(nn.Module):
    """Overlapping patch merging: a strided conv (k7 s4 p3 for stage 1, k3 s2 p1 after) + LayerNorm on tokens."""

    def __init__(self, in_ch: int, dim: int, patch_size: int, stride: int, eps: float = 1e-5):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, patch_size, stride, patch_size // 2)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x):
        x = self.proj(x)
        h, w = int(x.shape[2]), int(x.shape[3])
        return self.norm(map_to_tokens(x)), h, w


class EfficientSelfAttention(nn.Module):
    """Multi-head attention whose keys/values come from a map reduced by a ``sr_ratio`` strided conv + LayerNorm.

    ``kv`` is one Linear of size 2C: the first C outputs are the keys (per head), the last C the values.
    """

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, eps: float = 1e-5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x, h: int, w: int):
        b, n, c = (int(s) for s in x.shape)
        nh, hd = self.num_heads, self.head_dim
        q = self.q(x).reshape(b, n, nh, hd).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            x = self.norm(map_to_tokens(self.sr(tokens_to_map(x, h, w))))
        m = int(x.shape[1])
        kv = self.kv(x)
        k = kv[:, :, :c].reshape(b, m, nh, hd).permute(0, 2, 3, 1)  # B, heads, hd, M
        v = kv[:, :, c:].reshape(b, m, nh, hd).permute(0, 2, 1, 3)  # B, heads, M, hd
        attn = (torch.matmul(q, k) * self.scale).softmax(dim=-1)
        out = torch.matmul(attn, v).permute(0, 2, 1, 3).reshape(b, n, c)
        return self.proj(out)


class DWConv(nn.Module):
    """3x3 depthwise conv on the token map (Mix-FFN's implicit positional encoding); child ``dwconv``."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x, h: int, w: int):
        return map_to_tokens(self.dwconv(tokens_to_map(x, h, w)))


class MixFFN(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, h: int, w: int):
        return self.fc2(self.act(self.dwconv(self.fc1(x), h, w)))


class MiTBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, sr_ratio, drop_path=0.0, norm_eps=1e-6, attn_norm_eps=1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = EfficientSelfAttention(dim, num_heads, sr_ratio, eps=attn_norm_eps)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio))

    def forward(self, x, h: int, w: int):
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class MixVisionTransformer(nn.Module):
    """MiT encoder (``backbone.*``): four stages of overlapped patch merging, MiT blocks and a LayerNorm.

    Returns the four maps at 1/4, 1/8, 1/16, 1/32 of the input.

    Args:
        embed_dims, depths: per-stage width and number of blocks (Table 6 of the paper / ``mit_b*``).
        num_heads, mlp_ratios, sr_ratios: per-stage attention heads, Mix-FFN expansion, K/V reduction ratio.
        drop_path_rate: stochastic depth (0.1 in the release; identity at inference).
        norm_eps, patch_norm_eps, attn_norm_eps: LayerNorm eps, see the module docstring.
    """

    def __init__(
        self,
        embed_dims,
        depths,
        num_heads=NUM_HEADS,
        mlp_ratios=MLP_RATIOS,
        sr_ratios=SR_RATIOS,
        in_ch: int = 3,
        drop_path_rate: float = 0.1,
        norm_eps: float = 1e-6,
        patch_norm_eps: float = 1e-5,
        attn_norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.embed_dims = tuple(embed_dims)
        total = sum(depths)
        dpr = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        cur = 0
        prev = in_ch
        for i in range(4):
            patch, stride = (7, 4) if i == 0 else (3, 2)
            self.add_module(
                f"patch_embed{i + 1}", OverlapPatchEmbed(prev, embed_dims[i], patch, stride, patch_norm_eps)
            )
            self.add_module(
                f"block{i + 1}",
                nn.ModuleList(
                    [
                        MiTBlock(
                            embed_dims[i],
                            num_heads[i],
                            mlp_ratios[i],
                            sr_ratios[i],
                            dpr[cur + j],
                            norm_eps,
                            attn_norm_eps,
                        )
                        for j in range(depths[i])
                    ]
                ),
            )
            self.add_module(f"norm{i + 1}", nn.LayerNorm(embed_dims[i], eps=norm_eps))
            cur += depths[i]
            prev = embed_dims[i]

    def forward(self, x):
        outs = []
        for i in range(1, 5):
            x, h, w = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"block{i}"):
                x = blk(x, h, w)
            x = tokens_to_map(getattr(self, f"norm{i}")(x), h, w)
            outs.append(x)
        return outs


class LinearProj(nn.Module):
    """The head's per-stage ``MLP``: flatten the map, one Linear (child ``proj``) to the decoder width."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)

    def forward(self, x):
        h, w = int(x.shape[2]), int(x.shape[3])
        return tokens_to_map(self.proj(map_to_tokens(x)), h, w)


class SegFormerHead(nn.Module):
    """All-MLP decoder: unify channels, upsample to 1/4, fuse, classify (``decode_head.*``).

    Args:
        in_dims: encoder widths at 1/4..1/32.
        dim: decoder width C (256 for B0/B1, 768 for B2..B5).
        num_classes: classifier outputs.
        decoder: ``"mlp"`` (release, Linear projections, concat c4..c1) or ``"mmseg1"`` (mmseg-1.x SegformerHead:
            1x1 conv-BN-ReLU projections, concat c1..c4); both end with ``linear_fuse`` (1x1 conv-BN-ReLU) and
            ``linear_pred`` (1x1 conv).
        dropout: dropout before the classifier (0.1; identity at inference).
    """

    def __init__(self, in_dims, dim: int, num_classes: int, decoder: str = "mlp", dropout: float = 0.1):
        super().__init__()
        if decoder not in ("mlp", "mmseg1"):
            raise ValueError(f"decoder must be 'mlp' or 'mmseg1', not {decoder!r}")
        self.decoder = decoder
        for i, c in enumerate(in_dims):
            proj = LinearProj(c, dim) if decoder == "mlp" else ConvModule(c, dim, 1, act=nn.ReLU)
            self.add_module(f"linear_c{i + 1}", proj)
        self.linear_fuse = ConvModule(dim * len(in_dims), dim, 1, act=nn.ReLU)
        self.dropout = nn.Dropout2d(dropout)
        self.linear_pred = nn.Conv2d(dim, num_classes, 1)

    def forward(self, feats):
        size = (int(feats[0].shape[2]), int(feats[0].shape[3]))
        outs = [resize(getattr(self, f"linear_c{i + 1}")(f), size) for i, f in enumerate(feats)]
        if self.decoder == "mlp":
            outs = outs[::-1]
        return self.linear_pred(self.dropout(self.linear_fuse(torch.cat(outs, dim=1))))


class SegFormer(nn.Module):
    """SegFormer for segmentation: ``backbone`` (MiT) + ``decode_head`` (All-MLP); logits at 1/4 of the input.

    ``forward(image)`` takes N x 3 x H x W float32 (RGB, ``(pixel - mean) / std`` on the 0..255 scale, ImageNet
    statistics) with H, W multiples of 32 and returns N x num_classes x H/4 x W/4 logits.

    Args:
        variant: ``"b0"`` .. ``"b5"``.
        num_classes: classifier outputs (150 for ADE20K).
        decoder: ``"mlp"`` (release) or ``"mmseg1"`` (see :class:`SegFormerHead`).
        drop_path_rate, norm_eps, patch_norm_eps, attn_norm_eps: see :class:`MixVisionTransformer`.
    """

    def __init__(
        self,
        variant: str = "b0",
        num_classes: int = 150,
        decoder: str = "mlp",
        drop_path_rate=0.1,
        norm_eps: float = 1e-6,
        patch_norm_eps: float = 1e-5,
        attn_norm_eps: float = 1e-5,
        decoder_dim: int | None = None,
    ):
        super().__init__()
        cfg = MIT_CFGS[variant]
        self.backbone = MixVisionTransformer(
            cfg["embed_dims"],
            cfg["depths"],
            drop_path_rate=drop_path_rate,
            norm_eps=norm_eps,
            patch_norm_eps=patch_norm_eps,
            attn_norm_eps=attn_norm_eps,
        )
        self.decode_head = SegFormerHead(cfg["embed_dims"], decoder_dim or cfg["decoder_dim"], num_classes, decoder)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone(image))


SEGFORMER_PARTS = (("backbone", "encoder (MiT)"), ("decode_head", "decoder (All-MLP)"))

# Table 1a (params encoder/decoder, ADE20K FLOPs at 512x512 (B5: 640x640), mIoU SS/MS) and Table 2 (total params).
_PUBLISHED = {
    "b0": dict(params_m=3.8, encoder_params_m=3.4, decoder_params_m=0.4, gflops=8.4, miou=37.4, miou_ms=38.0),
    "b1": dict(params_m=13.7, encoder_params_m=13.1, decoder_params_m=0.6, gflops=15.9, miou=42.2, miou_ms=43.1),
    "b2": dict(params_m=27.5, encoder_params_m=24.2, decoder_params_m=3.3, gflops=62.4, miou=46.5, miou_ms=47.5),
    "b3": dict(params_m=47.3, encoder_params_m=44.0, decoder_params_m=3.3, gflops=79.0, miou=49.4, miou_ms=50.0),
    "b4": dict(params_m=64.1, encoder_params_m=60.8, decoder_params_m=3.3, gflops=95.7, miou=50.3, miou_ms=51.1),
    "b5": dict(params_m=84.7, encoder_params_m=81.4, decoder_params_m=3.3, gflops=183.3, miou=51.0, miou_ms=51.8),
}


def _register(variant: str) -> None:
    res = (640, 640) if variant == "b5" else (512, 512)
    register_model(
        ModelSpec(
            name=f"segformer-{variant}",
            family="segformer",
            default_resolution=res,
            output_stride=4,
            size_multiple=32,
            min_size=64,
            paper=SEGFORMER_PAPER,
            flops_convention="mmcv+attention",
            table=f"Table 1a (ADE20K val, single scale, {res[0]}x{res[1]}) and Table 2",
            published=_PUBLISHED[variant],
            parts=SEGFORMER_PARTS,
            notes="logits at 1/4; LayerNorm eps as in the NVlabs release (norm_eps=1e-5 matches transformers)",
        )
    )(lambda num_classes=150, **kw: SegFormer(variant, num_classes, **kw))


for _v in MIT_CFGS:
    _register(_v)

# Importing the converters registers the "segformer" checkpoint family.
from . import segformer_convert  # noqa: E402,F401
