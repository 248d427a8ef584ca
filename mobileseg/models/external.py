"""Models mobileseg does not define: a factory named ``pkg.mod:fn`` and the ``mobileseg.models`` entry-point group.

* ``create_model("my_package.my_module:build_fn")`` (and ``mobileseg export --model ... --input-shape 1x3x512x512``)
  imports the module, calls ``build_fn()`` (with ``num_classes=`` when it takes that argument) and treats the
  ``nn.Module`` it returns like a registered model: BN folding, every converter, the manifest, parity, bench.
  Its spec is learned from one forward pass at the input shape (:func:`factory_spec`): task (4-D output:
  segmentation, 2-D: classification), classes, output stride; the input keeps mobileseg's convention (3 channels:
  0..255 pixels normalised with the ImageNet mean/std; C channels: ``(x - 127.5) / 127.5``).
* Third-party packages register models for :func:`mobileseg.create_model` and ``mobileseg models`` the way timm's
  plugins do, with an entry point in the group ``mobileseg.models``::

      [project.entry-points."mobileseg.models"]
      my-net = "my_package.models:my_net"

  Loading it may register the model itself (``@mobileseg.register_model(ModelSpec(...))`` in that module); else the
  function is registered under the entry point's name, with its ``spec`` attribute (a ``ModelSpec``) when it has
  one, or the default spec. A plugin that fails to load is left out with a warning naming it, never an error.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings

from ..errors import MobilesegError, UnknownModelError

ENTRY_POINT_GROUP = "mobileseg.models"
DEFAULT_INPUT_SHAPE = (1, 3, 512, 512)
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_SPECS: dict = {}  # "pkg.mod:fn" -> (ModelSpec, builder)
_loaded_entry_points = False


def is_factory_name(name: str) -> bool:
    return bool(_FACTORY.match(str(name).strip()))


def resolve(target: str):
    """The callable ``pkg.mod:fn`` names; one sentence when the module or the name is missing."""
    mod_name, _, attr = target.strip().partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise UnknownModelError(
            f"cannot import '{mod_name}' for --model {target} ({exc}): install the package or "
            "put its folder on PYTHONPATH"
        ) from None
    except Exception as exc:  # the user's module failed while importing
        raise MobilesegError(
            f"importing '{mod_name}' for --model {target} failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(mod) if not n.startswith("_") and callable(getattr(mod, n))]
            import difflib

            close = difflib.get_close_matches(attr, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownModelError(f"module '{mod_name}' has no '{attr}' (for --model {target}){hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise MobilesegError(f"'{target}' is a {type(obj).__name__}, not a function returning an nn.Module")
    return obj


def builder_for(fn, name: str):
    """``builder(num_classes=..., **kw)`` around a user's ``fn``: ``num_classes`` is passed only when ``fn`` takes it,
    and the result must be an ``nn.Module``."""
    try:
        params = inspect.signature(fn).parameters
        takes = "num_classes" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        takes = False

    def build(num_classes=None, _default=None, **kw):
        from torch import nn

        if takes and num_classes is not None:
            kw["num_classes"] = num_classes
        elif num_classes is not None and _default is not None and num_classes != _default:
            raise MobilesegError(f"{name} takes no num_classes argument: drop --num-classes")
        try:
            model = fn(**kw)
        except MobilesegError:
            raise
        except SystemExit as exc:  # builtins:exit, sys:exit: a factory must return a model, not end the process
            raise MobilesegError(
                f"{name}() tried to exit (SystemExit {exc.code}) instead of returning an nn.Module: "
                "--model takes a function that builds and returns the model"
            ) from None
        except Exception as exc:
            raise MobilesegError(
                f"{name}() failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
        if not isinstance(model, nn.Module):
            raise MobilesegError(
                f"{name}() returned a {type(model).__name__}, not a torch nn.Module: --model takes a "
                "function that builds and returns the model"
            )
        return model

    return build


def parse_input_shape(text) -> tuple[int, int, int, int]:
    from ..errors import ResolutionError

    parts = (
        [p for p in re.split(r"[x,\s]+", str(text).strip().lower()) if p]
        if not isinstance(text, (list, tuple))
        else list(text)
    )
    try:
        shape = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 4 or any(v < 1 for v in shape):
        raise ResolutionError(f"cannot read --input-shape '{text}': give N x C x H x W such as 1x3x512x512")
    if shape[0] != 1:
        raise ResolutionError(f"--input-shape {text}: mobileseg exports batch 1 (1x{shape[1]}x{shape[2]}x{shape[3]})")
    return shape


def factory_spec(target: str, input_shape=None):
    """``(ModelSpec, builder)`` of the factory ``pkg.mod:fn`` at ``input_shape`` (default 1x3x512x512), learned from
    one seeded forward pass; cached per (factory, shape). The last shape asked for is the factory's default."""
    from ..model_spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec

    shape = parse_input_shape(input_shape) if input_shape is not None else None
    cached = _SPECS.get(target)
    if cached and (shape is None or cached[2] == shape):
        return cached[0], cached[1]
    shape = shape or DEFAULT_INPUT_SHAPE
    fn = resolve(target)
    build = builder_for(fn, target)
    import torch

    _, c, h, w = shape
    torch.manual_seed(0)
    model = build().eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape))
    except Exception as exc:
        raise MobilesegError(
            f"{target}() does not run on an input of {'x'.join(map(str, shape))} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): give the "
            "shape it takes with --input-shape"
        ) from None
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        raise MobilesegError(
            f"{target}() returns {len(out)} tensors: mobileseg exports models with one output "
            "(wrap it to return the logits)"
        )
    if not isinstance(out, torch.Tensor):
        raise MobilesegError(f"{target}() returns a {type(out).__name__}, not a tensor: wrap it to return the logits")
    seg = out.dim() == 4
    classes = int(out.shape[1]) if out.dim() >= 2 else 1
    stride = max(1, h // int(out.shape[2])) if seg and out.shape[2] else 1
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if c == 3 else ((127.5,) * c, (127.5,) * c)
    spec = ModelSpec(
        name=target,
        family="external",
        task="segmentation" if seg else "classification",
        default_resolution=(h, w),
        output_stride=stride,
        size_multiple=1,
        min_size=1,
        mean=mean,
        std=std,
        num_classes=classes,
        dataset="",
        paper="",
        notes=f"a user's factory, {target}; contract learned from one forward pass at {'x'.join(map(str, shape))}",
    )
    default = classes

    def builder(num_classes=None, **kw):
        return build(num_classes=None if num_classes == default else num_classes, _default=default, **kw)

    _SPECS[target] = (spec, builder, shape)
    return spec, builder


def load_entry_points(registry: dict, register) -> list[str]:
    """Register the models of the ``mobileseg.models`` entry-point group (once per process); returns warnings."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return []
    _loaded_entry_points = True
    from importlib.metadata import entry_points

    from ..model_spec import ModelSpec

    problems = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in registry:
            continue
        try:
            obj = ep.load()
        except Exception as exc:
            problems.append(
                f"the model plugin '{ep.name}' ({ep.value}) failed to load and is left out: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
            continue
        if ep.name in registry or not callable(obj):
            continue  # its module registered it (or registered others) on import
        spec = getattr(obj, "spec", None)
        spec = (
            spec
            if isinstance(spec, ModelSpec)
            else ModelSpec(
                name=ep.name, family="plugin", notes=f"entry point {ep.value} (the default spec: 512x512, 150 classes)"
            )
        )
        if spec.name != ep.name:
            from dataclasses import replace

            spec = replace(spec, name=ep.name)
        register(spec)(obj)
    for p in problems:
        warnings.warn(p, stacklevel=3)
    return problems
