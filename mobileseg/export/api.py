"""``export_model``: the orchestration behind ``mobileseg export`` (contract 2 of docs/ARCHITECTURE.md).

Steps: check the options -> reuse what the cache still holds -> build the model and its reference
(:mod:`.reference`: registry, strict checkpoint, BatchNorm folded and verified, optional argmax head, seeded input)
-> one artifact per format (the converter module named in :mod:`mobileseg.formats`) -> run each artifact with its
host runtime at 1 thread and judge it with :func:`mobileseg.parity.check` -> ``manifest.json``
(:mod:`mobileseg.manifest`, its only reader and writer). An unchanged re-run reuses the artifacts: every format
entry carries a content hash of what made it (model, weights sha256, classes, resolution, precision, graph,
converter versions, mobileseg version) and the sha256 of its files. The manifest lists every format whose entry
still holds, including formats exported by earlier calls into the same folder and not asked for now.

PyTorch work runs on one thread (see :func:`torch_threads`); when TFLite and another format are converted, TFLite
converts in a child process alongside them (:class:`mobileseg.export._worker.Worker`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass, field

import numpy as np

from .. import formats as _formats
from .. import manifest as _manifest
from .. import parity as _parity_rules
from ..formats import DEFAULT_EXPORT_FORMATS, GRAPHS, PRECISIONS
from ..manifest import SCHEMA_VERSION, export_dir_name  # noqa: F401  (export_dir_name: re-exported)
from ._util import ConverterFailure, ExportError, package_version, remove_stale_files  # noqa: F401  (ExportError: re-exported)
from .reference import (
    INPUT_SEED,
    LOGIT_SPREAD,
    WEIGHTS_SEED,
    Reference,
    build_export_model,  # noqa: F401
    build_reference,
    fold_resolution,  # noqa: F401
    margin_figures,
    reference_input,  # noqa: F401
    reference_margins,  # noqa: F401
    top2,
)


@dataclass
class ExportJob:
    """One ``export_model`` call, checked: what to export, where, and what the cache key is made of."""

    spec: object
    resolution: tuple
    formats: list
    precision: str
    graph: str
    weights: str | None
    weights_sha: str | None
    num_classes: int | None
    out_dir: str
    parity: bool
    force: bool
    say: object
    t0: float
    versions: dict = field(default_factory=dict)
    parity_runtimes: dict = field(default_factory=dict)  # format -> the runtime that checks it, when not the host's
    created_dir: bool = False  # this call made out_dir: a failure removes it again when it is left empty
    int8: object = None  # int8 only: the mobileseg.export.quantize.Int8Job (calibration batch, layers kept float)

    @property
    def cache_fields(self) -> dict:
        h, w = self.resolution
        fields = {
            "model": self.spec.name,
            "weights_sha256": self.weights_sha,
            "num_classes": self.num_classes,
            "resolution": [h, w],
            "precision": self.precision,
            "graph": self.graph,
            "parity": bool(self.parity),
        }
        if self.int8 is not None:
            fields["int8"] = self.int8.cache_fields()
        return fields

    def cache_key(self, fmt: str) -> str:
        payload = dict(
            self.cache_fields,
            format=fmt,
            converter_versions=_converter(fmt).converter_versions(),
            mobileseg=self.versions["mobileseg"],
            schema_version=SCHEMA_VERSION,
        )
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class ExportResult:
    """What ``export_model`` did: the folder, its manifest, whether the cache was used, and whether all passed."""

    out_dir: str
    manifest: dict
    cached: bool
    seconds: float
    reused: list = field(default_factory=list)
    requested: list = field(default_factory=list)

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.out_dir, _manifest.FILE)

    @property
    def formats(self) -> dict:
        """Every format in the manifest: the ones asked for in this call and still-valid earlier ones."""
        return self.manifest["formats"]

    def _asked(self) -> dict:
        return {f: e for f, e in self.formats.items() if not self.requested or f in self.requested}

    @property
    def ok(self) -> bool:
        """Whether every format asked for in this call passed."""
        return all(e.get("ok") for e in self._asked().values())

    def failures(self) -> dict:
        return {f: e.get("error") or "parity check failed" for f, e in self._asked().items() if not e.get("ok")}

    def rows(self) -> list[dict]:
        rows = []
        for fmt, e in self.formats.items():
            p = e.get("parity") or {}
            size = sum(f["bytes"] for f in e.get("files", []))
            earlier = bool(self.requested) and fmt not in self.requested
            rows.append(
                {
                    "format": fmt,
                    "runtime": (e.get("runtime") or {}).get("name", ""),
                    "ok": "yes" if e.get("ok") else "NO",
                    "MB": f"{size / 1e6:.2f}" if size else "-",
                    "max_abs": _fmt(p.get("max_abs")),
                    "rel_l2": _fmt(p.get("rel_l2")),
                    "limit": _fmt(
                        p.get("limit_rel_l2") if "limit_argmax_agree" not in p else p.get("limit_argmax_agree")
                    ),
                    "argmax_agree": _fmt(p.get("argmax_agree"), ".4f"),
                    "top2_margin": _fmt(p.get("top2_margin_median"), ".3g"),
                    "seconds": _fmt(e.get("seconds", {}).get("convert"), ".1f"),
                    "cached": "earlier" if earlier else ("yes" if fmt in self.reused else ""),
                    "error": (e.get("error") or "")[:160],
                }
            )
        return rows


def _fmt(v, spec=".2e"):
    return "-" if v is None else format(v, spec)


def _converter(fmt: str):
    from importlib import import_module

    return import_module(f"{__package__}.{_formats.FORMATS[fmt].converter}")


def _versions(formats) -> dict:
    from .. import __version__

    v = {
        "mobileseg": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": package_version("torch"),
    }
    for fmt in formats:
        v.update(_converter(fmt).converter_versions())
    if "onnx" in formats:
        v["onnxruntime"] = package_version("onnxruntime")
    return v


def _prepare_out_dir(out_dir: str) -> bool:
    """Check that ``out_dir`` is writable (made when missing: returns True then); ``reference/`` is made when the
    reference is written, so an export that fails before leaves no empty folder behind (:func:`_remove_if_empty`)."""
    created = not os.path.isdir(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = os.path.join(out_dir, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise ExportError(
            f"cannot write to the output folder {out_dir} ({exc.strerror or exc}): "
            "choose a writable folder with --export-dir (or --out, the export folder itself)"
        ) from None
    return created


def _remove_if_empty(out_dir: str, created: bool) -> None:
    """Remove the folders an export that failed made and left empty (``reference/``, then the folder itself when
    this export made it)."""
    for d in (os.path.join(out_dir, "reference"), out_dir) if created else (os.path.join(out_dir, "reference"),):
        with contextlib.suppress(OSError):
            os.rmdir(d)  # only an empty folder is removed


def _check_folder_holds(out_dir: str, model: str, resolution, precision: str, graph: str) -> None:
    """One folder holds one export: refuse to write a ``precision`` (or other model, size, graph) export where a
    different one passed, which would replace its manifest and lose every earlier entry."""
    old = _manifest.read(out_dir)
    have = sorted(_manifest.ok_formats(old))
    if not have or old.get("source") == "artifact":
        return
    mine = {"model": model, "resolution": list(resolution), "precision": precision, "graph": graph}
    differ = [k for k in mine if (old.get(k) or _OLD_DEFAULTS.get(k)) != mine[k]]
    if differ:
        what = ", ".join(
            f"{k} {_text(old.get(k) or _OLD_DEFAULTS.get(k))} (this export: {_text(mine[k])})" for k in differ
        )
        raise ExportError(
            f"{out_dir} already holds another export ({', '.join(have)}; {what}): one folder holds "
            "one model, resolution, precision and graph, so give this export its own --out (or leave "
            "--out out: each gets export/<model>_<H>x<W>[_<precision>][_<graph>]), or delete that "
            "folder first"
        )


_OLD_DEFAULTS = {"precision": "fp32", "graph": "logits"}


def _text(v) -> str:
    return "x".join(map(str, v)) if isinstance(v, list) else str(v)


def check_artifact(
    fmt: str,
    entry: dict,
    manifest: dict,
    out_dir: str,
    ref: Reference,
    precision: str,
    graph: str,
    runtime: str | None = None,
) -> dict:
    """Run the ``fmt`` artifact at 1 thread with ``runtime`` (default: the format's host runtime) and judge it
    (:func:`mobileseg.parity.check`)."""
    from ..runtimes import get_runtime, runtime_for_format

    rt = get_runtime(runtime) if runtime else runtime_for_format(fmt)
    sess = rt.load(dict(manifest, _dir=out_dir), entry, threads=1, precision=precision)
    try:
        out = sess.run(ref.x)
        settings = dict(sess.settings)
    finally:
        sess.close()
    entry["runtime"] = {"name": rt.name, "version": rt.version(), "settings": settings}
    if precision == "int8":  # what other devices' int8 kernels are compared with (bench: host_int8_agreement)
        from .quantize import save_host_output

        entry["host_output"] = save_host_output(out_dir, fmt, out, rt.name)
    fig = _parity_rules.check(out, ref.ref, precision, graph, runtime=rt.name)
    if graph == "argmax":
        fig.update(margin_figures(ref.margins, None))
        return fig
    fig.update(margin_figures(ref.margins, fig.get("max_abs")))
    if fig.get("max_abs") is not None and ref.margins:
        # argmax on logits centred per class over the pixels (the same per-class constant off both): the raw
        # random-weight logits pick one class everywhere, which no error short of a gross one changes
        r = np.asarray(ref.ref, dtype=np.float64)
        mean = r.mean(axis=(0, 2, 3), keepdims=True) if ref.margins.get("centred") else 0.0
        o = np.asarray(out, dtype=np.float64).reshape(r.shape)
        fig["argmax_agree_centred"] = float(np.mean(np.argmax(o - mean, axis=1) == np.argmax(r - mean, axis=1)))
        # pixels whose class an error of this size could flip (a disagreement elsewhere is a real error)
        fig["flip_possible_share"] = float(np.mean(top2(r - mean) <= 2 * fig["max_abs"]))
    return fig


def _check_options(formats, precision, graph):
    formats = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    bad = [f for f in formats if f not in _formats.FORMATS]
    if bad or not formats:
        raise ExportError(f"unknown format {', '.join(bad) or '(none)'}: choose from {', '.join(_formats.FORMATS)}")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    if formats == ["torch"] and precision not in _formats.FORMATS["torch"].precisions:
        able = [f for f, row in _formats.FORMATS.items() if precision in row.precisions and f != "torch"]
        raise ExportError(
            f"--precision {precision} --formats torch would write only the fp32 model.pt (torch is "
            f"the fp32 eager reference at every precision): add a format written at {precision} "
            f"(--formats {','.join(able)}; torch then comes along as the reference)"
        )
    if graph not in GRAPHS:
        raise ExportError(f"unknown graph '{graph}': choose logits or argmax")
    return list(dict.fromkeys(formats))


def export_model(
    model: str,
    resolution=None,
    formats=DEFAULT_EXPORT_FORMATS,
    precision: str = "fp32",
    graph: str = "logits",
    weights: str | None = None,
    num_classes: int | None = None,
    out: str | None = None,
    parity: bool = True,
    force: bool = False,
    log=None,
    parity_runtimes=None,
    calib=None,
    calib_count: int | None = None,
    int8_keep_float=None,
    input_shape=None,
) -> ExportResult:
    """Export ``model`` at ``resolution`` to ``formats`` with a manifest, checking each artifact's parity.

    Args:
        model: registered model name.
        resolution: ``448``, ``"512x1024"`` or ``(H, W)``; default the model's default resolution.
        formats: names of :data:`mobileseg.formats.FORMATS` (list or comma-separated string); default
            ``onnx, ncnn, tflite`` (``torch`` saves the checked module itself, for the torch runtime).
        precision: ``"fp32"``, ``"fp16"`` (fp16 weights where the format stores them: see
            :data:`mobileseg.formats.FORMATS`) or ``"int8"`` (:mod:`mobileseg.export.quantize`).
        graph: ``"logits"`` (the model's own output) or ``"argmax"`` (resize to the input size + argmax).
        weights: checkpoint path (loaded strictly); None exports seeded random weights.
        num_classes: classes (default: the checkpoint's, else the spec's).
        out: output folder (default ``export/<model>_<H>x<W>[_<precision>][_<graph>]`` under the current folder).
        parity: run each artifact with its runtime at 1 thread and compare with PyTorch.
        force: ignore the cache and convert again.
        log: ``callable(str)`` for progress lines (default: silent).
        parity_runtimes: runtimes that check their format's artifact instead of its host runtime (e.g.
            ``["ncnn-vulkan"]``: the ncnn artifact is judged on the Vulkan device).
        calib, calib_count, int8_keep_float: int8 only (:mod:`mobileseg.export.quantize`): the calibration image
            folder (None: synthetic images, said so in the manifest), how many of its images, layers kept in float.
        input_shape: ``"1x3x512x512"`` for a user's factory ``model="pkg.mod:fn"`` (see
            :mod:`mobileseg.models.external`); its H x W is the resolution.

    Returns an :class:`ExportResult`; converter failures and parity failures are recorded in it (``ok`` False),
    user errors raise :class:`~mobileseg.errors.MobilesegError`.
    """
    with torch_threads(1):
        resolution = factory_resolution(model, input_shape, resolution)
        job = _make_job(model, resolution, formats, precision, graph, weights, num_classes, out, parity, force, log)
        from .quantize import int8_job

        try:
            job.int8 = int8_job(job, calib, calib_count, int8_keep_float)
            job.parity_runtimes = _check_parity_runtimes(parity_runtimes, job.formats) if parity else {}
            return _run(job)
        except BaseException:
            _remove_if_empty(job.out_dir, job.created_dir)
            raise


def factory_resolution(model: str, input_shape, resolution):
    """The resolution of a user's factory at ``input_shape`` (registered with that shape); registered models take
    ``resolution`` only."""
    from ..models.external import factory_spec, is_factory_name, parse_input_shape

    if input_shape is None:
        return resolution
    if not is_factory_name(model):
        raise ExportError(
            f"--input-shape is for a factory of your own (--model my_package.my_module:build_fn); {model} takes --res"
        )
    _, c, h, w = parse_input_shape(input_shape)
    if resolution is not None:
        from ..registry import parse_resolution

        if tuple(parse_resolution(resolution)) != (h, w):
            raise ExportError(f"--res {resolution} and --input-shape {input_shape} disagree: give one of them")
    factory_spec(model.strip(), input_shape)
    return (h, w)


def _check_parity_runtimes(names, formats) -> dict:
    """``{format: runtime}`` for ``--parity-runtimes``; one sentence for an unknown runtime, a format not exported
    or a runtime that cannot run here (no Vulkan device)."""
    from .. import formats as _formats
    from ..runtimes import get_runtime

    chosen = {}
    for name in [n for n in names.split(",") if n.strip()] if isinstance(names, str) else list(names or []):
        key = _formats.runtime_key(name)
        if key is None:
            raise ExportError(f"unknown parity runtime '{name}': choose from {', '.join(_formats.RUNTIMES)}")
        fmt = _formats.runtime_format(key)
        if fmt not in formats:
            raise ExportError(f"{key} checks {fmt} artifacts, which this export does not write: add {fmt} to --formats")
        get_runtime(key).check()
        chosen[fmt] = key
    return chosen


@contextlib.contextmanager
def torch_threads(n: int):
    """Run PyTorch with ``n`` intra-op threads, then restore the previous setting.

    Export runs its PyTorch work (model build, fold check, reference, tracing inside the converters) on one thread:
    on this loaded 2-core host, two OpenMP threads made a TopFormer-B forward pass up to 50x slower (threads
    spinning against other processes), while one thread costs at most 2x when the machine is idle.
    """
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _make_job(model, resolution, formats, precision, graph, weights, num_classes, out, parity, force, log) -> ExportJob:
    """Check every option (one clear error each) and turn the call into an :class:`ExportJob`."""
    from ..checkpoint import check_checkpoint_file, file_sha256
    from ..registry import get_spec, parse_resolution

    t0 = time.perf_counter()
    formats = _check_options(formats, precision, graph)
    spec = get_spec(model)
    h, w = parse_resolution(resolution) if resolution is not None else spec.default_resolution
    spec.check_resolution(h, w)
    for fmt in formats:
        _converter(fmt).check_available()
    weights_sha = None
    if weights is not None:
        weights = check_checkpoint_file(os.path.abspath(os.fspath(weights)))
        weights_sha = file_sha256(weights)
    out_dir = os.path.abspath(out or os.path.join("export", export_dir_name(spec.name, (h, w), precision, graph)))
    _check_folder_holds(out_dir, spec.name, (h, w), precision, graph)
    created = _prepare_out_dir(out_dir)
    return ExportJob(
        spec,
        (h, w),
        formats,
        precision,
        graph,
        weights,
        weights_sha,
        num_classes,
        out_dir,
        bool(parity),
        bool(force),
        log or (lambda _msg: None),
        t0,
        _versions(formats),
        created_dir=created,
    )


@dataclass
class _Plan:
    """What the cache still holds: formats reused now, earlier formats kept, formats to convert."""

    old: dict | None
    reused: dict
    kept: dict
    todo: list

    def entry_of(self, fmt: str) -> dict | None:
        return self.reused.get(fmt) or self.kept.get(fmt)


def _plan(job: ExportJob) -> _Plan:
    out_dir = job.out_dir
    old = _manifest.read(out_dir)
    ref_ok = all(
        os.path.isfile(os.path.join(out_dir, p)) for p in (_manifest.REFERENCE_INPUT, _manifest.REFERENCE_OUTPUT)
    )
    # every format's entry that still holds (same cache key, files intact, passed): formats asked for now are
    # reused unless `force`; formats exported earlier and not asked for now are kept in the manifest
    valid = {
        f: e
        for f in _formats.FORMATS
        if ref_ok
        and (e := _manifest.intact_entry(out_dir, old, f, job.cache_key(f)))
        and (f not in job.parity_runtimes or (e.get("runtime") or {}).get("name") == job.parity_runtimes[f])
    }
    reused = {} if job.force else {f: valid[f] for f in job.formats if f in valid}
    kept = {f: valid[f] for f in _formats.FORMATS if f in valid and f not in job.formats}
    return _Plan(old, reused, kept, [f for f in job.formats if f not in reused])


def _run(job: ExportJob) -> ExportResult:
    plan = _plan(job)
    h, w = job.resolution
    if plan.old and not plan.todo:
        manifest = dict(plan.old)
        manifest["formats"] = {f: plan.entry_of(f) for f in _formats.FORMATS if plan.entry_of(f)}
        manifest["parity_runtime"] = {
            f: (e.get("runtime") or {}).get("name")
            for f, e in manifest["formats"].items()
            if (e.get("runtime") or {}).get("name")
        }
        if manifest["formats"].keys() != (plan.old.get("formats") or {}).keys():
            _manifest.write(job.out_dir, manifest)  # drop entries whose artifacts no longer hold
        job.say(f"{job.spec.name} {h}x{w}: every artifact is up to date in {job.out_dir} (cache)")
        return ExportResult(
            job.out_dir, manifest, True, time.perf_counter() - job.t0, list(job.formats), list(job.formats)
        )
    if plan.kept:
        job.versions = {**(plan.old.get("versions") or {}), **job.versions}
    from ._worker import Worker

    # a format whose converter is slow and single-threaded (the table's convert_apart: TFLite's litert-torch)
    # converts in a child process while the others convert here, when there is another format to overlap with and
    # a second core; the child starts now and imports the converter while the model is built
    background = {}
    if len(plan.todo) > 1 and (os.cpu_count() or 1) > 1 and job.int8 is None:
        apart = [f for f in plan.todo if _formats.FORMATS[f].convert_apart]
        background = {f: Worker.spawn(f, job.say) for f in apart[:1]}  # one child: one second core
    try:
        return _build_convert_check(job, plan, background)
    finally:
        for worker in background.values():
            if worker is not None:
                worker.stop()  # only does something when the export was interrupted


def _new_manifest(job: ExportJob, ref: Reference) -> dict:
    h, w = job.resolution
    spec, info = job.spec, ref.info
    if job.weights is None:
        note = (
            f"random weights (torch.manual_seed({WEIGHTS_SEED})); classifier {info['classifier']} "
            + ("bias shifted by each class's mean over the reference pixels and " if info["classifier_shift"] else "")
            + f"scaled by {info['classifier_scale']} (logit std {LOGIT_SPREAD}); the top-2 margin "
            "in reference.margins and in each parity entry says how much the argmax agreement can show"
        )
    else:
        note = "checkpoint loaded with strict=True"
    random = job.weights is None
    return {
        "schema_version": SCHEMA_VERSION,
        "model": spec.name,
        "task": spec.task,
        "resolution": [h, w],
        "num_classes": info["num_classes"],
        "weights": {
            "path": job.weights,
            "sha256": job.weights_sha,
            "note": note,
            "classifier_scale": info["classifier_scale"] if random else None,
            "classifier_shift": info["classifier_shift"] if random else None,
            "seed": WEIGHTS_SEED if random else None,
        },
        "graph": job.graph,
        "precision": job.precision,
        "graph_note": (
            "logits at the model's own stride"
            if job.graph == "logits"
            else "logits bilinearly resized to the input size, then argmax over classes (int64 class map)"
        ),
        "input": {
            "name": "input",
            "shape": [1, 3, h, w],
            "dtype": "float32",
            "layout": "NCHW",
            "mean": list(spec.mean),
            "std": list(spec.std),
            "range": "RGB 0..255, then (x - mean) / std",
        },
        "output": {
            "name": ref.out_name,
            "shape": list(ref.ref.shape),
            "dtype": str(ref.ref.dtype),
            "stride": spec.output_stride if job.graph == "logits" and spec.task == "segmentation" else 1,
        },
        "fold": info["fold"],
        "complexity": info["complexity"],
        "reference": {
            "input": _manifest.REFERENCE_INPUT,
            "output": _manifest.REFERENCE_OUTPUT,
            "seed": INPUT_SEED,
            "margins": ref.margins,
        },
        "formats": {},
        "parity_runtime": {},
        "versions": job.versions,
        "export_seconds": None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cache": {"key_fields": sorted(job.cache_fields) + ["converter_versions", "mobileseg"]},
        **({"int8": job.int8.manifest_entry()} if job.int8 is not None else {}),
    }


def _build_convert_check(job: ExportJob, plan: _Plan, background: dict) -> ExportResult:
    h, w = job.resolution
    ref = build_reference(
        job.spec,
        job.resolution,
        job.graph,
        job.weights,
        job.num_classes,
        x=job.int8.parity_input() if job.int8 is not None else None,
    )
    os.makedirs(os.path.join(job.out_dir, "reference"), exist_ok=True)
    np.save(os.path.join(job.out_dir, _manifest.REFERENCE_INPUT), ref.x)
    np.save(os.path.join(job.out_dir, _manifest.REFERENCE_OUTPUT), ref.ref)
    fold = ref.info["fold"]
    job.say(
        f"{job.spec.name} {h}x{w}: BatchNorm folded ({fold['batchnorm_before']} BN, verify rel L2 "
        f"{fold['verify_rel_l2']:.1e} at {'x'.join(map(str, fold['verify_resolution']))}), "
        f"reference in {ref.seconds:.1f} s"
    )
    manifest = _new_manifest(job, ref)
    for fmt, worker in list(background.items()):
        if not worker.submit(
            _graph_for(ref.net, job.graph, fmt), ref.x, job.out_dir, job.precision, ref.out_name, job.say
        ):
            background[fmt] = None  # converts in this process
    for fmt in _formats.FORMATS:
        earlier = plan.entry_of(fmt)
        if earlier:
            manifest["formats"][fmt] = earlier
            manifest["parity_runtime"][fmt] = (earlier.get("runtime") or {}).get("name")
            if fmt in plan.reused:
                job.say(f"{fmt}: up to date (cache)")
        elif fmt in plan.todo:
            manifest["formats"][fmt] = None  # keeps the table's order in the manifest
    for fmt in sorted(plan.todo, key=lambda f: background.get(f) is not None):
        manifest["formats"][fmt] = _convert_and_check(job, fmt, ref, manifest, background.get(fmt))
    manifest["export_seconds"] = round(time.perf_counter() - job.t0, 3)
    _manifest.write(job.out_dir, manifest)
    return ExportResult(
        job.out_dir, manifest, False, time.perf_counter() - job.t0, list(plan.reused), list(job.formats)
    )


def _graph_for(net, graph: str, fmt: str):
    """The module converted for ``fmt``: ``net`` itself, or for the argmax graph the formulation ``fmt`` can run."""
    want = _formats.FORMATS[fmt].argmax  # ncnn: pnnx leaves torch.argmax unconverted (graphs.ArgmaxGraph)
    if graph == "argmax" and want != net.formulation:
        return net.with_formulation(want)
    return net


def _convert_and_check(job: ExportJob, fmt: str, ref: Reference, manifest: dict, worker) -> dict:
    """Convert the reference module to ``fmt`` (or collect ``worker``'s result) and check parity: the entry."""
    import torch

    say, out_dir = job.say, job.out_dir
    mod = _converter(fmt)
    entry = {
        "files": [],
        "input_name": None,
        "output_name": None,
        "op_histogram": {},
        "converter": {"name": mod.CONVERTER, "version": mod.converter_versions()},
        "ok": False,
        "error": None,
        "parity": {"checked": False},
        "seconds": {},
        "cache_key": job.cache_key(fmt),
    }
    from .quantize import artifact_precision

    module = _graph_for(ref.net, job.graph, fmt)
    precision = artifact_precision(fmt, job.precision)
    t = worker.started if worker else time.perf_counter()
    try:
        if worker is not None:
            conv = worker.result()
        else:
            remove_stale_files(out_dir, fmt)
            if job.int8 is not None and precision == "int8":
                conv = job.int8.convert(fmt, module, torch.from_numpy(ref.x), out_dir, ref.out_name, say)
            else:
                say(f"{fmt}: converting with {mod.CONVERTER} ...")
                conv = mod.convert(
                    module,
                    torch.from_numpy(ref.x),
                    out_dir,
                    precision=precision,
                    input_name="input",
                    output_name=ref.out_name,
                    log=say,
                )
    except ConverterFailure as exc:
        entry["error"] = str(exc)
        entry["seconds"]["convert"] = round(time.perf_counter() - t, 3)
        say(f"{fmt}: FAILED: {exc}")
        return entry
    entry["seconds"]["convert"] = round(time.perf_counter() - t, 3)
    if worker is not None:
        entry["seconds"]["converted_in"] = "child process (alongside the other formats)"
    entry.update(
        files=[_manifest.file_record(p, out_dir) for p in conv.files],
        input_name=conv.input_name,
        output_name=conv.output_name,
        op_histogram=conv.op_histogram,
        info=dict(conv.info),
    )
    if module is not ref.net:
        entry["info"]["argmax_formulation"] = module.formulation
        with torch.no_grad():
            same = np.array_equal(module(torch.from_numpy(ref.x)).numpy().astype(np.int64), ref.ref.astype(np.int64))
        entry["info"]["argmax_formulation_equals_torch_argmax"] = bool(same)
    if not job.parity:
        entry["ok"] = True
        entry["parity"] = {"checked": False, "reason": "--no-parity"}
        return entry
    t = time.perf_counter()
    try:
        entry["parity"] = check_artifact(
            fmt, entry, manifest, out_dir, ref, precision, job.graph, job.parity_runtimes.get(fmt)
        )
    except Exception as exc:  # the runtime cannot load or run the artifact
        entry["parity"] = {"checked": False}
        entry["error"] = (
            f"{fmt} artifact does not run in its runtime: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}"
        )
        say(f"{fmt}: FAILED: {entry['error']}")
        return entry
    entry["seconds"]["parity"] = round(time.perf_counter() - t, 3)
    manifest["parity_runtime"][fmt] = entry["runtime"]["name"]
    entry["ok"] = bool(entry["parity"]["ok"])
    if not entry["ok"]:
        entry["error"] = "parity check failed (the artifact is kept for inspection)"
    say(f"{fmt}: {'ok' if entry['ok'] else 'FAILED'} (convert {entry['seconds']['convert']:.1f} s)")
    return entry
