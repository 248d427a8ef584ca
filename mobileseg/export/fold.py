"""BatchNorm folding: an explicit step on the PyTorch model before any export format.

Which BatchNorm follows which layer is found from the data flow, not from module names: one forward pass with hooks
records, for every BatchNorm, whether its input is the very tensor a Conv/Linear returned (``conv -> bn``), and for
every Conv/Linear whether its input is the very tensor a BatchNorm returned (``bn -> linear``, e.g. a BN+Linear
classifier head). That covers mmcv-style ``ConvModule`` (children conv/bn), TopFormer's ``Conv2d_BN`` Sequential
(children c/bn), depthwise/grouped convs, the 1x1 convs inside attention, plain ``nn.Sequential(conv, bn, act)`` and
Linear+BN, whatever the children are called. A BatchNorm that follows nothing foldable (e.g. after an addition) is
replaced by an equivalent per-channel affine module, so no BatchNorm is left in any exported graph.

The folded model is then checked against the unfolded one in float64 (relative L2 <= 1e-6).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import MobilesegError

FOLD_REL_L2_LIMIT = 1e-6
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class FoldError(MobilesegError):
    """BatchNorm folding changed the model's output or left a BatchNorm behind (a bug to report with the model)."""


class ChannelAffine(nn.Module):
    """``x * scale + shift`` per channel (axis 1): an inference-time BatchNorm that follows nothing foldable."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        return x * self.scale.view(shape) + self.shift.view(shape)


def _bn_scale_shift(bn) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) of an eval-mode BatchNorm, in float64."""
    if bn.running_mean is None or bn.running_var is None:
        raise FoldError(
            "cannot fold a BatchNorm without running statistics (track_running_stats=False): "
            "it normalises with batch statistics even in eval mode; give it running stats"
        )
    var = bn.running_var.double()
    mean = bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def _set_bias(layer, bias64: torch.Tensor) -> None:
    w = layer.weight
    if layer.bias is None:
        layer.bias = nn.Parameter(bias64.to(w.dtype), requires_grad=w.requires_grad)
    else:
        layer.bias.data.copy_(bias64.to(w.dtype))


@torch.no_grad()
def _fold_after(layer, bn) -> None:
    """Fold ``bn(layer(x))`` into ``layer`` (Conv: output channels on dim 0; Linear: rows)."""
    scale, shift = _bn_scale_shift(bn)
    w = layer.weight.double()
    layer.weight.data.copy_((w * scale.view([-1] + [1] * (w.dim() - 1))).to(layer.weight.dtype))
    b = layer.bias.double() if layer.bias is not None else torch.zeros_like(scale)
    _set_bias(layer, b * scale + shift)


@torch.no_grad()
def _fold_before(bn, layer) -> None:
    """Fold ``layer(bn(x))`` into ``layer``: Linear, or an ungrouped, unpadded Conv (padding would see the shift)."""
    scale, shift = _bn_scale_shift(bn)
    w = layer.weight.double()
    view = [1, -1] + [1] * (w.dim() - 2)
    b = layer.bias.double() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    extra = (w * shift.view(view)).flatten(1).sum(1)
    layer.weight.data.copy_((w * scale.view(view)).to(layer.weight.dtype))
    _set_bias(layer, b + extra)


def _can_fold_before(layer) -> bool:
    if isinstance(layer, nn.Linear):
        return True
    return (
        isinstance(layer, _CONVS)
        and layer.groups == 1
        and all(p == 0 for p in _tuple(layer.padding))
        and layer.padding_mode == "zeros"
    )


