"""XFormer: Lightweight Vision Transformer with Cross Feature Attention (Zhao et al., arXiv 2207.07268, Samsung).

No implementation has been published (docs/models.md section 5); this one is built from the paper alone:
section 3.1 (cross feature attention, eq. 2-5), section 3.2 (MV3 and XF blocks, eq. 6-8)
and Table 1 (the layer specification). What the paper leaves open, and what we chose:

**Cross feature attention (XFA).** Q, K, V are Linear projections of the D-dim tokens to the QKV dim d (96).
Eq. 2 L2-normalises Q and K along the feature dimension (per token). Eq. 4: ``K_f = (W_f K^T)^T`` with
``W_f`` in R^{1 x d} is a Linear d -> 1 (no bias): one query-feature score per token (N x 1). Eq. 3:
``K_c = W_c K`` with ``W_c`` in R^{1 x N}: one query-context vector (1 x d). Eq. 5:
``XFA = V * lambda * (Q^T K_f) K_c``, a d x d matrix applied to V, learnable temperature ``lambda``, no softmax;
then the usual output projection d -> D. Evaluated in that order, the cost is O(N d^2): linear in the tokens.

*Resolution-independent W_c.* A learned 1 x N matrix ties the weights to one token count (one input size). We keep
eq. 3 but read W_c as a kernel shared by all token positions: tokens are a flattened grid whose length changes with
the input, so the only 1 x N kernel that means the same thing at every size and is invariant to where a token sits
is a constant one. We take ``W_c = (1/N) 1^T`` (the mean over tokens), whose free scale is absorbed by the learnable
temperature ``lambda``; dividing by N keeps the score magnitude independent of the resolution, so a model trained at
256 keeps its calibration at 1024. This keeps eq. 3-5 exactly, adds no parameters (the paper's W_c parameters
would be 4 x N per block, which its 5.5 M total cannot hold at any useful N anyway) and keeps the linear cost.
Note that, as written in eq. 5, ``Q^T K_f K_c`` is the outer product of two d-vectors (rank one); we implement the
equation as printed rather than guess a different one.

**MV3 block** (eq. 6): 1x1 expansion (ratio 4, BN, SiLU), 3x3 depthwise (BN, SiLU), squeeze-excitation
(global mean, 1x1 to a quarter of the block's *input* width as in EfficientNet, SiLU, 1x1, hard-sigmoid), 1x1
projection (BN); residual when stride 1 and the widths match. MobileNetV3's squeeze (a quarter of the *expanded*
width) would give ``xformer-cls`` 5.69 M parameters, 3.5% above the paper's 5.5 M; the input-width squeeze gives
5.46 M. The paper writes "SiLU in all other layers"; the SE gate keeps MobileNetV3's hard-sigmoid (a gate
must be bounded) written with ReLU6 for export.

**XF stage** (the last three stages: "one MV3 block and a few XF blocks"). Table 1 gives out channels 96/128/160 but
embedding dims 144/192/240, so the XF blocks run in a wider token space: the same wrapper as MobileViT (whose
widths these are): 3x3 conv-BN-SiLU, 1x1 conv to D, unfold into 2x2 patches (tokens at the same position of each
2x2 patch form one sequence, four sequences), the XF blocks (eq. 7-8: pre-LN XFA and pre-LN MLP with GELU, ratio
2/2/3), a final LayerNorm, fold, 1x1 conv-BN-SiLU back to C, concatenation with the stage input and a 3x3
conv-BN-SiLU fusion.

**Input size.** Table 1 is drawn for 224x224 (7x7 final map), but 2x2 patches need even maps at 1/8, 1/16 and
1/32, i.e. inputs that are multiples of 64 (as MobileViT, trained at 256): the classifier's default is 256x256 and
every input must be a multiple of 64. Unfold/fold use only 4-D reshapes and permutes (ncnn handles at most 4-D).

``xformer-segformer`` (section 4.3, Table 5): the backbone's 1/4, 1/8, 1/16 maps (64/96/128 channels) and the
1/32 map after Stem_out (640 channels; only pooling and the classifier are dropped) feed the SegFormer All-MLP
decoder of :mod:`mobileseg.models.segformer` with C=256 (the MiT-B0/B1 width); 19 Cityscapes classes, logits at
1/4. The paper gives neither C nor which maps feed the decoder: this reading gives 5.32 M parameters (Table 5:
5.3 M); dropping Stem_out too would give 5.10 M.

``attention="mhsa"`` swaps XFA for standard multi-head self-attention (softmax(QK^T/sqrt(d_h))V, 3 heads of 32 over
the same QKV dim 96) for the Table 2 comparison (:mod:`mobileseg.perf.xfa_attention` on a CPU,
:mod:`mobileseg.perf.table2` on a GPU); its ``fused_attn`` switch picks explicit or fused softmax attention.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checkpoint import register_family
from ..registry import ModelSpec, register_model
from .layers import ConvModule, HSigmoid
from .segformer import SegFormerHead

XFORMER_PAPER = "Lightweight Vision Transformer with Cross Feature Attention (XFormer, arXiv 2207.07268)"

# Table 1 + section 3.2: (MV3 out channels, stride, repeats) for stages 1-2; XF stages: (C, D, blocks, mlp ratio).
STEM = 16
MV3_STAGES = [(32, 1, 1), (64, 2, 1), (64, 1, 2)]
XF_STAGES = [(96, 144, 2, 2), (128, 192, 3, 2), (160, 240, 4, 3)]
QKV_DIM = 96
STEM_OUT = 640


def conv_bn_act(in_ch, out_ch, k=1, stride=1, groups=1, act=nn.SiLU):
    return ConvModule(in_ch, out_ch, k, stride, k // 2, groups=groups, act=act)


class SqueezeExcite(nn.Module):
    def __init__(self, ch: int, squeeze: int):
        super().__init__()
        mid = squeeze
        self.reduce = nn.Conv2d(ch, mid, 1)
        self.act = nn.SiLU()
        self.expand = nn.Conv2d(mid, ch, 1)
        self.gate = HSigmoid()

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class MV3Block(nn.Module):
    """MobileNetV3 inverted residual with SE (eq. 6), expansion 4, SiLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, expansion: int = 4):
        super().__init__()
        hidden = in_ch * expansion
        self.use_res = stride == 1 and in_ch == out_ch
        self.expand = conv_bn_act(in_ch, hidden, 1)
        self.dw = conv_bn_act(hidden, hidden, 3, stride, groups=hidden)
        self.se = SqueezeExcite(hidden, max(8, in_ch // 4))
        self.project = conv_bn_act(hidden, out_ch, 1, act=None)

    def forward(self, x):
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.use_res else y


class CrossFeatureAttention(nn.Module):
    """XFA (eq. 2-5) on (B, N, D) tokens; see the module docstring for the reading of W_c."""

    def __init__(self, dim: int, qkv_dim: int = QKV_DIM, eps: float = 1e-6):
        super().__init__()
        self.q = nn.Linear(dim, qkv_dim)
        self.k = nn.Linear(dim, qkv_dim)
        self.v = nn.Linear(dim, qkv_dim)
        self.w_f = nn.Linear(qkv_dim, 1, bias=False)  # eq. 4, W_f in R^{1 x d}
        self.temperature = nn.Parameter(torch.ones(1))  # lambda of eq. 5
        self.proj = nn.Linear(qkv_dim, dim)
        self.eps = eps

    def _l2norm(self, x):
        # x / ||x||_2 along the feature dim, written with plain ops (pow, sum, sqrt, div) for every exporter.
        return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True) + self.eps)

    def forward(self, x):
        n = int(x.shape[1])
        q = self._l2norm(self.q(x))  # B, N, d        (eq. 2)
        k = self._l2norm(self.k(x))  # B, N, d        (eq. 2)
        v = self.v(x)  # B, N, d
        k_f = self.w_f(k)  # B, N, 1        (eq. 4)
        k_c = k.sum(dim=1, keepdim=True) * (1.0 / n)  # B, 1, d        (eq. 3, W_c = 1^T / N)
        qk_f = torch.matmul(q.transpose(1, 2), k_f)  # B, d, 1
        attn = torch.matmul(qk_f, k_c) * self.temperature  # B, d, d        (eq. 5, no softmax)
        return self.proj(torch.matmul(v, attn))  # B, N, D        O(N d^2)


