"""The torch format: the BN-folded module that export checked, saved whole with ``torch.save`` (``model.pt``).

The torch runtime loads this file, so a torch cell runs what export saved instead of rebuilding (and re-folding) the
model. Why ``torch.save`` of the module rather than TorchScript or ``torch.export``: it loads in tens of
milliseconds (topformer-t: 0.03 s; a ``torch.export`` program took 0.8 s to load and 3 s to make), it runs exactly
the eager code the papers time, so torch cells stay comparable with earlier results, and it works for every model
that exports at all (the TFLite child process already receives the model this way); ``torch.jit`` is deprecated in
torch 2.13. Loading unpickles the model's classes, so it needs mobileseg installed where it runs (the host).
"""

from __future__ import annotations

import os
from collections import Counter

from ..formats import FORMATS
from ._util import Converted, ConverterFailure, package_version

CONVERTER = "torch.save"


def converter_versions() -> dict:
    return {"torch": package_version("torch")}


def check_available() -> None:
    """torch is a dependency of mobileseg itself: nothing to check."""


def convert(
    model,
    example,
    out_dir: str,
    precision: str = "fp32",
    input_name: str = "input",
    output_name: str = "logits",
    log=None,
) -> Converted:
    import torch

    path = os.path.join(out_dir, FORMATS["torch"].model_file)
    try:
        torch.save(model.eval(), path)
    except Exception as exc:  # e.g. a model class defined in __main__ or a lambda attribute
        raise ConverterFailure(f"torch.save of the model failed: {type(exc).__name__}: {exc}") from exc
    hist = dict(sorted(Counter(type(m).__name__ for m in model.modules() if not list(m.children())).items()))
    info = {"saved": "torch.save(nn.Module), loaded with torch.load(weights_only=False)", "weights_dtype": "fp32"}
    if precision != "fp32":
        info["note"] = "the torch format keeps fp32 weights: it is the eager reference at every precision"
    return Converted([path], input_name, output_name, hist, info)
