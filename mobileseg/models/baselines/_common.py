"""Pieces shared by the mobile baselines of TopFormer's Table 1 (mmseg module layout).

Every baseline follows mmseg's ``EncoderDecoder`` layout: ``backbone.*`` + ``decode_head.*`` with the classifier at
``decode_head.conv_seg``. mmseg training checkpoints also hold an ``auxiliary_head.*`` (a training-only FCN head on
a middle feature): the ``mmseg-baseline`` checkpoint converter drops those keys and says how many it dropped.
"""

from __future__ import annotations

import torch
from torch import nn

from ...checkpoint import register_family
from ...registry import ModelSpec
from ..layers import ConvModule, pool_to

FAMILY = "mmseg-baseline"
TOPFORMER_PAPER = "TopFormer: Token Pyramid Transformer for Mobile Semantic Segmentation (CVPR 2022)"
TABLE = "Table 1 (ADE20K val, 512x512, Snapdragon 865 1 thread)"
PARTS = (("backbone", "backbone"), ("decode_head", "head"))


def baseline_spec(
    name: str, original: str, published: dict, output_stride: int, notes: str = "", size_multiple: int = 32
) -> ModelSpec:
    """The ModelSpec of one Table 1 baseline (TopFormer's table, trained with mmseg on ADE20K)."""
    return ModelSpec(
        name=name,
        family=FAMILY,
        default_resolution=(512, 512),
        output_stride=output_stride,
        size_multiple=size_multiple,
        min_size=64,
        paper=f"{TOPFORMER_PAPER}; {original}",
        table=TABLE,
        published=published,
        parts=PARTS,
        notes=notes,
    )


class DepthwiseSeparableConvModule(nn.Module):
    """mmcv's ``DepthwiseSeparableConvModule``: ``depthwise_conv`` (dw conv-BN-act) + ``pointwise_conv`` (1x1)."""

    def __init__(self, in_ch, out_ch, kernel_size=3, padding=1, dilation=1, act=nn.ReLU, bn_eps=1e-5):
        super().__init__()
        self.depthwise_conv = ConvModule(
            in_ch, in_ch, kernel_size, padding=padding, dilation=dilation, groups=in_ch, act=act, bn_eps=bn_eps
        )
        self.pointwise_conv = ConvModule(in_ch, out_ch, 1, act=act, bn_eps=bn_eps)

    def forward(self, x):
        return self.pointwise_conv(self.depthwise_conv(x))


def _bin_matrix(size: int, bins: int) -> torch.Tensor:
    """(bins x size) averaging matrix with the bin edges of ``adaptive_avg_pool2d``."""
    m = torch.zeros(bins, size)
    for i in range(bins):
        start, end = (i * size) // bins, -(-((i + 1) * size) // bins)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool(x: torch.Tensor, out_hw) -> torch.Tensor:
    """``adaptive_avg_pool2d`` in a form every exporter takes.

    A fixed-kernel average pool when the input size is a multiple of the output size (:func:`pool_to`); otherwise
    (a 64x64 map pooled to 3x3 or 6x6 in PSPNet, which torch.onnx refuses to export) two matrix products with
    constant bin-averaging matrices built from the static shapes: the same bins and numbers as torch's op.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    oh, ow = int(out_hw[0]), int(out_hw[1])
    if h % oh == 0 and w % ow == 0:
        return pool_to(x, (oh, ow))
    ph = _bin_matrix(h, oh).to(x.dtype)
    pw = _bin_matrix(w, ow).to(x.dtype).t()
    return torch.matmul(ph, torch.matmul(x, pw))


class AdaptiveAvgPool(nn.Module):
    """Parameter-free module form of :func:`adaptive_avg_pool` (keeps mmseg's ``Sequential(pool, conv)`` indices)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def forward(self, x):
        return adaptive_avg_pool(x, self.output_size)


def convert_mmseg_state(state: dict, model_name: str):
    """mmseg checkpoint -> our layout: identical names, minus the training-only ``auxiliary_head.*`` keys."""
    notes = []
    aux = [k for k in state if k.startswith("auxiliary_head.")]
    if aux:
        state = {k: v for k, v in state.items() if not k.startswith("auxiliary_head.")}
        notes.append(f"dropped {len(aux)} auxiliary_head.* keys (a training-only head, not part of inference)")
    if not any(k.startswith(("backbone.", "decode_head.")) for k in state):
        state = {f"backbone.{k}": v for k, v in state.items()}
        notes.append("added the 'backbone.' prefix (bare backbone checkpoint)")
    return state, notes


register_family(FAMILY, convert_mmseg_state, classifier_keys=("decode_head.conv_seg.weight",))
