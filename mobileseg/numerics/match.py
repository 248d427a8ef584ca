"""Matching runtime tensors to the PyTorch modules whose outputs they are, and saying how each match was made.

1. ``name``: the converter kept the module path (:mod:`.names`). Among the runtime tensors named inside a module
   (the module or its children) with the module output's size, the one closest in value is its output; a named
   candidate far off in value (rel-L2 above :data:`NAME_MAX_REL_L2`) is not taken when the name says the module
   was fused into another op (litert-torch lists fused modules).
2. ``order+shape+value``: names lost (ncnn), or no named candidate. Every (module, tensor) pair of equal size is
   scored by rel-L2 after layout alignment, and pairs are taken best first, each tensor once (two modules whose
   PyTorch outputs are equal may share one); ties go to the tensor nearest in graph order to the last match. A pair
   above :data:`VALUE_MAX_REL_L2` is no match: with an injected fault of a few percent the faulty layer still
   matches, while a convolution's pre-activation output does not match its ReLU's (about 0.7 apart).
3. ``order+shape``: a module still without a tensor that feeds no leaf module takes the free tensor of its size
   between the tensors of its matched neighbours in graph order, if positively correlated (cosine >=
   :data:`ORDER_MIN_COSINE`): a layer so wrong that no value test passes is still found where the graph puts it.
4. Leaf modules left over are ``identity`` (returned their input: an ``Identity`` left by BN folding, eval-mode
   dropout), ``fused`` into the matched module that consumes their output (an activation or bias a runtime folded
   into a convolution) or, by litert-torch's names, fused into the named op; ``removed`` where names survive but no
   op carries the module's path (the converter folded it away); else ``unmatched``.

Layouts: a runtime's 4-D NHWC tensor (LiteRT) is compared as NCHW; ncnn's batch-less blobs and any other tensor of
the same memory order are reshaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .metrics import figures
from .names import LiteRTNames, onnx_path

NAME_MAX_REL_L2 = 0.5
VALUE_MAX_REL_L2 = 0.2
ORDER_MIN_COSINE = 0.5
NAMED_RUNTIMES = ("onnxruntime", "litert")  # whose converters keep module paths in tensor names


@dataclass
class Match:
    entry: int
    tensor: int | None
    method: str
    layout: str = ""
    figures: dict = field(default_factory=dict)


def aligned(value: np.ndarray, layout: str, shape) -> list[tuple[str, np.ndarray]]:
    """The views of a runtime tensor that have the PyTorch shape ``shape``: (layout label, array)."""
    shape = tuple(int(s) for s in shape)
    if value.size != int(np.prod(shape)):
        return []
    views = []
    if (
        layout == "NHWC"
        and value.ndim == 4
        and len(shape) == 4
        and (value.shape[0], value.shape[3], value.shape[1], value.shape[2]) == shape
    ):
        views.append(("NHWC->NCHW", value.transpose(0, 3, 1, 2)))
    views.append(("same order", value.reshape(shape)))
    return views


def best_view(value, layout, ref) -> tuple[str, np.ndarray, float] | None:
    best = None
    for label, view in aligned(value, layout, ref.shape):
        rel = figures(view, ref)["rel_l2"]
        if best is None or rel < best[2]:
            best = (label, view, rel)
    return best


def runtime_paths(runtime: str, tensors, classes: dict) -> list[tuple[str | None, list[str]]]:
    """Per runtime tensor: (module path its name carries, modules its name says were fused into it)."""
    modules = set(classes)
    if runtime == "onnxruntime":
        return [(onnx_path(t.name, modules), []) for t in tensors]
    if runtime == "litert":
        names = LiteRTNames(classes)
        return [names.paths(t.name) for t in tensors]
    return [(None, []) for _ in tensors]


def _in_scope(path: str | None, scope: str) -> bool:
    return path is not None and (path == scope or path.startswith(scope + "."))


def match(cap, tensors, runtime: str) -> dict:
    """Match ``cap`` (a :class:`~.torch_capture.TorchCapture`) with runtime ``tensors``; see the module docstring.

    Returns ``{"matches": {entry index: Match}, "leaves": [(LeafCall, status, detail)], "paths": [...]}``.
    """
    paths = runtime_paths(runtime, tensors, cap.classes)
    fused_by_name = {p: tensors[i].index for i, (_, fused) in enumerate(paths) for p in fused}
    matches: dict[int, Match] = {}
    used: dict[int, int] = {}  # tensor index -> entry index
    # 1. by name
    for e in cap.tensors:
        scope = e.path.split("#")[0]
        cands = []
        for t, (p, _) in zip(tensors, paths):
            if _in_scope(p, scope):
                bv = best_view(t.value, t.layout, e.value)
                if bv is not None:
                    cands.append((bv[2], -t.index, t, bv))
        if not cands:
            continue
        rel, _, t, bv = min(cands, key=lambda c: (c[0], c[1]))
        if rel > NAME_MAX_REL_L2 and scope in fused_by_name:
            continue
        matches[e.index] = Match(e.index, t.index, "name", bv[0], figures(bv[1], e.value))
        used.setdefault(t.index, e.index)
    # 2. by order, shape and value
    pairs = []
    for e in cap.tensors:
        if e.index in matches or e.path.split("#")[0] in fused_by_name:
            continue
        for t in tensors:
            bv = best_view(t.value, t.layout, e.value)
            if bv is not None and bv[2] <= VALUE_MAX_REL_L2:
                pairs.append((bv[2], e.index, t.index, bv[0]))
    pairs.sort(key=lambda p: (p[0], p[1], p[2]))

    def free(ti: int, ei: int) -> bool:
        owner = used.get(ti)
        return owner is None or np.array_equal(cap.tensors[owner].value, cap.tensors[ei].value)

    for rel, ei, ti, label in pairs:
        if ei in matches or not free(ti, ei):
            continue
        # among equally good tensors, the one nearest in graph order after the previous match
        ties = [(p[2], p[3]) for p in pairs if p[1] == ei and p[0] <= rel * 1.0001 + 1e-12 and free(p[2], ei)]
        prev = max((m.tensor for k, m in matches.items() if k < ei and m.tensor is not None), default=-1)
        ti, label = min(ties, key=lambda q: (q[0] <= prev, abs(q[0] - prev)))
        t, e = tensors[ti], cap.tensors[ei]
        view = dict(aligned(t.value, t.layout, e.value.shape))[label]
        matches[ei] = Match(ei, ti, "order+shape+value", label, figures(view, e.value))
        used.setdefault(ti, ei)
    consumers: dict[int, list[int]] = {}
    for e in cap.tensors:
        for i in e.input_ids:
            consumers.setdefault(i, []).append(e.index)
    # 2b. by order and shape: a layer so wrong that no value test passes (a large fault) still has its tensor where
    # the graph puts it: between the tensors of the matched entries around it. Entries feeding a leaf module
    # (a convolution before its activation: a weightless leaf of the same shape) are left to be listed as
    # fused, as in a right artifact.
    for e in cap.tensors:
        if (
            e.index in matches
            or e.path.split("#")[0] in fused_by_name
            or any(
                cap.tensors[c].leaf and not cap.tensors[c].params and cap.tensors[c].shape == e.shape
                for c in consumers.get(e.out_id, [])
            )
        ):
            continue
        lo = max((m.tensor for k, m in matches.items() if k < e.index), default=-1)
        hi = min((m.tensor for k, m in matches.items() if k > e.index), default=len(tensors))
        cands = []
        for t in tensors[lo + 1 : hi]:
            if t.index in used:
                continue
            bv = best_view(t.value, t.layout, e.value)
            if bv is not None:
                f = figures(bv[1], e.value)
                if f["cosine"] >= ORDER_MIN_COSINE:
                    cands.append((f["rel_l2"], t.index, bv[0], f))
        if cands:
            _, ti, label, f = min(cands, key=lambda c: (c[0], c[1]))
            matches[e.index] = Match(e.index, ti, "order+shape", label, f)
            used[ti] = e.index
    # 3. leaf statuses
    leaves = []
    for leaf in cap.leaves:
        scope = leaf.path.split("#")[0]
        if leaf.identity:
            leaves.append((leaf, "identity", cap.tensors[leaf.entry].path))
        elif leaf.entry in matches:
            leaves.append((leaf, "matched", tensors[matches[leaf.entry].tensor].name))
        elif scope in fused_by_name:
            into = next(
                (cap.tensors[k].path for k, m in matches.items() if m.tensor == fused_by_name[scope]),
                paths[fused_by_name[scope]][0],
            )
            leaves.append((leaf, "fused", into))
        else:
            out_id = cap.tensors[leaf.entry].out_id
            into = next((cap.tensors[c].path for c in consumers.get(out_id, []) if c in matches), None)
            if into:
                leaves.append((leaf, "fused", into))
            elif runtime in NAMED_RUNTIMES and not any(_in_scope(p, scope) for p, _ in paths):
                # names survive, yet no op carries this module's path: the converter removed it (e.g. onnxsim
                # folding attention q/k convolutions away when one token makes the softmax a constant 1)
                leaves.append((leaf, "removed", None))
            else:
                leaves.append((leaf, "unmatched", None))
    return {"matches": matches, "leaves": leaves, "paths": paths}
