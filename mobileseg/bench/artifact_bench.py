"""``run_artifacts``: bench files mobileseg did not write (``mobileseg bench --artifact PATH...``), with the parity
policy for them.

Each file is staged as an export folder (:mod:`mobileseg.bench.artifact`) and measured by the same target and
record code as registered models (:func:`mobileseg.bench.runner._measure_cell`), on the host or over ADB, with
every runtime of its format (``--runtimes`` narrows them). Parity, judged by :func:`mobileseg.parity.check`:

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
from ..errors import MissingDependencyError, MobilesegError
from ..results.paths import RUNS_DIR
from ..results.record import cell_key
from .artifact import ArtifactError, check_file, load_npy, shared_shapes, stage, to_layout_shape
from .suite import Cell

SWITCHES_FP16 = ("ncnn", "ncnn-vulkan")  # runtimes whose fp16 switches run an fp32 file at fp16
CROSS_OUTPUT = "reference/cross_format_output.npy"  # the first file's output, kept for --resume


@dataclass(frozen=True)
class ArtifactCell(Cell):
    """A cell of a user's file: ``model`` is the file's name, ``key_name`` ``<name>@<sha12>``."""

    key_name: str = ""

    def key(self, device: str) -> str:
        return cell_key(device, self.key_name, self.resolution, self.format, self.runtime, self.precision, self.graph,
                        self.threads)


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


class _Capture:
    """The target, keeping the output of the last cell it ran (the runner's cell code returns only the record)."""

    def __init__(self, target):
        self._target = target
        self.output = None

    def __getattr__(self, name):
        return getattr(self._target, name)

    def run_cell(self, *a, **kw):
        self.output = None
        cr = self._target.run_cell(*a, **kw)
        self.output = cr.output
        return cr


def _groups(staged: list, have_reference: bool) -> list[list]:
    """Files that are one model (same input in NCHW terms) share a group; with --reference each is its own."""
    if have_reference:
        return [[s] for s in staged]
    groups: dict = {}
    for s in staged:
        i = s.info
        groups.setdefault(tuple(to_layout_shape(i.input_shape, i.layout, "NCHW")), []).append(s)
    return list(groups.values())


def run_artifacts(paths, input_shape=None, input=None, reference=None, runtimes=None, precisions=None,
                  device: str = "local", threads: int = 1, warmup=None, repeats=None, min_time=None, cpu=None,
                  resume: bool = False, out_dir=RUNS_DIR, results_file=None, export_root="export", target=None,
                  progress=True, target_options=None, notes=None):
    """Measure the model files ``paths`` (see the module doc) and append one record per cell; return a
    :class:`mobileseg.bench.runner.BenchRun`. ``notes(text)``: where what the user should know goes (stderr)."""
    import sys

    from ..results.store import ResultStore
    from ..runtimes.base import check_threads
    from .env import describe_host
    from .progress import Progress
    from .runner import DEFAULT_REPEATS, DEFAULT_WARMUP, BenchRun, _measure_cell, results_file_for
    from .targets import open_own_target

    say = notes or (lambda text: print(f"mobileseg: {text}", file=sys.stderr))
    paths = [p for p in (paths or []) if str(p).strip()]
    if not paths:
        raise ArtifactError("--artifact needs at least one model file (.onnx, .tflite, .ncnn.param or .pte)")
    threads = check_threads(threads)
    warmup = DEFAULT_WARMUP if warmup is None else int(warmup)
    if repeats is None and min_time is None:
        repeats = DEFAULT_REPEATS
    if warmup < 0 or (repeats is not None and int(repeats) < 1) or (min_time is not None and float(min_time) <= 0):
        raise MobilesegError("--warmup must be 0 or more, --repeats at least 1 and --min-time more than 0 seconds")
    given = load_npy(input, "--input") if input else None
    ref = load_npy(reference, "--reference") if reference else None
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
    plan = []  # (staged, runtime)
    for s in staged:
        rts = runtimes_for(s.format, runtimes)
        if not rts:
            can = ", ".join(runtimes_for(s.format, [r.name for r in formats.RUNTIMES.values()]))
            raise MobilesegError(f"--runtimes {' '.join(runtimes)} names no runtime of {s.info.name} ({s.format}): "
                                 f"add one of {can}")
        plan += [(s, rt) for rt in rts]
        for rt in rts:  # a precision the file was not written at would only relabel it (and loosen the limit)
            bad = [pr for pr in precisions if pr != "fp32" and not (pr == "fp16" and rt in SWITCHES_FP16)]
            if bad:
                raise MobilesegError(f"--precisions {bad[0]} does not change what {rt} runs of {s.info.name}: a file "
                                     "from another tool runs at the precision it was written in (only ncnn's fp16 "
                                     "switches make fp16 of an fp32 file); leave --precisions out")
    groups = _groups(staged, ref is not None)
    for g in groups:
        if len(g) > 1:
            say(f"{', '.join(s.info.name for s in g)} take the same input: parity across formats, against the "
                f"output of {g[0].info.name} (the first given)")
        elif ref is None:
            say(f"{g[0].info.name}: parity not checked (no --reference OUT.npy, and no other file of this model)")
    group_of = {id(s): g for g in groups for s in g}

    own = target is None
    if own:
        target = open_own_target(device, target_options, cpu)
    run = BenchRun()
    run.skipped = []
    try:
        for rt in dict.fromkeys(rt for _, rt in plan):
            try:
                target.check_runtime(rt)
            except MissingDependencyError as exc:
                raise MissingDependencyError(f"runtime '{rt}' cannot run: {exc}") from None
        device_id = target.device_id()
        path = Path(results_file) if results_file else results_file_for(target, threads, out_dir)
        store = ResultStore(path)
        store.check_writable()
        run.path = path
        done = store.done_keys() if resume else set()
        cells = []
        for s, rt in plan:
            i = s.info
            res = tuple(s.manifest["resolution"])
            for pr in precisions:
                cells.append((s, ArtifactCell(i.name, res, rt, pr, "logits", threads, key_name=s.key_name)))
        prog = progress if isinstance(progress, Progress) else Progress(len(cells), enabled=bool(progress))
        if not resume and (again := store.repeat_note(c.key(device_id) for _, c in cells)):
            say(again)
        description, host = target.describe(), describe_host()
        capture = _Capture(target)
        cross: dict = {}  # id(group) -> (output, what it is)
        for s, cell in cells:
            key = cell.key(device_id)
            g = group_of[id(s)]
            first = len(g) > 1 and s is g[0]
            if key in done:
                run.skipped.append(key)
                prog.skip(cell.label())
                continue
            prog.start(cell.label())
            rec = _measure_cell(cell, key, capture, description, host, (s.folder, s.manifest), warmup, repeats,
                                min_time, None)
            rec.artifact = s.record_artifact()
            rec.extra["model_source"] = "artifact"
            if rec.status != "error":
                out = capture.output
                against = None
                if ref is not None:
                    against, ref_out = f"--reference {Path(reference).name}", ref
                elif len(g) > 1:
                    if id(g) not in cross:
                        cross[id(g)] = _cross_reference(g[0], out if first else None, cell.runtime)
                    ref_out, what = cross[id(g)]
                    if ref_out is not None and not (first and what.endswith(f"on {cell.runtime}")):
                        against = f"{what} (cross-format: several files of one model were given)"
                if against is not None and out is not None:
                    rec.parity = judge(out, ref_out, cell.precision, cell.runtime, against)
                elif out is not None:
                    why = ("this file's output is the reference of the other files of this model" if first else
                           f"{g[0].info.name}, the reference of this model's files, gave no output" if len(g) > 1
                           else "no --reference OUT.npy given and no other file of this model")
                    rec.parity = {"checked": False, "reason": f"parity not checked: {why}"}
                rec.status = ("ok" if rec.parity.get("ok", True) or rec.parity.get("checked") is False
                              else "parity_failed")
            store.append(rec)
            d = rec.to_dict()
            run.append(d)
            from .runner import _summary

            prog.finish(_summary(d), measured=d["status"] != "error")
        prog.close()
    finally:
        if own:
            target.close()
    return run


def _cross_reference(first, output, runtime: str):
    """The reference output of a group: the first file's output now (kept in its folder for ``--resume``), or the
    one kept by an earlier run."""
    import numpy as np

    kept = first.folder / CROSS_OUTPUT
    what_file = kept.with_suffix(".txt")
    if output is not None:
        np.save(kept, np.asarray(output))
        what = f"{first.info.name} on {runtime}"
        what_file.write_text(what)
        return np.asarray(output), what
    if kept.exists() and what_file.exists():
        return np.load(kept), what_file.read_text().strip()
    return None, ""
