"""Artifacts mobileseg did not write: read what a ``.onnx``, ``.tflite``, ``.ncnn.param`` (+ ``.bin``) or ``.pte``
file says about its input, and stage it as an export folder the bench already knows how to measure.

``mobileseg bench --artifact PATH...`` measures files from other tools (``torch.onnx.export``,
``litert_torch.convert``, pnnx, ExecuTorch) the way it measures its own exports. :func:`inspect` reads (through
:mod:`mobileseg.bench.artifact_read`) the input
name, shape, dtype and layout from the file itself (dynamic dimensions are filled from ``--input-shape``) and lists
its ops, so an op the runtime lacks is one sentence naming it before anything runs. :func:`stage` then writes
``<export-dir>/artifacts/<name>-<sha12>/``: the file(s) under the names of :mod:`mobileseg.formats`, ``manifest.json``
(contract 2, marked ``source: artifact``) and ``reference/input.npy``, so the host and ADB targets run it unchanged.

The input (:func:`seeded_input`): ``--input FILE.npy``, else a seeded draw in the range the input declares: integer
inputs (quantised TFLite) the whole range of their dtype; float inputs the convention of mobileseg's own exports
(uniform 0..255 pixels normalised with the ImageNet mean/std, about -2.1..2.6) when they have 3 channels, else a
standard normal. The parity policy (who is compared with what) is :mod:`mobileseg.bench.artifact_cells`'s.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import formats
from .. import manifest as _manifest
from ..hashing import sha256_file
from .artifact_read import (
    RUNTIME_NAMES,
    ArtifactError,
    ArtifactInfo,
    _first_line,
    check_file,
    format_of,  # noqa: F401
    guess_layout,  # noqa: F401
    read_info,
)

INPUT_SEED = 0  # the same seed as mobileseg's own exports (mobileseg.export.reference.INPUT_SEED)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
STAGE_DIR = "artifacts"  # under the export folder (export/artifacts/<name>-<sha12>/)


def parse_shape(text) -> list[int]:
    """``1x3x512x512`` (or ``1,3,512,512``) -> ``[1, 3, 512, 512]``."""
    if isinstance(text, (list, tuple)):
        parts = list(text)
    else:
        parts = [p for p in re.split(r"[x,\s]+", str(text).strip().lower()) if p]
    try:
        shape = [int(p) for p in parts]
    except (TypeError, ValueError):
        shape = []
    if not shape or any(v < 1 for v in shape):
        raise ArtifactError(f"cannot read input shape '{text}': give positive dimensions such as 1x3x512x512")
    return shape


def shared_shapes(paths) -> dict:
    """For files given together without --input-shape: the input shape of each file whose input is dynamic (an
    ncnn .param never states one), taken from a file of the same model that fixes it (in the dynamic file's layout)."""
    infos = [read_info(p) for p in paths]
    fixed = next((i for i in infos if None not in i.input_shape and len(i.input_shape) == 4), None)
    if fixed is None:
        return {}
    nchw = to_layout_shape(fixed.input_shape, fixed.layout, "NCHW")
    out = {}
    for i in infos:
        if None in i.input_shape and len(i.input_shape) == 4:
            lay = formats.layout(i.format)
            want = to_layout_shape(nchw, "NCHW", lay)
            if all(h is None or h == w for h, w in zip(i.input_shape, want)):
                out[str(i.path)] = want
    return out


def inspect(path, input_shape=None, input_array_shape=None) -> ArtifactInfo:
    """Read ``path`` (format from its suffix); fill dynamic input dimensions from ``input_shape``, else from the
    shape of the ``--input`` array (``input_array_shape``). Every problem
    (path, format, dynamic dimension left open, shape conflict, custom op) is one :class:`ArtifactError` sentence."""
    info = read_info(path)
    p, fmt = info.path, info.format
    if info.custom_ops:
        ops = ", ".join(f"'{o}'" for o in info.custom_ops)
        raise ArtifactError(
            f"'{p.name}' uses the custom op{'s' if len(info.custom_ops) > 1 else ''} {ops}, which "
            f"{RUNTIME_NAMES[fmt]} does not have; re-export the model without "
            f"{'them' if len(info.custom_ops) > 1 else 'it'} (or with ops the runtime implements)"
        )
    shape = list(info.input_shape)
    if input_shape is None and None in shape and input_array_shape is not None:
        input_shape = list(input_array_shape)
    if input_shape is not None:
        want = parse_shape(input_shape)
        if fmt == "ncnn" and len(want) == 3:
            want = [1] + want
        if len(want) != len(shape):
            raise ArtifactError(
                f"--input-shape {'x'.join(map(str, want))} has {len(want)} dimensions but the input "
                f"'{info.input_name}' of {p.name} has {len(shape)} ({_shape_text(shape)})"
            )
        for i, (have, new) in enumerate(zip(shape, want)):
            if have is not None and have != new:
                raise ArtifactError(
                    f"--input-shape {'x'.join(map(str, want))} conflicts with {p.name}, whose input "
                    f"'{info.input_name}' is {_shape_text(shape)} (dimension {i} is fixed at {have})"
                )
        shape = want
    if None in shape:
        raise ArtifactError(
            f"the input '{info.input_name}' of {p.name} is {_shape_text(shape)}, with dynamic "
            "dimensions: give its size with --input-shape, e.g. --input-shape "
            f"{_example_shape(shape, info)}"
        )
    if len(shape) != 4:
        raise ArtifactError(
            f"the input '{info.input_name}' of {p.name} is {_shape_text(shape)}: mobileseg benches "
            "image models with one 4-D input (N x C x H x W or N x H x W x C)"
        )
    if shape[0] != 1:
        raise ArtifactError(
            f"the input of {p.name} has batch {shape[0]}: mobileseg benches batch 1 "
            f"(--input-shape 1x{'x'.join(map(str, shape[1:]))})"
        )
    info.input_shape = shape
    return info


def _shape_text(shape) -> str:
    return "x".join("?" if v is None else str(v) for v in shape)


def _example_shape(shape, info) -> str:
    nhwc = formats.layout(info.format) == "NHWC" or (len(shape) == 4 and shape[3] in (1, 3, 4))
    fill = [1, 512, 512, 3] if nhwc else [1, 3, 512, 512]
    if len(shape) != 4:
        fill = [1] * len(shape)
    return "x".join(str(s if s is not None else f) for s, f in zip(shape, fill))


# -- the input ---------------------------------------------------------------------------------------------------
def seeded_input(shape, dtype: str, layout: str, seed: int = INPUT_SEED):
    """The seeded input of an artifact whose input is ``shape`` (in ``layout``) and ``dtype`` (see the module doc)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    nchw = to_layout_shape(shape, layout, "NCHW")
    if dt.kind in "iu":
        info = np.iinfo(dt)
        x = rng.integers(info.min, int(info.max) + 1, size=nchw, dtype=np.int64).astype(dt)
    elif nchw[1] == 3:
        img = rng.uniform(0.0, 255.0, size=nchw)
        mean = np.asarray(IMAGENET_MEAN).reshape(1, 3, 1, 1)
        std = np.asarray(IMAGENET_STD).reshape(1, 3, 1, 1)
        x = ((img - mean) / std).astype(dt)
    else:
        x = rng.standard_normal(size=nchw).astype(dt)
    return convert_layout(x, "NCHW", layout)


def to_layout_shape(shape, src: str, dst: str) -> list:
    if src == dst or len(shape) != 4:
        return list(shape)
    return [shape[0], shape[3], shape[1], shape[2]] if dst == "NCHW" else [shape[0], shape[2], shape[3], shape[1]]


def convert_layout(x, src: str, dst: str):
    import numpy as np

    if src == dst or x.ndim != 4:
        return x
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if dst == "NCHW" else x.transpose(0, 2, 3, 1))


def load_npy(path, what: str):
    """An array from ``path`` (``--input`` / ``--reference``), or one sentence why not."""
    import numpy as np

    p = check_file(path, what)
    with open(p, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ArtifactError(f"{what} '{p}' is not a .npy file (no NUMPY header); save the array with numpy.save")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ArtifactError(
            f"{what} '{p}' is not a .npy array numpy can read ({_first_line(exc)}); save it with numpy.save"
        ) from None


def input_for(info: ArtifactInfo, given=None):
    """The input array of ``info``: ``given`` (an array from ``--input``), else the seeded one.

    ``given`` is used as it is when its shape is the input's; an image in the other layout (NHWC for NCHW, or the
    reverse) is transposed, and one without the batch axis gets it, each with a note in ``info.notes``. Anything
    else is refused: reshaping across axes would scramble the pixels. A dtype change is made only when every value
    survives it (an integer array into a float input, a narrower integer), with a note; float into an integer input
    is refused."""
    import numpy as np

    shape, layout = info.input_shape, info.layout
    if given is None:
        return seeded_input(shape, info.input_dtype, layout)
    x = np.asarray(given)
    have = _shape_text(list(x.shape))
    other = "NHWC" if layout == "NCHW" else "NCHW"
    if x.ndim == len(shape) - 1 and len(shape) == 4 and shape[0] == 1:
        x = x[np.newaxis]
        info.notes.append(f"--input {have} has no batch axis: it is used as 1x{have}")
    if list(x.shape) == list(shape):
        pass
    elif x.ndim == 4 and list(x.shape) == to_layout_shape(shape, layout, other):
        x = convert_layout(x, other, layout)
        info.notes.append(f"--input {have} is {other}: transposed to {info.name}'s {layout} {_shape_text(shape)}")
    else:
        raise ArtifactError(
            f"--input has shape {have} but {info.name} takes {_shape_text(shape)} ({layout}, or "
            f"{_shape_text(to_layout_shape(shape, layout, other))} in {other}); give an array of that "
            "shape (mobileseg never reshapes an input across axes)"
        )
    want = np.dtype(info.input_dtype)
    if x.dtype != want:
        x = _cast_input(x, want, info)
    return np.ascontiguousarray(x)


def _cast_input(x, want, info: ArtifactInfo):
    """``x`` as ``want`` when no value changes (float to float is a rounding, as numpy.save of float64 makes),
    else one sentence."""
    import numpy as np

    if x.dtype.kind == "f" and want.kind == "f":
        return x.astype(want)
    if x.dtype.kind in "iu" and want.kind in "iuf":
        if want.kind == "f":
            exact = 2 ** (np.finfo(want).nmant + 1)  # integers up to 2^24 (float32) are exact
            fits = x.size == 0 or (
                int(np.abs(x.astype(np.int64)).max()) <= exact if x.dtype.kind == "i" else int(x.max()) <= exact
            )
        else:
            lim = np.iinfo(want)
            fits = x.size == 0 or (int(x.min()) >= lim.min and int(x.max()) <= lim.max)
        if fits:
            info.notes.append(f"--input is {x.dtype}: converted to {info.name}'s {want} (every value unchanged)")
            return x.astype(want)
        raise ArtifactError(
            f"--input is {x.dtype} with values {int(x.min())}..{int(x.max())}, which {want} (the "
            f"input of {info.name}) cannot hold: save the array as {want}"
        )
    raise ArtifactError(f"--input is {x.dtype} but {info.name} takes {want}: save the array as {want}")


# -- staging -----------------------------------------------------------------------------------------------------
@dataclass
class StagedArtifact:
    """An artifact staged as an export folder: ``folder`` (with ``manifest.json``), its info and sha256."""

    info: ArtifactInfo
    folder: Path
    manifest: dict
    sha256: str
    source_files: list

    @property
    def format(self) -> str:
        return self.info.format

    @property
    def key_name(self) -> str:
        """What the record's cell key says instead of a model name: ``<file name>@<sha256[:12]>``."""
        return f"{self.info.name}@{self.sha256[:12]}"

    def record_artifact(self) -> dict:
        """The record's ``artifact`` field for this file (contract 4)."""
        i = self.info
        return {
            "source": "artifact",
            "name": i.name,
            "path": str(i.path.resolve()),
            "sha256": self.sha256,
            "files": [str(Path(f).resolve()) for f in self.source_files],
            "export_dir": str(self.folder),
            "manifest": str(self.folder / _manifest.FILE),
            "input": {"name": i.input_name, "shape": list(i.input_shape), "dtype": i.input_dtype, "layout": i.layout},
            "ops": sum(i.ops.values()) if i.ops else None,
        }


