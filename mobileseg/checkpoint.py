"""Reading checkpoint files and loading them with ``strict=True``.

A checkpoint file may be a ``.pth``/``.pt``/``.bin`` torch file or a ``.safetensors`` file, and may wrap its
state_dict the way official releases do (``state_dict``, ``model``, ``state_dict_ema``, ``module.`` prefixes, a
``meta`` entry beside). Each model family can register a converter that recognises and renames foreign layouts
(legacy names, Hugging Face, mmseg-1.x ...); converters must account for every key (a silently dropped key is a bug).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch

from .errors import CheckpointError
from .hashing import sha256_file as file_sha256  # noqa: F401

_WRAPPERS = ("state_dict_ema", "state_dict", "model", "model_state", "net")


@dataclass
class FamilyCheckpointInfo:
    # converter(state, model_name) -> (state, notes); notes is a list of human sentences about what was done.
    converter: Callable | None = None
    # keys whose first dimension is the number of classes (first one found wins)
    classifier_keys: tuple[str, ...] = ()


_FAMILIES: dict[str, FamilyCheckpointInfo] = {}


def register_family(family: str, converter: Callable | None = None, classifier_keys: tuple[str, ...] = ()) -> None:
    _FAMILIES[family] = FamilyCheckpointInfo(converter, tuple(classifier_keys))


def unwrap_state_dict(obj) -> dict[str, torch.Tensor]:
    """Find the state_dict inside the wrappers official checkpoint files use."""
    if not isinstance(obj, dict):
        if hasattr(obj, "state_dict"):
            return obj.state_dict()
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state_dict")
    for key in _WRAPPERS:
        if key in obj and isinstance(obj[key], dict) and obj[key]:
            obj = obj[key]
            break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(
            f"checkpoint holds no tensors (expected a state_dict, or one under {', '.join(_WRAPPERS)})"
        )
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def check_checkpoint_file(path) -> str:
    """``path`` as a string if it names an existing file, else a :class:`CheckpointError` saying what it is."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(
            f"checkpoint {path} is a folder: give the checkpoint file itself (.pth, .pt, .bin or .safetensors)"
        )
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    return path


def _unreadable_message(path: str, exc: Exception) -> str:
    """One sentence for a file torch.load refuses. Its own text is paragraphs of advice about ``weights_only``; the
    cause is the ``WeightsUnpickler error`` line (or the first sentence): garbage bytes, or a pickled Python object
    (argparse.Namespace in a training checkpoint) that safe loading does not run."""
    import re

    text = str(exc)
    m = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    detail = (m.group(1) if m else text.strip().splitlines()[0] if text.strip() else type(exc).__name__).strip()
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", detail)
    if unsafe:
        return (
            f"cannot read checkpoint {path} safely: it stores the Python object {unsafe.group(1)}, which "
            "torch.load(weights_only=True) refuses to run; if you trust the file, save only its tensors "
            "(torch.save(torch.load(path, weights_only=False)['state_dict'], 'clean.pth')) and pass that"
        )
    detail = detail.split(". ")[0].rstrip(".")[:160]
    return (
        f"cannot read checkpoint {path}: the file is corrupted or not a PyTorch/safetensors state_dict "
        f"({type(exc).__name__}: {detail})"
    )


def read_checkpoint(path, spec=None) -> dict[str, torch.Tensor]:
    """Read ``path`` into a plain state_dict converted to our layout (when ``spec``'s family has a converter)."""
    path = check_checkpoint_file(path)
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj = load_file(path)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except OSError as exc:  # no permission, I/O error
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # corrupted/truncated/not a checkpoint
        raise CheckpointError(_unreadable_message(path, exc)) from None
    state = unwrap_state_dict(obj)
    if spec is not None:
        info = _FAMILIES.get(spec.family)
        if info and info.converter:
            state, notes = info.converter(state, spec.name)
            for note in notes:
                print(f"[mobileseg] {os.path.basename(path)}: {note}")
    return state


def infer_num_classes(state: dict, spec) -> int | None:
    info = _FAMILIES.get(spec.family)
    for key in info.classifier_keys if info else ():
        if key in state:
            return int(state[key].shape[0])
    return None


def _short(keys, n=8) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_into(model: torch.nn.Module, state: dict, source: str = "checkpoint") -> None:
    """``model.load_state_dict(state, strict=True)`` with a clear report of what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_short(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_short(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches: {_short(mismatched, 4)}")
        name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
        raise CheckpointError(f"{source} does not fit {name}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def rename_prefixes(state: dict, renames: list[tuple[str, str]]) -> dict:
    """Apply substring renames (legacy name -> current name) to every key."""
    out = {}
    for k, v in state.items():
        for old, new in renames:
            k = k.replace(old, new)
        out[k] = v
    return out
