"""Files users bring as a cell source of the bench loop (``mobileseg bench --artifact PATH...`` and suite groups
of ``artifacts``), with the parity policy for them.

Each file is staged as an export folder (:mod:`mobileseg.bench.artifact`) and measured by the same loop, target
and record code as registered models (:mod:`mobileseg.bench.runner`), on the host or over ADB, with every runtime
of its format (``--runtimes`` narrows them). Parity, judged by :func:`mobileseg.parity.check`:

1. ``--reference OUT.npy``: every file's output against it;
2. else, several files with the same input (in NCHW terms: an NHWC ``.tflite`` and an NCHW ``.onnx`` of one model
   count as one) are one model: the first file given is run first and its output is the reference of the others
   (cross-format parity; the record's ``parity.against`` says so);
3. else ``{"checked": false, "reason": "parity not checked: ..."}``.

Outputs are matched to the reference's layout before comparing (an NHWC output against an NCHW reference is
transposed, never just reshaped). Records carry ``model`` = the file's name, ``model_source: "artifact"`` and
``artifact`` {name, path, sha256, files, input}; their cell key names ``<file name>@<sha256[:12]>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import formats
from ..errors import MobilesegError
from ..results.record import cell_key
from .artifact import ArtifactError, check_file, load_npy, shared_shapes, stage, to_layout_shape
from .suite import Cell

SWITCHES_FP16 = ("ncnn", "ncnn-vulkan")  # runtimes whose fp16 switches run an fp32 file at fp16
CROSS_OUTPUT = "reference/cross_format_output.{device}.npy"  # the first file's output on a device, for --resume


@dataclass(frozen=True)
class ArtifactCell(Cell):
    """A cell of a user's file: ``model`` is the file's name, ``key_name`` ``<name>@<sha12>``."""

    key_name: str = ""

    def key(self, device: str) -> str:
        return cell_key(
            device, self.key_name, self.resolution, self.format, self.runtime, self.precision, self.graph, self.threads
        )


def runtimes_for(fmt: str, wanted=None) -> list[str]:
    """The runtimes that run ``fmt`` (the table's default ones, else its first; or those of ``wanted`` that run it)."""
    rows = [r for r in formats.RUNTIMES.values() if r.format == fmt]
    if wanted:
        keys = {formats.runtime_key(w) or w for w in wanted}
        return [r.name for r in rows if r.name in keys]
    return [r.name for r in rows if r.default] or [r.name for r in rows][:1]  # executorch: named only in bench


def align(out, ref):
    """``out`` in the layout of ``ref`` when only the layout differs (NHWC <-> NCHW), else as it is."""
    import numpy as np

    out = np.asarray(out)
    ref = np.asarray(ref)
    if out.shape == ref.shape or out.size != ref.size:
        return out
    if out.ndim == 4 and ref.ndim == 4:
        for perm in ((0, 3, 1, 2), (0, 2, 3, 1)):
            if out.transpose(perm).shape == ref.shape:
                return out.transpose(perm)
    return out  # parity.check drops unit axes, and names any other shape difference (never a reshape)


def judge(out, ref, precision: str, runtime: str, against: str) -> dict:
    from ..parity import check

    fig = check(align(out, ref), ref, precision, "logits", runtime=runtime)
    fig["against"] = against
    return fig


def _groups(staged: list, have_reference: bool) -> list[list]:
    """Files that are one model (same input in NCHW terms) share a group; with --reference each is its own."""
    if have_reference:
        return [[s] for s in staged]
    groups: dict = {}
    for s in staged:
        i = s.info
        groups.setdefault(tuple(to_layout_shape(i.input_shape, i.layout, "NCHW")), []).append(s)
    return list(groups.values())


def _say(text: str) -> None:
    import sys

    print(f"mobileseg: {text}", file=sys.stderr)


class ArtifactCells:
    """The cells of the model files one ``--artifact`` list (or one suite group of files) names: each file staged
    once as an export folder on the host, then measured by the bench loop on any target. The cross-format
    reference (the first file's output) is kept per device, so the fleet's workers can share one source."""

    kind = "artifacts"
    explicit_runtimes = True  # a runtime of a file that cannot run is an error, never left out

    def __init__(
        self,
        paths,
        input_shape=None,
        input=None,
        reference=None,
        runtimes=None,
        precisions=None,
        threads: int = 1,
        export_root="export",
        notes=None,
        strict: bool = True,
    ):
        say = notes or _say
        paths = [p for p in (paths or []) if str(p).strip()]
        if not paths:
            raise ArtifactError("--artifact needs at least one model file (.onnx, .tflite, .ncnn.param or .pte)")
        given = load_npy(input, "--input") if input else None
        self.reference = reference
        self.ref = load_npy(reference, "--reference") if reference else None
        shapes = shared_shapes(paths) if input_shape is None and given is None and len(paths) > 1 else {}
        staged, seen = [], set()
        for p in paths:
            shape = shapes.get(str(check_file(p, "the artifact")), input_shape)
            if shape is not input_shape:
                say(f"{Path(p).name} leaves its input size open: {'x'.join(map(str, shape))}, from the other files")
            s = stage(p, export_root, shape, given)
            if s.sha256 in seen:
                say(f"{s.info.name} is the same file as one given before: measured once")
                continue
            seen.add(s.sha256)
            staged.append(s)
            for n in s.info.notes:
                say(n)
        precisions = list(precisions or ["fp32"])
        for pr in precisions:
            if pr not in formats.PRECISIONS:
                raise MobilesegError(f"unknown precision '{pr}': choose from {', '.join(formats.PRECISIONS)}")
        self.cells, self._staged_of = [], {}
        for s in staged:
            rts = runtimes_for(s.format, runtimes)
            if not rts and strict:
                can = ", ".join(runtimes_for(s.format, [r.name for r in formats.RUNTIMES.values()]))
                raise MobilesegError(
                    f"--runtimes {' '.join(runtimes)} names no runtime of {s.info.name} ({s.format}): add one of {can}"
                )
            for rt in rts:  # a precision the file was not written at would only relabel it (and loosen the limit)
                bad = [pr for pr in precisions if pr != "fp32" and not (pr == "fp16" and rt in SWITCHES_FP16)]
                if bad:
                    raise MobilesegError(
                        f"--precisions {bad[0]} does not change what {rt} runs of {s.info.name}: a "
                        "file from another tool runs at the precision it was written in (only "
                        "ncnn's fp16 switches make fp16 of an fp32 file); leave --precisions out"
                    )
            res = tuple(s.manifest["resolution"])
            for rt in rts:
                for pr in precisions:
                    cell = ArtifactCell(s.info.name, res, rt, pr, "logits", threads, key_name=s.key_name)
                    self.cells.append(cell)
                    self._staged_of[cell] = s
        self.groups = _groups(staged, self.ref is not None)
        for g in self.groups:
            if len(g) > 1:
                say(
                    f"{', '.join(s.info.name for s in g)} take the same input: parity across formats, against the "
                    f"output of {g[0].info.name} (the first given)"
                )
            elif self.ref is None:
                say(f"{g[0].info.name}: parity not checked (no --reference OUT.npy, and no other file of this model)")
        self._group_of = {id(s): g for g in self.groups for s in g}
        self._cross: dict = {}  # (device id, id(group)) -> (output, what it is)

    def export(self, cell, formats_needed, progress) -> tuple[Path, dict]:
        """The staging folder of the cell's file (staged when the source was made)."""
        s = self._staged_of[cell]
        return s.folder, s.manifest

    def judge(self, cell, out, folder, manifest, target) -> dict:
        """Parity by the module's policy: against --reference, else the model's first file, else not checked."""
        s = self._staged_of[cell]
        g = self._group_of[id(s)]
        first = len(g) > 1 and s is g[0]
        against = ref_out = None
        if self.ref is not None:
            against, ref_out = f"--reference {Path(self.reference).name}", self.ref
        elif len(g) > 1:
            key = (target.device_id(), id(g))
            if key not in self._cross:
                self._cross[key] = _cross_reference(g[0], out if first else None, cell.runtime, key[0])
            ref_out, what = self._cross[key]
            if ref_out is not None and not (first and what.endswith(f"on {cell.runtime}")):
                against = f"{what} (cross-format: several files of one model were given)"
        if against is not None:
            return judge(out, ref_out, cell.precision, cell.runtime, against)
        why = (
            "this file's output is the reference of the other files of this model"
            if first
            else f"{g[0].info.name}, the reference of this model's files, gave no output"
            if len(g) > 1
            else "no --reference OUT.npy given and no other file of this model"
        )
        return {"checked": False, "reason": f"parity not checked: {why}"}

    def finish(self, rec, cell) -> None:
        """The record names the user's file (contract 4), not the staging folder."""
        rec.artifact = self._staged_of[cell].record_artifact()
        rec.extra["model_source"] = "artifact"


def artifact_sources(settings, suite, notes=None) -> list:
    """The files of ``settings`` (``--artifact``), else of its suite's artifact groups: one :class:`ArtifactCells`
    a group (its own runtimes and precisions, else the command line's; the command line's filter them in the plan,
    and a file of a suite none of whose runtimes is asked for is left out)."""
    common = dict(threads=settings.threads, export_root=settings.export_root, notes=notes)
    if settings.artifacts:
        return [
            ArtifactCells(
                settings.artifacts,
                settings.input_shape,
                settings.input,
                settings.reference,
                settings.runtimes,
                settings.precisions,
                **common,
            )
        ]
    if suite is None:
        return []
    return [
        ArtifactCells(
            g["artifacts"],
            g["input_shape"],
            g["input"],
            g["reference"],
            g["runtimes"] or settings.runtimes,
            g["precisions"] or settings.precisions,
            strict=False,
            **common,
        )
        for g in suite.artifact_groups
    ]


def _cross_reference(first, output, runtime: str, device_id: str):
    """The reference output of a group on one device: the first file's output now (kept in its folder for
    ``--resume``), or the one kept by an earlier run on that device."""
    import numpy as np

    kept = first.folder / CROSS_OUTPUT.format(device=device_id)
    what_file = kept.with_suffix(".txt")
    if output is not None:
        np.save(kept, np.asarray(output))
        what = f"{first.info.name} on {runtime}"
        what_file.write_text(what)
        return np.asarray(output), what
    if kept.exists() and what_file.exists():
        return np.load(kept), what_file.read_text().strip()
    return None, ""