def stage(path, export_root="export", input_shape=None, given_input=None) -> StagedArtifact:
    """Inspect ``path`` and write its export folder under ``<export_root>/artifacts/``; ``given_input``: an array
    (``--input``), else the seeded input."""
    import numpy as np

    info = inspect(path, input_shape, None if given_input is None else given_input.shape)
    sha = sha256_file(info.path)
    root = Path(export_root) / STAGE_DIR
    folder = root / f"{_slug(info.name)}-{sha[:12]}"
    try:
        (folder / "reference").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(
            f"cannot write the staging folder {folder} ({exc.strerror or exc}): choose a writable "
            "folder with --export-dir"
        ) from None
    row = formats.FORMATS[info.format]
    dests = []
    for src, name in zip(info.files, row.files + tuple(Path(f).name for f in info.files[len(row.files) :])):
        dest = folder / name
        _link_or_copy(Path(src), dest)
        dests.append(str(dest))
    x = input_for(info, given_input)
    np.save(folder / _manifest.REFERENCE_INPUT, x)
    stale = folder / _manifest.REFERENCE_OUTPUT
    if stale.exists():  # staged folders never hold a reference: parity is the bench's (artifact_cells)
        stale.unlink()
    layout = info.layout
    nchw = to_layout_shape(info.input_shape, layout, "NCHW")
    man = {
        "schema_version": _manifest.SCHEMA_VERSION,
        "source": "artifact",
        "model": info.name,
        "artifact": {"name": info.name, "path": str(info.path.resolve()), "sha256": sha},
        "resolution": [int(nchw[2]), int(nchw[3])],
        "num_classes": None,
        "graph": "logits",
        "precision": "fp32",
        "weights": {"path": None, "sha256": None, "note": "weights inside the artifact"},
        "input": {
            "name": info.input_name,
            "shape": list(info.input_shape),
            "dtype": info.input_dtype,
            "layout": layout,
            "seed": None if given_input is not None else INPUT_SEED,
        },
        "output": {
            "name": info.output_name,
            "shape": info.output_shape if info.output_shape and None not in info.output_shape else None,
            "dtype": None,
        },
        "formats": {
            info.format: {
                "files": [_manifest.file_record(d, str(folder)) for d in dests],
                "input_name": info.input_name,
                "output_name": info.output_name,
                "op_histogram": info.ops,
                "converter": {"name": "external", "version": None},
                "ok": True,
                "error": None,
                "parity": {"checked": False},
            }
        },
        "parity_runtime": {},
        "versions": {},
        "notes": info.notes,
    }
    _manifest.write(folder, man)
    return StagedArtifact(info, folder, man, sha, list(info.files))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "artifact"


def _link_or_copy(src: Path, dest: Path) -> None:
    """Hard-link ``src`` to ``dest`` (a copy across file systems); a folder is keyed by the sha256, so an existing
    ``dest`` of the same size is the same file."""
    if dest.exists():
        if dest.stat().st_size == src.stat().st_size:
            return
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def describe(info: ArtifactInfo) -> str:
    """One line about an artifact's input (for progress notes)."""
    return (
        f"{info.name}: {info.format}, input '{info.input_name}' {_shape_text(info.input_shape)} "
        f"{info.input_dtype} {info.layout}"
    )
