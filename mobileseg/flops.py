"""Parameter and multiply-accumulate counting, the way the papers count "FLOPs".

The TopFormer, SegFormer and mmseg baselines report mmcv's ``get_model_complexity_info`` numbers: module hooks that
count, per forward pass, MACs of convolutions and linear layers (``k*k*Cin/groups*Cout*Hout*Wout`` plus one per
output for a bias) and one op per element for norms (two when affine), activations, pooling and upsample modules.
Functional ops (``torch.matmul`` in attention, ``F.interpolate``) are invisible to it. We reproduce that count as
``macs`` and report attention matmuls separately (``matmul_macs``, measured with torch's ``FlopCounterMode``) so a
user sees what the paper convention leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

_ACTS = (nn.ReLU, nn.ReLU6, nn.PReLU, nn.ELU, nn.LeakyReLU)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)
_POOLS = (nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _conv_macs(m: nn.Conv2d, out: torch.Tensor) -> int:
    per_pos = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups) * m.out_channels
    positions = out.numel() // out.shape[1]
    macs = per_pos * positions
    if m.bias is not None:
        macs += out.numel()
    return macs


def _module_macs(m: nn.Module, inp, out) -> int:
    x = inp[0] if inp else None
    if isinstance(m, nn.Conv2d):
        return _conv_macs(m, out)
    if isinstance(m, nn.ConvTranspose2d):
        per_pos = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups) * m.out_channels
        return per_pos * (x.numel() // x.shape[1]) + (out.numel() if m.bias is not None else 0)
    if isinstance(m, nn.Linear):
        return x.numel() * m.out_features + (out.numel() if m.bias is not None else 0)
    if isinstance(m, _NORMS):
        affine = getattr(m, "affine", getattr(m, "elementwise_affine", False))
        return x.numel() * (2 if affine else 1)
    if isinstance(m, _ACTS):
        return out.numel()
    if isinstance(m, _POOLS):
        return x.numel()
    if isinstance(m, nn.Upsample):
        return out.numel()
    return 0


@dataclass
class Complexity:
    params: int
    macs: int
    matmul_macs: int
    input_shape: tuple
    output_shape: tuple
    parts: dict = field(default_factory=dict)  # label -> {"params": int, "macs": int}

    def to_dict(self) -> dict:
        return {
            "params": self.params,
            "macs": self.macs,
            "matmul_macs": self.matmul_macs,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "parts": self.parts,
        }


def _part_of(name: str, parts) -> str:
    for prefix, label in parts:
        if name == prefix or name.startswith(prefix + "."):
            return label
    return "other"


@torch.no_grad()
def count_complexity(model: nn.Module, height: int, width: int, parts=None) -> Complexity:
    """Count parameters and mmcv-style MACs for one N=1 forward pass at ``height`` x ``width``."""
    parts = parts if parts is not None else getattr(getattr(model, "spec", None), "parts", ())
    per_part: dict[str, dict] = {}
    hooks = []
    leaf_macs: dict[str, int] = {}

    def hook(name):
        def fn(m, inp, out):
            leaf_macs[name] = leaf_macs.get(name, 0) + _module_macs(m, inp, out)

        return fn

    for name, m in model.named_modules():
        if len(list(m.children())) == 0:
            hooks.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, height, width)
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as fc:
            out = model(x)
        counts = fc.get_flop_counts().get("Global", {})
        # Batched products (attention) only: Linear layers lower to mm/addmm and are counted by the module hooks.
        matmul_macs = int(sum(v for k, v in counts.items() if "bmm" in str(k) or "scaled_dot_product" in str(k)) // 2)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    total = 0
    for name, macs in leaf_macs.items():
        label = _part_of(name, parts)
        per_part.setdefault(label, {"params": 0, "macs": 0})["macs"] += macs
        total += macs
    for name, p in model.named_parameters():
        label = _part_of(name, parts)
        per_part.setdefault(label, {"params": 0, "macs": 0})["params"] += p.numel()
    params = sum(p.numel() for p in model.parameters())
    out_shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
    return Complexity(params, total, matmul_macs, tuple(x.shape), out_shape, per_part)