def _tuple(v):
    return v if isinstance(v, (tuple, list)) else (v,)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _trace_pairs(model: nn.Module, example: torch.Tensor):
    """One forward pass: ``[(layer_name, bn_name)]`` for conv->bn and ``[(bn_name, layer_name)]`` for bn->linear."""
    names = {m: n for n, m in model.named_modules()}
    produced: dict[int, str] = {}  # id(output tensor) -> module name (tensors kept alive in `keep`)
    keep = []  # tensors kept alive for the whole pass
    calls: dict[str, int] = {}
    inputs_of: dict[str, int] = {}
    outputs_of: dict[str, int] = {}
    consumers: dict[int, int] = {}
    handles = []

    def pre(mod, args):
        n = names[mod]
        calls[n] = calls.get(n, 0) + 1
        if args and isinstance(args[0], torch.Tensor):
            keep.append(args[0])  # alive until the end of the pass, so no id is ever reused
            inputs_of[n] = id(args[0])
            consumers[id(args[0])] = consumers.get(id(args[0]), 0) + 1

    def post(mod, args, out):
        if isinstance(out, torch.Tensor):
            keep.append(out)
            produced[id(out)] = names[mod]
            outputs_of[names[mod]] = id(out)

    for m in model.modules():
        if isinstance(m, _CONVS + _BNS + (nn.Linear,)):
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    mods = dict(model.named_modules())
    after, before = [], []
    for n, m in mods.items():
        if not isinstance(m, _BNS) or calls.get(n) != 1 or n not in inputs_of:
            continue
        src = produced.get(inputs_of[n])
        # conv -> bn: the conv ran once and nothing else reads its output
        if (
            src
            and isinstance(mods[src], _CONVS + (nn.Linear,))
            and calls.get(src) == 1
            and consumers.get(inputs_of[n]) == 1
        ):
            after.append((src, n))
    folded_bns = {b for _, b in after}
    for n, m in mods.items():
        if not isinstance(m, _CONVS + (nn.Linear,)) or calls.get(n) != 1 or n not in inputs_of:
            continue
        src = produced.get(inputs_of[n])
        if (
            src
            and src not in folded_bns
            and isinstance(mods[src], _BNS)
            and calls.get(src) == 1
            and consumers.get(inputs_of[n]) == 1
            and _can_fold_before(m)
        ):
            before.append((src, n))
            folded_bns.add(src)
    keep.clear()
    return after, before


def count_batchnorm(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def example_input(model: nn.Module, resolution=None) -> torch.Tensor:
    """A seeded N=1 input at ``resolution`` (default: the smallest valid square size of ``model.spec``)."""
    if resolution is None:
        spec = getattr(model, "spec", None)
        m = getattr(spec, "size_multiple", 32) or 32
        side = max(getattr(spec, "min_size", 64) or 64, 64)
        side = -(-side // m) * m
        resolution = (side, side)
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 3, int(resolution[0]), int(resolution[1]), generator=g)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(torch.linalg.vector_norm(a - b) / (torch.linalg.vector_norm(b) or 1.0))


def fold_batchnorm(
    model: nn.Module, example: torch.Tensor | None = None, verify: bool = True, inplace: bool = False
) -> nn.Module:
    """Return ``model`` with every BatchNorm folded into its neighbouring Conv/Linear (eval mode).

    Args:
        model: an eval-mode model (a copy is folded unless ``inplace``).
        example: input used to trace the data flow and to verify (default: :func:`example_input`).
        verify: check that no BatchNorm remains and that folded == unfolded in float64 (relative L2 <= 1e-6);
            raise :class:`FoldError` otherwise.
        inplace: fold ``model`` itself.

    The returned model carries ``fold_report``: counts of folded pairs, BNs turned into per-channel affines, and
    the verification figure.
    """
    original = model
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    if example is None:
        example = example_input(model)
    reference = copy.deepcopy(original).double().eval() if verify else None
    n_bn = count_batchnorm(model)
    after, before = _trace_pairs(model, example)
    mods = dict(model.named_modules())
    for layer, bn in after:
        _fold_after(mods[layer], mods[bn])
        _replace(model, bn, nn.Identity())
    for bn, layer in before:
        _fold_before(mods[bn], mods[layer])
        _replace(model, bn, nn.Identity())
    affine = []
    for n, m in list(model.named_modules()):
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            scale, shift = _bn_scale_shift(m)
            dtype = m.running_mean.dtype
            _replace(model, n, ChannelAffine(scale.to(dtype), shift.to(dtype)))
            affine.append(n)
    report = {
        "batchnorm_before": n_bn,
        "folded_into_previous": len(after),
        "folded_into_next": len(before),
        "to_affine": affine,
        "batchnorm_after": count_batchnorm(model),
    }
    if verify:
        if report["batchnorm_after"]:
            raise FoldError(f"{report['batchnorm_after']} BatchNorm modules remain after folding")
        with torch.no_grad():
            ref = reference(example.double())
            out = copy.deepcopy(model).double()(example.double())
        err = rel_l2(out, ref)
        report["verify_rel_l2"] = err
        report["verify_limit"] = FOLD_REL_L2_LIMIT
        if not err <= FOLD_REL_L2_LIMIT:
            name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
            raise FoldError(
                f"BatchNorm folding changed the output of {name} (relative L2 {err:.2e} > "
                f"{FOLD_REL_L2_LIMIT:.0e}): report this with the model name"
            )
    model.fold_report = report
    return model