class MultiHeadSelfAttention(nn.Module):
    """Standard softmax self-attention over the same QKV dim (the baseline of Table 2).

    ``fused_attn`` picks the kernel, not the function: False (default) writes softmax(QK^T/sqrt(d_h))V out as
    matmul, softmax, matmul (the explicit N x N matrix the paper's code materialised); True calls
    ``torch.nn.functional.scaled_dot_product_attention``, which runs PyTorch's fused flash / memory-efficient
    kernels where they apply. The attribute has timm's name, so :func:`set_fused_attn` switches both; no parameter
    depends on it (same checkpoint keys).
    """

    def __init__(self, dim: int, qkv_dim: int = QKV_DIM, head_dim: int = 32, fused_attn: bool = False):
        super().__init__()
        self.heads = qkv_dim // head_dim
        self.head_dim = head_dim
        self.fused_attn = bool(fused_attn)
        self.q = nn.Linear(dim, qkv_dim)
        self.k = nn.Linear(dim, qkv_dim)
        self.v = nn.Linear(dim, qkv_dim)
        self.proj = nn.Linear(qkv_dim, dim)

    def forward(self, x):
        b, n = int(x.shape[0]), int(x.shape[1])
        h, hd = self.heads, self.head_dim
        q = self.q(x).reshape(b, n, h, hd).permute(0, 2, 1, 3)
        v = self.v(x).reshape(b, n, h, hd).permute(0, 2, 1, 3)
        if self.fused_attn:
            k = self.k(x).reshape(b, n, h, hd).permute(0, 2, 1, 3)
            out = nn.functional.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(hd), as below
        else:
            k = self.k(x).reshape(b, n, h, hd).permute(0, 2, 3, 1)
            attn = (torch.matmul(q, k) * hd**-0.5).softmax(dim=-1)  # B, h, N, N: quadratic
            out = torch.matmul(attn, v)
        return self.proj(out.permute(0, 2, 1, 3).reshape(b, n, h * hd))


