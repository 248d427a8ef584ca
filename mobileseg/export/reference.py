"""Reference building: the exact PyTorch model that is exported and the seeded input/output artifacts are judged by.

:func:`build_export_model` builds the model through the registry (strict checkpoint, or seeded random weights with
the classifier set up so the class map is worth comparing), folds BatchNorm (verified) and adds the optional argmax
head; :func:`build_reference` runs it on the seeded :func:`reference_input` and measures how much an argmax
comparison on that output can show (:func:`reference_margins`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

# random weights give flat logits: the classifier is scaled so logits have this standard deviation
LOGIT_SPREAD = 4.0
INPUT_SEED = 0
WEIGHTS_SEED = 0


@dataclass
class Reference:
    """The exported module, the seeded input, the PyTorch output artifacts are compared with, and what it shows."""

    net: object
    info: dict
    x: np.ndarray
    ref: np.ndarray
    logits: np.ndarray
    margins: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def out_name(self) -> str:
        return "classes" if self.ref.dtype.kind in "iu" else "logits"


def build_reference(spec, resolution, graph: str, weights=None, num_classes=None, x=None) -> Reference:
    """Build the export model of ``spec`` and its reference output for the seeded input (one torch thread);
    ``x``: another input (int8 parity uses a procedural image, see mobileseg.export.quantize)."""
    import torch

    h, w = resolution
    x = reference_input(spec, (h, w)) if x is None else x
    t = time.perf_counter()
    net, info = build_export_model(
        spec.name, (h, w), num_classes=num_classes, weights=weights, graph=graph, example=torch.from_numpy(x)
    )
    with torch.no_grad():
        xt = torch.from_numpy(x)
        logits = net.logits(xt) if graph == "argmax" else net(xt)
        ref = logits.argmax(dim=1).numpy() if graph == "argmax" else logits.numpy()
    margins = reference_margins(logits.numpy()) if spec.task == "segmentation" or logits.dim() == 2 else {}
    return Reference(net, info, x, ref, logits.numpy(), margins, time.perf_counter() - t)


def reference_input(spec, resolution, seed: int = INPUT_SEED) -> np.ndarray:
    """A seeded image (uniform pixels 0..255) normalised with the model's mean/std: float32 1 x C x H x W (C: one
    channel per mean value; 3 for every registered model)."""
    h, w = resolution
    rng = np.random.default_rng(seed)
    img = rng.uniform(0.0, 255.0, size=(1, len(spec.mean), h, w))
    mean = np.asarray(spec.mean, dtype=np.float64).reshape(1, -1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float64).reshape(1, -1, 1, 1)
    return ((img - mean) / std).astype(np.float32)


def _final_layer(model, example):
    """Name of the Conv/Linear whose output is the model's output (the classifier), or None."""
    import torch
    from torch import nn

    seen = {}
    handles = [
        m.register_forward_hook(lambda mod, a, out, n=n: seen.__setitem__(id(out), (n, out)))
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            out = model(example)
    finally:
        for h in handles:
            h.remove()
    hit = seen.get(id(out))
    return (hit[0] if hit else None), out


def fold_resolution(spec, resolution) -> tuple[int, int]:
    """The smallest square size ``spec`` accepts (at least 64), or ``resolution`` when that is not smaller."""
    m = int(getattr(spec, "size_multiple", 32) or 32)
    side = -(-max(int(getattr(spec, "min_size", 64) or 64), 64) // m) * m
    try:
        spec.check_resolution(side, side)
    except Exception:
        return tuple(resolution)
    return (side, side) if side * side < resolution[0] * resolution[1] else tuple(resolution)


def build_export_model(
    name: str,
    resolution,
    num_classes=None,
    weights=None,
    graph: str = "logits",
    classifier_scale=None,
    example=None,
    classifier_shift=None,
):
    """The exact PyTorch model that is exported: ``(model, info)``.

    Random weights (no ``weights``) are drawn after ``torch.manual_seed(WEIGHTS_SEED)``; then the classifier is set
    up so the reference class map is worth comparing (see :func:`_spread_classifier`); ``classifier_scale`` and
    ``classifier_shift`` replay recorded values. BatchNorm is folded (verified at the smallest size the model
    accepts: folding does not depend on the resolution) before the optional argmax head is added.
    """
    import torch

    from ..registry import create_model
    from .fold import fold_batchnorm

    h, w = resolution
    if weights is None:
        torch.manual_seed(WEIGHTS_SEED)
    model = create_model(name, num_classes=num_classes, weights=weights)
    spec = model.spec
    if example is None:
        example = torch.from_numpy(reference_input(spec, (h, w)))
    from ..flops import count_complexity

    with torch.no_grad():
        counted = count_complexity(model, h, w)  # before folding: the papers count BatchNorm's parameters and MACs
    fold_res = fold_resolution(spec, (h, w))
    fold_example = example if fold_res == (h, w) else torch.from_numpy(reference_input(spec, fold_res))
    folded = fold_batchnorm(model, fold_example)
    folded.fold_report["verify_resolution"] = list(fold_res)
    info = {
        "fold": folded.fold_report,
        "num_classes": spec.num_classes,
        "classifier": None,
        "classifier_scale": None,
        "classifier_shift": None,
        "complexity": {"gmacs": counted.macs / 1e9, "params": counted.params},
    }
    if weights is None:
        info.update(_spread_classifier(folded, example, classifier_scale, classifier_shift, centre=graph == "argmax"))
    if graph == "argmax":
        from .graphs import ArgmaxGraph

        folded = ArgmaxGraph(folded, (h, w)).eval()
    folded.eval()
    return folded, info


def _spread_classifier(model, example, scale=None, shift=None, centre=False) -> dict:
    """Scale (and for the argmax graph, centre) a random-weight classifier; returns what was done (for the manifest).

    Random weights give spatially flat logits: every pixel's logits are nearly the same vector (per-class offsets
    hundreds to 1e9 times larger than what varies with the image), so the reference class map is one class
    everywhere and argmax agreement is 1.0 whatever the artifact does to the features. Scaling the classifier does
    not change that (logits and their errors scale alike): the scale only puts max_abs on a common footing (logit
    std ``LOGIT_SPREAD``). For the logits graph the weights are left otherwise as drawn (so relative L2 is that of
    the model's own logits) and parity compares argmax on logits centred per class over the pixels (see
    :func:`reference_margins`). The argmax graph has only its class map to compare, so there (``centre``) the
    classifier's bias is shifted by each class's mean over the reference pixels: the class map follows the image.
    """
    import torch

    layer, out = _final_layer(model, example)
    if layer is None:
        return {}
    mod = model.get_submodule(layer)
    o = out.double()
    spatial = o.dim() == 4 and o.shape[2] * o.shape[3] > 1
    if shift is None and centre and spatial:
        shift = [float(v) for v in o.mean(dim=(0, 2, 3)).float()]
    if shift is not None:
        o = o - torch.tensor(shift, dtype=torch.float64).view(1, -1, *([1] * (o.dim() - 2)))
    if scale is None:
        std = float(o.std())
        scale = float(f"{LOGIT_SPREAD / std:.6g}") if std > 0 else 1.0
    with torch.no_grad():
        if shift is not None:
            b = mod.bias.double() if mod.bias is not None else torch.zeros(mod.weight.shape[0], dtype=torch.float64)
            b = (b - torch.tensor(shift, dtype=torch.float64)) * scale
            if mod.bias is None:
                mod.bias = torch.nn.Parameter(b.to(mod.weight.dtype), requires_grad=False)
            else:
                mod.bias.copy_(b.to(mod.bias.dtype))
        elif mod.bias is not None:
            mod.bias.mul_(scale)
        mod.weight.mul_(scale)
    return {"classifier": layer, "classifier_scale": scale, "classifier_shift": shift}


def centred(logits) -> np.ndarray:
    """Logits minus each class's mean over the pixels (float64): what varies with the image."""
    a = np.asarray(logits, dtype=np.float64)
    if a.ndim == 4 and a.shape[2] * a.shape[3] > 1:
        return a - a.mean(axis=(0, 2, 3), keepdims=True)
    return a


def top2(a: np.ndarray) -> np.ndarray:
    top = np.partition(a, a.shape[1] - 2, axis=1)
    return (top[:, -1] - top[:, -2]).ravel()


def reference_margins(logits) -> dict:
    """How much an argmax comparison on these reference logits can show.

    ``classes_raw``/``top_class_share_raw``: the class map of the logits as they are (random weights: often one
    class everywhere). The rest is for the logits centred per class over the pixels (:func:`centred`), on which
    parity compares argmax: top-2 margin median/p10/min and the number of classes in that map.
    """
    a = np.asarray(logits, dtype=np.float64)
    if a.ndim < 2 or a.shape[1] < 2:
        return {}
    raw = np.bincount(np.argmax(a, axis=1).ravel())
    c = centred(a)
    margin = top2(c)
    counts = np.bincount(np.argmax(c, axis=1).ravel())
    return {
        "top2_margin_median": float(np.median(margin)),
        "top2_margin_p10": float(np.percentile(margin, 10)),
        "top2_margin_min": float(margin.min()),
        "classes": int(np.count_nonzero(counts)),
        "top_class_share": float(counts.max() / counts.sum()),
        "classes_raw": int(np.count_nonzero(raw)),
        "top_class_share_raw": float(raw.max() / raw.sum()),
        "pixels": int(counts.sum()),
        "centred": bool(a.ndim == 4 and a.shape[2] * a.shape[3] > 1),
    }


def margin_figures(margins: dict, max_abs) -> dict:
    if not margins:
        return {}
    fig = {"top2_margin_median": margins["top2_margin_median"], "ref_classes": margins["classes"]}
    if max_abs is not None:
        fig["margin_over_max_abs"] = (margins["top2_margin_median"] / max_abs) if max_abs > 0 else None
    return fig
