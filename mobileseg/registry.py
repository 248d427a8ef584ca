"""Model registry: the single door to every model (``create_model``, ``list_models``, ``get_spec``).

Each model module registers thin entry functions with :func:`register_model`, passing a :class:`ModelSpec` that
states the model's input contract and where its published numbers come from. ``create_model`` builds the model,
attaches the spec as ``model.spec``, optionally loads a checkpoint (strict) and returns it in eval mode.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Callable

from .errors import MobilesegError, ResolutionError, UnknownModelError

from .model_spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec  # noqa: F401  (re-exported: mobileseg.registry.ModelSpec)


@dataclass
class _Entry:
    spec: ModelSpec
    builder: Callable


_REGISTRY: dict[str, _Entry] = {}


def register_model(spec: ModelSpec):
    """Decorator for an entry function ``fn(num_classes=..., **kw) -> nn.Module``."""

    def deco(fn):
        if spec.name in _REGISTRY:
            raise ValueError(f"model {spec.name!r} registered twice")
        _REGISTRY[spec.name] = _Entry(spec, fn)
        return fn

    return deco


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (importing registers every model)
    from .models.external import load_entry_points

    load_entry_points(_REGISTRY, register_model)  # third-party models (entry-point group mobileseg.models)


def list_models(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Registered model names, sorted, optionally filtered by a shell-style ``pattern`` and a ``task``."""
    _ensure_loaded()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    if task:
        names = [n for n in names if _REGISTRY[n].spec.task == task]
    return names


def get_spec(name: str) -> ModelSpec:
    return _lookup(name).spec


def _lookup(name: str) -> _Entry:
    _ensure_loaded()
    from .models.external import factory_spec, is_factory_name

    if is_factory_name(name):  # a user's factory, pkg.mod:fn (mobileseg.models.external)
        return _Entry(*factory_spec(name.strip()))
    key = name.strip().lower().replace("_", "-")
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.5)
    if not close:
        close = [n for n in _REGISTRY if key.split("-")[0] in n][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown model '{name}'{hint} (`mobileseg models` lists them all)")


def create_model(name: str, num_classes: int | None = None, weights: str | None = None, **kwargs):
    """Build a registered model in eval mode, optionally loading a checkpoint with ``strict=True``.

    Args:
        name: registered model name (see :func:`list_models`); case and ``_``/``-`` are forgiven.
        num_classes: number of output classes; defaults to the spec's (150 for ADE20K models). When ``weights`` is
            given and ``num_classes`` is not, it follows the checkpoint's classifier.
        weights: path to a checkpoint file (official layouts are recognised and converted, see
            :mod:`mobileseg.checkpoint`).
        **kwargs: passed to the model constructor.
    """
    entry = _lookup(name)
    spec = entry.spec
    if num_classes is not None and (
        isinstance(num_classes, bool) or not hasattr(num_classes, "__index__") or num_classes < 1
    ):
        raise MobilesegError(
            f"the number of classes (--num-classes) must be a whole number of at least 1, not {num_classes!r}"
        )
    state = None
    if weights is not None:
        from .checkpoint import read_checkpoint, infer_num_classes

        state = read_checkpoint(weights, spec)
        if num_classes is None:
            num_classes = infer_num_classes(state, spec)
    if num_classes is None:
        num_classes = spec.num_classes
    model = entry.builder(num_classes=num_classes, **kwargs)
    if num_classes != spec.num_classes:
        from dataclasses import replace

        spec = replace(spec, num_classes=num_classes)
    model.spec = spec
    if state is not None:
        from .checkpoint import load_into

        load_into(model, state, source=str(weights))
    model.eval()
    return model


def parse_resolution(text) -> tuple[int, int]:
    """``'448'`` -> (448, 448); ``'512x1024'`` -> (512, 1024) (height x width)."""
    if isinstance(text, (tuple, list)):
        h, w = (int(text[0]), int(text[1])) if len(text) == 2 else (int(text[0]), int(text[0]))
        return h, w
    if isinstance(text, int):
        return text, text
    s = str(text).lower().replace(" ", "")
    try:
        if "x" in s:
            a, b = s.split("x")
            h, w = int(a), int(b)
        else:
            h = w = int(s)
    except ValueError:
        raise ResolutionError(f"cannot read resolution '{text}': give one number (448) or HxW (512x1024)") from None
    if h <= 0 or w <= 0:
        raise ResolutionError(f"resolution '{text}' must be positive")
    return h, w
