"""PyTorch side: every module's output on the reference input, from forward hooks on the exported ``model.pt``.

The module that was exported is the BN-folded one saved by export (``model.pt``, :mod:`mobileseg.export.pytorch`),
so its module paths are the ones the converters saw. Hooks fire when a module returns, so inner modules come before
the module that contains them and the list is in execution order. One tensor returned by several modules (a
container returning its last child's output, an ``Identity`` left by BN folding) is one entry, named by the
innermost module, with the others as aliases.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..formats import FORMATS


@dataclass
class TorchTensor:
    """One distinct tensor a module returned: ``path`` (innermost module), its class, the value, where it came from."""

    index: int
    path: str
    cls: str
    leaf: bool
    value: np.ndarray
    input_ids: tuple = ()
    out_id: int = 0
    aliases: list = field(default_factory=list)
    params: bool = False  # the module holds weights (a conv, a linear), so no runtime fuses it into the previous op

    @property
    def shape(self) -> list[int]:
        return list(self.value.shape)


@dataclass
class LeafCall:
    """One call of a leaf module: which entry its output is (``entry``), or that it returned its input (identity)."""

    path: str
    cls: str
    entry: int | None
    identity: bool


@dataclass
class TorchCapture:
    tensors: list
    leaves: list
    output: np.ndarray
    classes: dict  # module path -> class qualname (what litert-torch writes into tensor names)


def load_module(export_dir: str, export_cmd: str = "mobileseg export ... --formats torch,<format>"):
    """The exported module (``model.pt``), or an ArtifactError saying how to get it (``export_cmd``)."""
    import torch

    from ..manifest import ArtifactError

    name = FORMATS["torch"].model_file
    path = os.path.join(export_dir, name)
    if not os.path.isfile(path):
        raise ArtifactError(
            f"{export_dir} has no {name} (the exported PyTorch module the layers are compared "
            f"with): write it with `{export_cmd}`"
        )
    return torch.load(path, weights_only=False).eval()


def capture(module, x: np.ndarray) -> TorchCapture:
    """Run ``module`` on ``x`` with a forward hook on every module; see the module docstring."""
    import torch

    tensors: list[TorchTensor] = []
    leaves: list[LeafCall] = []
    by_id: dict[int, int] = {}
    keep = []  # hold every output so no id is reused during the forward
    calls: dict[str, int] = {}
    names = {m: n for n, m in module.named_modules(remove_duplicate=False)}
    classes = {n: f"{type(m).__module__}.{type(m).__qualname__}" for n, m in module.named_modules()}

    def hook(mod, args, out):
        name = names.get(mod, "?")
        n = calls[name] = calls.get(name, 0) + 1
        path = name if n == 1 else f"{name}#{n}"
        leaf = not any(True for _ in mod.children())
        ins = tuple(id(a) for a in args if isinstance(a, torch.Tensor))
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return
        keep.append((out, args))
        if id(out) in by_id:
            entry = by_id[id(out)]
            if path:
                tensors[entry].aliases.append(path)
            if leaf:
                leaves.append(LeafCall(path, type(mod).__name__, entry, id(out) in ins))
            return
        t = TorchTensor(
            len(tensors),
            path or "(output)",
            type(mod).__name__,
            leaf,
            out.detach().to(torch.float32).numpy().copy(),
            ins,
            id(out),
            params=any(True for _ in mod.parameters(recurse=False)),
        )
        by_id[id(out)] = t.index
        tensors.append(t)
        if leaf:
            leaves.append(LeafCall(path, type(mod).__name__, t.index, False))

    handles = [m.register_forward_hook(hook) for m in set(names)]
    try:
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
    return TorchCapture(tensors, leaves, out.detach().float().numpy(), classes)