def set_fused_attn(model: nn.Module, fused: bool) -> int:
    """Switch every softmax-attention module of ``model`` (ours and timm's: both carry ``fused_attn``) to the fused
    kernel or to the explicit matmul-softmax-matmul; returns how many modules were switched."""
    n = 0
    for m in model.modules():
        if hasattr(m, "fused_attn") and isinstance(m.fused_attn, bool):
            m.fused_attn = bool(fused)
            n += 1
    return n


class XFBlock(nn.Module):
    """Eq. 7-8: x + XFA(LN(x)), then + MLP(LN(x)) with GELU."""

    def __init__(self, dim: int, mlp_ratio: float, attention: str = "xfa", qkv_dim: int = QKV_DIM):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CrossFeatureAttention(dim, qkv_dim) if attention == "xfa" else MultiHeadSelfAttention(dim, qkv_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def unfold_patches(x: torch.Tensor, p: int = 2) -> torch.Tensor:
    """(B, D, H, W) -> (B*p*p, H*W/p^2, D): the tokens at one position of every p x p patch form one sequence."""
    b, d, h, w = (int(s) for s in x.shape)
    hp, wp = h // p, w // p
    x = x.reshape(b * d * hp, p, wp, p).permute(0, 1, 3, 2)  # (B D hp), pi, pj, wp
    x = x.reshape(b * d, hp, p * p, wp).permute(0, 2, 1, 3)  # (B D), pi pj, hp, wp
    x = x.reshape(b, d, p * p, hp * wp).permute(0, 2, 3, 1)  # B, p*p, N, D
    return x.reshape(b * p * p, hp * wp, d)


def fold_patches(x: torch.Tensor, b: int, h: int, w: int, p: int = 2) -> torch.Tensor:
    """Inverse of :func:`unfold_patches`: (B*p*p, N, D) -> (B, D, H, W)."""
    d = int(x.shape[2])
    hp, wp = h // p, w // p
    x = x.reshape(b, p * p, hp * wp, d).permute(0, 3, 1, 2)  # B, D, p*p, N
    x = x.reshape(b * d, p * p, hp, wp).permute(0, 2, 1, 3)  # (B D), hp, pi pj, wp
    x = x.reshape(b * d * hp, p, p, wp).permute(0, 1, 3, 2)  # (B D hp), pi, wp, pj
    return x.reshape(b, d, h, w)


class XFStage(nn.Module):
    """MobileViT-style wrapper around the XF blocks: local conv, 1x1 to D, 2x2 patches, XF blocks, back to C, fuse."""

    def __init__(self, ch: int, dim: int, depth: int, mlp_ratio: float, attention: str = "xfa", patch: int = 2):
        super().__init__()
        self.patch = patch
        self.local = conv_bn_act(ch, ch, 3)
        self.to_tokens = nn.Conv2d(ch, dim, 1, bias=False)
        self.blocks = nn.ModuleList([XFBlock(dim, mlp_ratio, attention) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.from_tokens = conv_bn_act(dim, ch, 1)
        self.fuse = conv_bn_act(2 * ch, ch, 3)

    def forward(self, x):
        b, _, h, w = (int(s) for s in x.shape)
        t = unfold_patches(self.to_tokens(self.local(x)), self.patch)
        for blk in self.blocks:
            t = blk(t)
        y = self.from_tokens(fold_patches(self.norm(t), b, h, w, self.patch))
        return self.fuse(torch.cat([x, y], dim=1))


class XFormerBackbone(nn.Module):
    """Stem_in + five stages (Table 1); returns the stage 2..5 maps (1/4, 1/8, 1/16, 1/32: 64/96/128/160 ch).

    Args:
        attention: ``"xfa"`` (the paper) or ``"mhsa"`` (softmax baseline of Table 2).
    """

    out_channels = (64, 96, 128, 160)

    def __init__(self, attention: str = "xfa"):
        super().__init__()
        if attention not in ("xfa", "mhsa"):
            raise ValueError(f"attention must be 'xfa' or 'mhsa', not {attention!r}")
        self.stem = conv_bn_act(3, STEM, 3, 2)
        self.stage1 = nn.Sequential(MV3Block(STEM, 32, 1))
        self.stage2 = nn.Sequential(MV3Block(32, 64, 2), MV3Block(64, 64, 1), MV3Block(64, 64, 1))
        prev = 64
        for i, (ch, dim, depth, ratio) in enumerate(XF_STAGES):
            self.add_module(
                f"stage{i + 3}", nn.Sequential(MV3Block(prev, ch, 2), XFStage(ch, dim, depth, ratio, attention))
            )
            prev = ch

    def forward(self, x):
        x = self.stage1(self.stem(x))
        outs = []
        for i in range(2, 6):
            x = getattr(self, f"stage{i}")(x)
            outs.append(x)
        return outs


class XFormerCls(nn.Module):
    """XFormer ImageNet classifier: backbone, Stem_out (1x1 conv 160->640, BN, SiLU), global mean, Linear."""

    def __init__(self, num_classes: int = 1000, attention: str = "xfa", dropout: float = 0.1):
        super().__init__()
        self.backbone = XFormerBackbone(attention)
        self.stem_out = conv_bn_act(160, STEM_OUT, 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(STEM_OUT, num_classes)

    def forward(self, image):
        x = self.stem_out(self.backbone(image)[-1])
        return self.head(self.dropout(x.mean(dim=(2, 3))))


class XFormerSegFormer(nn.Module):
    """XFormer backbone + SegFormer All-MLP decoder (section 4.3); logits at 1/4 of the input.

    Args:
        num_classes: 19 for Cityscapes.
        decoder_dim: All-MLP width C (256, as SegFormer's real-time B0/B1 heads).
        attention: ``"xfa"`` or ``"mhsa"``.
    """

    def __init__(self, num_classes: int = 19, decoder_dim: int = 256, attention: str = "xfa"):
        super().__init__()
        self.backbone = XFormerBackbone(attention)
        self.stem_out = conv_bn_act(160, STEM_OUT, 1)
        self.decode_head = SegFormerHead((64, 96, 128, STEM_OUT), decoder_dim, num_classes)

    def forward(self, image):
        c1, c2, c3, c4 = self.backbone(image)
        return self.decode_head([c1, c2, c3, self.stem_out(c4)])


_PARTS = (
    ("backbone.stem", "stem"),
    ("backbone.stage1", "MV3 stages"),
    ("backbone.stage2", "MV3 stages"),
    ("backbone.stage3", "XF stages"),
    ("backbone.stage4", "XF stages"),
    ("backbone.stage5", "XF stages"),
    ("stem_out", "stem_out"),
    ("head", "classifier"),
    ("decode_head", "decoder (All-MLP)"),
)

_RES_NOTE = "2x2 patches at 1/8, 1/16 and 1/32 of the input"

register_model(
    ModelSpec(
        name="xformer-cls",
        family="xformer",
        task="classification",
        default_resolution=(256, 256),
        output_stride=32,
        size_multiple=64,
        min_size=64,
        num_classes=1000,
        dataset="imagenet",
        paper=XFORMER_PAPER,
        resolution_note=_RES_NOTE,
        table="Table 1 (spec, drawn at 224x224) and Table 3 (ImageNet-1K)",
        published=dict(params_m=5.5, gflops=1.7, top1=78.5),
        parts=_PARTS,
        notes="2x2 patches need inputs that are multiples of 64: default 256 (Table 1 draws 224, whose 7x7 map cannot "
        "be patched); W_c read as the token mean (resolution independent)",
    )
)(lambda num_classes=1000, **kw: XFormerCls(num_classes, **kw))

register_model(
    ModelSpec(
        name="xformer-segformer",
        family="xformer",
        default_resolution=(1024, 1024),
        output_stride=4,
        size_multiple=64,
        min_size=64,
        num_classes=19,
        dataset="cityscapes",
        paper=XFORMER_PAPER,
        resolution_note=_RES_NOTE,
        table="Table 5 (Cityscapes val, sliding 1024x1024 windows; FPS at 2048x1024 on a Titan RTX)",
        published=dict(params_m=5.3, gflops=48.7, miou=78.5, fps_gpu=15.3),
        parts=_PARTS,
        notes="SegFormer All-MLP decoder, C=256; default 1024x1024 (the training crop and sliding-window size), where our "
        "count (46.4 G) meets Table 5's 48.7 GFLOPs; the paper's FPS is at 2048x1024",
    )
)(lambda num_classes=19, **kw: XFormerSegFormer(num_classes, **kw))

register_family("xformer", None, classifier_keys=("decode_head.linear_pred.weight", "head.weight"))
