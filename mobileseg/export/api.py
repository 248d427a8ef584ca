"""``export_model``: the Python API behind ``mobileseg export`` (contract 2 of docs/ARCHITECTURE.md).

Steps: build the model (registry, strict checkpoint) -> fold BatchNorm (verified) -> optional argmax head -> seeded
reference input/output -> one artifact per format -> run each artifact with its own runtime at 1 thread and compare
with :func:`mobileseg.parity.compare` -> ``manifest.json``. An unchanged re-run reuses the artifacts: every format
entry carries a content hash of what made it (model, weights sha256, classes, resolution, precision, graph,
converter versions, mobileseg version) and the sha256 of its files. The manifest lists every format whose entry
still holds, including formats exported by earlier calls into the same folder and not asked for now.

PyTorch work runs on one thread (see :func:`torch_threads`); when TFLite and another format are converted, TFLite
converts in a child process alongside them (:class:`_Worker`).
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

from ..errors import MobilesegError
from ..parity import REL_L2_LIMITS, compare
from ._util import ConverterFailure, package_version, sha256_file

SCHEMA_VERSION = 1
FORMATS = ("onnx", "ncnn", "tflite")
PRECISIONS = ("fp32", "fp16")
GRAPHS = ("logits", "argmax")
# share of pixels whose class must agree, for the argmax graph (its output has no logits to take an L2 of)
ARGMAX_AGREE_LIMITS = {"fp32": 0.999, "fp16": 0.98}
# random weights give flat logits: the classifier is scaled so logits have this standard deviation
LOGIT_SPREAD = 4.0
INPUT_SEED = 0
WEIGHTS_SEED = 0
_FORMAT_EXTRA = {"onnx": "onnx", "ncnn": "ncnn", "tflite": "tflite"}


class ExportError(MobilesegError):
    """Bad export options or an unusable output folder."""


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
        return os.path.join(self.out_dir, "manifest.json")

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
            rows.append({"format": fmt, "runtime": (e.get("runtime") or {}).get("name", ""),
                         "ok": "yes" if e.get("ok") else "NO", "MB": f"{size / 1e6:.2f}" if size else "-",
                         "max_abs": _fmt(p.get("max_abs")), "rel_l2": _fmt(p.get("rel_l2")),
                         "limit": _fmt(p.get("limit_rel_l2") if "limit_argmax_agree" not in p
                                       else p.get("limit_argmax_agree")),
                         "argmax_agree": _fmt(p.get("argmax_agree"), ".4f"),
                         "top2_margin": _fmt(p.get("top2_margin_median"), ".3g"),
                         "seconds": _fmt(e.get("seconds", {}).get("convert"), ".1f"),
                         "cached": "earlier" if earlier else ("yes" if fmt in self.reused else ""),
                         "error": (e.get("error") or "")[:160]})
        return rows


def _fmt(v, spec=".2e"):
    return "-" if v is None else format(v, spec)


def export_dir_name(model: str, resolution, precision: str = "fp32", graph: str = "logits") -> str:
    h, w = resolution
    name = f"{model}_{h}x{w}"
    if precision != "fp32":
        name += f"_{precision}"
    if graph != "logits":
        name += f"_{graph}"
    return name


def reference_input(spec, resolution, seed: int = INPUT_SEED) -> np.ndarray:
    """A seeded image (uniform pixels 0..255) normalised with the model's mean/std: float32 1 x 3 x H x W."""
    h, w = resolution
    rng = np.random.default_rng(seed)
    img = rng.uniform(0.0, 255.0, size=(1, 3, h, w))
    mean = np.asarray(spec.mean, dtype=np.float64).reshape(1, 3, 1, 1)
    std = np.asarray(spec.std, dtype=np.float64).reshape(1, 3, 1, 1)
    return ((img - mean) / std).astype(np.float32)


def _argmax_module(model, size, formulation: str = "argmax"):
    from .graphs import ArgmaxGraph

    return ArgmaxGraph(model, size, formulation).eval()


# the argmax graph each format is converted from (ncnn: pnnx leaves torch.argmax unconverted: graphs.ArgmaxGraph)
FORMAT_ARGMAX = {"onnx": "argmax", "ncnn": "min-index", "tflite": "argmax"}


def _final_layer(model, example):
    """Name of the Conv/Linear whose output is the model's output (the classifier), or None."""
    import torch
    from torch import nn

    seen = {}
    handles = [m.register_forward_hook(lambda mod, a, out, n=n: seen.__setitem__(id(out), (n, out)))
               for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            out = model(example)
    finally:
        for h in handles:
            h.remove()
    hit = seen.get(id(out))
    return (hit[0] if hit else None), out


def fold_resolution(spec, resolution) -> tuple[int, int]:
    """The smallest square size ``spec`` accepts (at least 64), or ``resolution`` when that is not smaller."""
    m = int(getattr(spec, "size_multiple", 32) or 32)
    side = -(-max(int(getattr(spec, "min_size", 64) or 64), 64) // m) * m
    try:
        spec.check_resolution(side, side)
    except Exception:
        return tuple(resolution)
    return (side, side) if side * side < resolution[0] * resolution[1] else tuple(resolution)


def build_export_model(name: str, resolution, num_classes=None, weights=None, graph: str = "logits",
                       classifier_scale=None, example=None, classifier_shift=None):
    """The exact PyTorch model that is exported: ``(model, info)``.

    Random weights (no ``weights``) are drawn after ``torch.manual_seed(WEIGHTS_SEED)``; then the classifier is set
    up so the reference class map is worth comparing (see :func:`_spread_classifier`); ``classifier_scale`` and
    ``classifier_shift`` replay recorded values. BatchNorm is folded (verified at the smallest size the model
    accepts: folding does not depend on the resolution) before the optional argmax head is added.
    """
    import torch

    from ..registry import create_model
    from .fold import fold_batchnorm

    h, w = resolution
    if weights is None:
        torch.manual_seed(WEIGHTS_SEED)
    model = create_model(name, num_classes=num_classes, weights=weights)
    spec = model.spec
    if example is None:
        example = torch.from_numpy(reference_input(spec, (h, w)))
    fold_res = fold_resolution(spec, (h, w))
    fold_example = example if fold_res == (h, w) else torch.from_numpy(reference_input(spec, fold_res))
    folded = fold_batchnorm(model, fold_example)
    folded.fold_report["verify_resolution"] = list(fold_res)
    info = {"fold": folded.fold_report, "num_classes": spec.num_classes, "classifier": None,
            "classifier_scale": None, "classifier_shift": None}
    if weights is None:
        info.update(_spread_classifier(folded, example, classifier_scale, classifier_shift,
                                       centre=graph == "argmax"))
    if graph == "argmax":
        folded = _argmax_module(folded, (h, w))
    folded.eval()
    return folded, info


def _spread_classifier(model, example, scale=None, shift=None, centre=False) -> dict:
    """Scale (and for the argmax graph, centre) a random-weight classifier; returns what was done (for the manifest).

    Random weights give spatially flat logits: every pixel's logits are nearly the same vector (per-class offsets
    hundreds to 1e9 times larger than what varies with the image), so the reference class map is one class
    everywhere and argmax agreement is 1.0 whatever the artifact does to the features. Scaling the classifier does
    not change that (logits and their errors scale alike): the scale only puts max_abs on a common footing (logit
    std ``LOGIT_SPREAD``). For the logits graph the weights are left otherwise as drawn (so relative L2 is that of
    the model's own logits) and parity compares argmax on logits centred per class over the pixels (see
    :func:`reference_margins`). The argmax graph has only its class map to compare, so there (``centre``) the
    classifier's bias is shifted by each class's mean over the reference pixels: the class map follows the image.
    """
    import torch

    layer, out = _final_layer(model, example)
    if layer is None:
        return {}
    mod = model.get_submodule(layer)
    o = out.double()
    spatial = o.dim() == 4 and o.shape[2] * o.shape[3] > 1
    if shift is None and centre and spatial:
        shift = [float(v) for v in o.mean(dim=(0, 2, 3)).float()]
    if shift is not None:
        o = o - torch.tensor(shift, dtype=torch.float64).view(1, -1, *([1] * (o.dim() - 2)))
    if scale is None:
        std = float(o.std())
        scale = float(f"{LOGIT_SPREAD / std:.6g}") if std > 0 else 1.0
    with torch.no_grad():
        if shift is not None:
            b = mod.bias.double() if mod.bias is not None else torch.zeros(mod.weight.shape[0], dtype=torch.float64)
            b = (b - torch.tensor(shift, dtype=torch.float64)) * scale
            if mod.bias is None:
                mod.bias = torch.nn.Parameter(b.to(mod.weight.dtype), requires_grad=False)
            else:
                mod.bias.copy_(b.to(mod.bias.dtype))
        elif mod.bias is not None:
            mod.bias.mul_(scale)
        mod.weight.mul_(scale)
    return {"classifier": layer, "classifier_scale": scale, "classifier_shift": shift}


def centred(logits) -> np.ndarray:
    """Logits minus each class's mean over the pixels (float64): what varies with the image."""
    a = np.asarray(logits, dtype=np.float64)
    if a.ndim == 4 and a.shape[2] * a.shape[3] > 1:
        return a - a.mean(axis=(0, 2, 3), keepdims=True)
    return a


def _top2(a: np.ndarray) -> np.ndarray:
    top = np.partition(a, a.shape[1] - 2, axis=1)
    return (top[:, -1] - top[:, -2]).ravel()


def reference_margins(logits) -> dict:
    """How much an argmax comparison on these reference logits can show.

    ``classes_raw``/``top_class_share_raw``: the class map of the logits as they are (random weights: often one
    class everywhere). The rest is for the logits centred per class over the pixels (:func:`centred`), on which
    parity compares argmax: top-2 margin median/p10/min and the number of classes in that map.
    """
    a = np.asarray(logits, dtype=np.float64)
    if a.ndim < 2 or a.shape[1] < 2:
        return {}
    raw = np.bincount(np.argmax(a, axis=1).ravel())
    c = centred(a)
    margin = _top2(c)
    counts = np.bincount(np.argmax(c, axis=1).ravel())
    return {"top2_margin_median": float(np.median(margin)), "top2_margin_p10": float(np.percentile(margin, 10)),
            "top2_margin_min": float(margin.min()), "classes": int(np.count_nonzero(counts)),
            "top_class_share": float(counts.max() / counts.sum()), "classes_raw": int(np.count_nonzero(raw)),
            "top_class_share_raw": float(raw.max() / raw.sum()), "pixels": int(counts.sum()),
            "centred": bool(a.ndim == 4 and a.shape[2] * a.shape[3] > 1)}


def _margin_figures(margins: dict, max_abs) -> dict:
    if not margins:
        return {}
    fig = {"top2_margin_median": margins["top2_margin_median"], "ref_classes": margins["classes"]}
    if max_abs is not None:
        fig["margin_over_max_abs"] = (margins["top2_margin_median"] / max_abs) if max_abs > 0 else None
    return fig


def _converter(fmt: str):
    from importlib import import_module

    return import_module(f"{__package__}.{fmt}")


def _file_record(path: str, out_dir: str) -> dict:
    return {"path": os.path.relpath(path, out_dir), "bytes": os.path.getsize(path), "sha256": sha256_file(path)}


def _versions(formats) -> dict:
    from .. import __version__

    v = {"mobileseg": __version__, "python": platform.python_version(), "numpy": np.__version__,
         "torch": package_version("torch")}
    for fmt in formats:
        v.update(_converter(fmt).converter_versions())
    if "onnx" in formats:
        v["onnxruntime"] = package_version("onnxruntime")
    return v


def _cache_key(base: dict, fmt: str, versions: dict) -> str:
    conv = _converter(fmt).converter_versions()
    payload = dict(base, format=fmt, converter_versions=conv, mobileseg=versions["mobileseg"],
                   schema_version=SCHEMA_VERSION)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _cached_entry(out_dir: str, old: dict | None, fmt: str, key: str) -> dict | None:
    """The old manifest's entry for ``fmt`` when its key matches and every file is intact."""
    if not old:
        return None
    entry = (old.get("formats") or {}).get(fmt)
    if not entry or entry.get("cache_key") != key or not entry.get("ok"):
        return None
    for f in entry.get("files", []):
        p = os.path.join(out_dir, f["path"])
        if not os.path.isfile(p) or os.path.getsize(p) != f["bytes"] or sha256_file(p) != f["sha256"]:
            return None
    return entry


def _prepare_out_dir(out_dir: str) -> None:
    try:
        os.makedirs(os.path.join(out_dir, "reference"), exist_ok=True)
        probe = os.path.join(out_dir, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise ExportError(f"cannot write to the output folder {out_dir} ({exc.strerror or exc}): "
                          "choose a writable folder with --out") from None


def _read_manifest(out_dir: str) -> dict | None:
    try:
        with open(os.path.join(out_dir, "manifest.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _parity(fmt: str, out_dir: str, manifest: dict, entry: dict, precision: str, graph: str, x, ref,
            margins: dict) -> dict:
    from ..runtimes import runtime_for_format

    rt = runtime_for_format(fmt)
    man = dict(manifest, _dir=out_dir)
    sess = rt.load(man, entry, threads=1, precision=precision)
    try:
        out = sess.run(x)
        settings = dict(sess.settings)
    finally:
        sess.close()
    entry["runtime"] = {"name": rt.name, "version": rt.version(), "settings": settings}
    if graph == "argmax":
        out = np.asarray(out).reshape(ref.shape)
        agree = float(np.mean(out.astype(np.int64) == ref.astype(np.int64)))
        limit = ARGMAX_AGREE_LIMITS[precision]
        diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
        return {"ok": agree >= limit, "argmax_agree": agree, "limit_argmax_agree": limit,
                "max_abs": float(diff.max()), "rel_l2": None, "limit_rel_l2": None, "what": "class map",
                **_margin_figures(margins, None)}
    fig = compare(out, ref, precision)
    fig.update(_margin_figures(margins, fig.get("max_abs")))
    if fig.get("max_abs") is not None and margins:
        # argmax on logits centred per class over the pixels (the same per-class constant off both): the raw
        # random-weight logits pick one class everywhere, which no error short of a gross one changes
        r = np.asarray(ref, dtype=np.float64)
        mean = r.mean(axis=(0, 2, 3), keepdims=True) if margins.get("centred") else 0.0
        o = np.asarray(out, dtype=np.float64).reshape(r.shape)
        fig["argmax_agree_centred"] = float(np.mean(np.argmax(o - mean, axis=1) == np.argmax(r - mean, axis=1)))
        # pixels whose class an error of this size could flip (a disagreement elsewhere is a real error)
        fig["flip_possible_share"] = float(np.mean(_top2(r - mean) <= 2 * fig["max_abs"]))
    return fig


def _check_options(formats, precision, graph):
    formats = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ExportError(f"unknown format {', '.join(bad) or '(none)'}: choose from {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision '{precision}': choose fp32 or fp16")
    if graph not in GRAPHS:
        raise ExportError(f"unknown graph '{graph}': choose logits or argmax")
    return list(dict.fromkeys(formats))


def export_model(model: str, resolution=None, formats=FORMATS, precision: str = "fp32", graph: str = "logits",
                 weights: str | None = None, num_classes: int | None = None, out: str | None = None,
                 parity: bool = True, force: bool = False, log=None) -> ExportResult:
    """Export ``model`` at ``resolution`` to ``formats`` with a manifest, checking each artifact's parity.

    Args:
        model: registered model name.
        resolution: ``448``, ``"512x1024"`` or ``(H, W)``; default the model's default resolution.
        formats: subset of ``("onnx", "ncnn", "tflite")`` (list or comma-separated string).
        precision: ``"fp32"`` or ``"fp16"`` (fp16 weights for ncnn and TFLite).
        graph: ``"logits"`` (the model's own output) or ``"argmax"`` (resize to the input size + argmax).
        weights: checkpoint path (loaded strictly); None exports seeded random weights.
        num_classes: classes (default: the checkpoint's, else the spec's).
        out: output folder (default ``export/<model>_<H>x<W>[_<precision>][_<graph>]`` under the current folder).
        parity: run each artifact with its runtime at 1 thread and compare with PyTorch.
        force: ignore the cache and convert again.
        log: ``callable(str)`` for progress lines (default: silent).

    Returns an :class:`ExportResult`; converter failures and parity failures are recorded in it (``ok`` False),
    user errors raise :class:`~mobileseg.errors.MobilesegError`.
    """
    with torch_threads(1):
        return _export_model(model, resolution, formats, precision, graph, weights, num_classes, out, parity,
                             force, log)


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


def _export_model(model, resolution, formats, precision, graph, weights, num_classes, out, parity, force,
                  log) -> ExportResult:
    from ..checkpoint import file_sha256
    from ..errors import CheckpointError
    from ..registry import get_spec, parse_resolution

    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    formats = _check_options(formats, precision, graph)
    spec = get_spec(model)
    h, w = parse_resolution(resolution) if resolution is not None else spec.default_resolution
    spec.check_resolution(h, w)
    for fmt in formats:
        _converter(fmt).check_available()
    weights_sha = None
    if weights is not None:
        weights = os.path.abspath(os.fspath(weights))
        if not os.path.isfile(weights):
            raise CheckpointError(f"checkpoint file not found: {weights}")
        weights_sha = file_sha256(weights)
    out_dir = os.path.abspath(out or os.path.join("export", export_dir_name(spec.name, (h, w), precision, graph)))
    _prepare_out_dir(out_dir)
    versions = _versions(formats)
    base = {"model": spec.name, "weights_sha256": weights_sha, "num_classes": num_classes, "resolution": [h, w],
            "precision": precision, "graph": graph, "parity": bool(parity)}
    old = _read_manifest(out_dir)
    ref_ok = all(os.path.isfile(os.path.join(out_dir, "reference", f)) for f in ("input.npy", "output.npy"))
    # every format's entry that still holds (same cache key, files intact, passed): formats asked for now are
    # reused unless `force`; formats exported earlier and not asked for now are kept in the manifest
    valid = {f: e for f in FORMATS if ref_ok and (e := _cached_entry(out_dir, old, f, _cache_key(base, f, versions)))}
    reused = {} if force else {f: valid[f] for f in formats if f in valid}
    kept = {f: valid[f] for f in FORMATS if f in valid and f not in formats}
    if old and len(reused) == len(formats):
        manifest = dict(old)
        manifest["formats"] = {f: valid[f] for f in FORMATS if f in valid}
        manifest["parity_runtime"] = {f: (e.get("runtime") or {}).get("name") for f, e in manifest["formats"].items()
                                      if (e.get("runtime") or {}).get("name")}
        if manifest["formats"].keys() != (old.get("formats") or {}).keys():
            _write_manifest(out_dir, manifest)  # drop entries whose artifacts no longer hold
        say(f"{spec.name} {h}x{w}: every artifact is up to date in {out_dir} (cache)")
        return ExportResult(out_dir, manifest, True, time.perf_counter() - t0, list(formats), list(formats))
    if kept:
        versions = {**(old.get("versions") or {}), **versions}

    import torch

    todo = [f for f in formats if f not in reused]
    # TFLite (litert-torch: the slowest converter, one thread) converts in a child process while the others
    # convert here, when there is another format to overlap with and a second core; the child starts now and
    # imports the converter while the model is built
    background = {}
    if "tflite" in todo and len(todo) > 1 and (os.cpu_count() or 1) > 1:
        background["tflite"] = _Worker.spawn("tflite", say)
    try:
        return _build_convert_check(spec, (h, w), formats, precision, graph, weights, weights_sha, num_classes,
                                    out_dir, parity, base, versions, reused, kept, todo, background, say, t0)
    finally:
        for worker in background.values():
            if worker is not None:
                worker.stop()  # only does something when the export was interrupted


def _build_convert_check(spec, res, formats, precision, graph, weights, weights_sha, num_classes, out_dir, parity,
                         base, versions, reused, kept, todo, background, say, t0) -> ExportResult:
    import torch

    h, w = res
    x = reference_input(spec, (h, w))
    t_build = time.perf_counter()
    net, info = build_export_model(spec.name, (h, w), num_classes=num_classes, weights=weights, graph=graph,
                                   example=torch.from_numpy(x))
    with torch.no_grad():
        xt = torch.from_numpy(x)
        if graph == "argmax":
            logits = net.logits(xt)
            ref = logits.argmax(dim=1).numpy()
        else:
            logits = net(xt)
            ref = logits.numpy()
    margins = reference_margins(logits.numpy()) if spec.task == "segmentation" or logits.dim() == 2 else {}
    build_seconds = time.perf_counter() - t_build
    np.save(os.path.join(out_dir, "reference", "input.npy"), x)
    np.save(os.path.join(out_dir, "reference", "output.npy"), ref)
    say(f"{spec.name} {h}x{w}: BatchNorm folded ({info['fold']['batchnorm_before']} BN, verify rel L2 "
        f"{info['fold']['verify_rel_l2']:.1e} at {'x'.join(map(str, info['fold']['verify_resolution']))}), "
        f"reference in {build_seconds:.1f} s")
    n_cls = info["num_classes"]
    if weights is None:
        note = (f"random weights (torch.manual_seed({WEIGHTS_SEED})); classifier {info['classifier']} "
                + ("bias shifted by each class's mean over the reference pixels and " if info["classifier_shift"]
                   else "") + f"scaled by {info['classifier_scale']} (logit std {LOGIT_SPREAD}); the top-2 margin "
                "in reference.margins and in each parity entry says how much the argmax agreement can show")
    else:
        note = "checkpoint loaded with strict=True"
    out_name = "classes" if graph == "argmax" else "logits"
    manifest = {
        "schema_version": SCHEMA_VERSION, "model": spec.name, "task": spec.task, "resolution": [h, w],
        "num_classes": n_cls,
        "weights": {"path": weights, "sha256": weights_sha, "note": note,
                    "classifier_scale": info["classifier_scale"] if weights is None else None,
                    "classifier_shift": info["classifier_shift"] if weights is None else None,
                    "seed": WEIGHTS_SEED if weights is None else None},
        "graph": graph, "precision": precision,
        "graph_note": ("logits at the model's own stride" if graph == "logits" else
                       "logits bilinearly resized to the input size, then argmax over classes (int64 class map)"),
        "input": {"name": "input", "shape": [1, 3, h, w], "dtype": "float32", "layout": "NCHW",
                  "mean": list(spec.mean), "std": list(spec.std), "range": "RGB 0..255, then (x - mean) / std"},
        "output": {"name": out_name, "shape": list(ref.shape), "dtype": str(ref.dtype),
                   "stride": spec.output_stride if graph == "logits" and spec.task == "segmentation" else 1},
        "fold": info["fold"],
        "reference": {"input": "reference/input.npy", "output": "reference/output.npy", "seed": INPUT_SEED,
                      "margins": margins},
        "formats": {}, "parity_runtime": {}, "versions": versions, "export_seconds": None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cache": {"key_fields": sorted(base) + ["converter_versions", "mobileseg"]},
    }
    for fmt, worker in list(background.items()):
        if not worker.submit(_graph_for(net, graph, fmt), x, out_dir, precision, out_name, say):
            background[fmt] = None  # converts in this process
    for fmt in FORMATS:
        if fmt in reused:
            manifest["formats"][fmt] = reused[fmt]
            manifest["parity_runtime"][fmt] = (reused[fmt].get("runtime") or {}).get("name")
            say(f"{fmt}: up to date (cache)")
        elif fmt in kept:
            manifest["formats"][fmt] = kept[fmt]
            manifest["parity_runtime"][fmt] = (kept[fmt].get("runtime") or {}).get("name")
        elif fmt in todo:
            manifest["formats"][fmt] = None  # keeps the FORMATS order in the manifest
    for fmt in sorted(todo, key=lambda f: background.get(f) is not None):
        manifest["formats"][fmt] = _convert_and_check(fmt, net, graph, x, ref, margins, out_dir, manifest,
                                                      precision, out_name, _cache_key(base, fmt, versions),
                                                      parity, background.get(fmt), say)
    manifest["export_seconds"] = round(time.perf_counter() - t0, 3)
    _write_manifest(out_dir, manifest)
    return ExportResult(out_dir, manifest, False, time.perf_counter() - t0, list(reused), list(formats))


def _graph_for(net, graph: str, fmt: str):
    """The module converted for ``fmt``: ``net`` itself, or for the argmax graph the formulation ``fmt`` can run."""
    if graph == "argmax" and FORMAT_ARGMAX[fmt] != net.formulation:
        return net.with_formulation(FORMAT_ARGMAX[fmt])
    return net


class _Worker:
    """A conversion in a child process (see :mod:`mobileseg.export._worker`): ``spawn``, ``submit``, ``result``."""

    def __init__(self, fmt, proc, job, log):
        self.fmt, self.proc, self.job, self.log, self.started = fmt, proc, job, log, None

    @classmethod
    def spawn(cls, fmt, say):
        import subprocess
        import sys
        import tempfile

        job = tempfile.TemporaryDirectory(prefix=f"mobileseg-{fmt}-job-")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        # the child's output goes to a file: a pipe nobody reads until the end could fill up and stall the child
        log = open(os.path.join(job.name, "worker.log"), "w")
        proc = subprocess.Popen([sys.executable, "-m", "mobileseg.export._worker", job.name, fmt], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        say(f"{fmt}: a child process (pid {proc.pid}) will convert it alongside the other formats")
        return cls(fmt, proc, job, log)

    def submit(self, module, x, out_dir, precision, out_name, say) -> bool:
        """Hand the model over; False (and the child stopped) when it cannot be, so the caller converts in-process."""
        import torch

        reason = None
        if any(type(m).__module__ == "__main__" for m in module.modules()):
            reason = "the model's classes live in __main__, a child cannot import them"
        else:
            try:
                torch.save(module, os.path.join(self.job.name, "model.pt"))
            except Exception as exc:
                reason = f"{type(exc).__name__} handing the model to a child process"
        if reason:
            say(f"{self.fmt}: converting in this process ({reason})")
            self.stop()
            return False
        np.save(os.path.join(self.job.name, "input.npy"), x)
        tmp = os.path.join(self.job.name, "job.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"format": self.fmt, "out_dir": out_dir, "precision": precision, "input_name": "input",
                       "output_name": out_name}, f)
        for stale in _stale_files(out_dir, self.fmt):
            os.remove(stale)
        os.replace(tmp, os.path.join(self.job.name, "job.json"))
        self.started = time.perf_counter()
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                open(os.path.join(self.job.name, "cancel"), "w").close()
                self.proc.wait(timeout=2)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.job.cleanup()

    def result(self):
        from ._util import Converted

        try:
            self.proc.wait()
            self.log.close()
            path = os.path.join(self.job.name, "result.json")
            if self.proc.returncode != 0 or not os.path.isfile(path):
                with open(self.log.name, errors="replace") as f:
                    tail = " | ".join(ln.strip() for ln in f.read().splitlines() if ln.strip())[-300:]
                raise ConverterFailure(f"the {self.fmt} conversion process exited with code {self.proc.returncode}"
                                       f" ({tail})")
            with open(path) as f:
                res = json.load(f)
        finally:
            self.job.cleanup()
        if "error" in res:
            raise ConverterFailure(res["error"])
        return Converted(res["files"], res["input_name"], res["output_name"], res["op_histogram"], res["info"])


def _convert_and_check(fmt, net, graph, x, ref, margins, out_dir, manifest, precision, out_name, key, parity,
                       worker, say) -> dict:
    """Convert ``net`` to ``fmt`` (or collect ``worker``'s result) and check parity: the format's manifest entry."""
    import torch

    mod = _converter(fmt)
    conv_versions = mod.converter_versions()
    entry = {"files": [], "input_name": None, "output_name": None, "op_histogram": {},
             "converter": {"name": mod.CONVERTER, "version": conv_versions}, "ok": False, "error": None,
             "parity": {"checked": False}, "seconds": {}, "cache_key": key}
    module = _graph_for(net, graph, fmt)
    t = worker.started if worker else time.perf_counter()
    try:
        if worker is not None:
            conv = worker.result()
        else:
            say(f"{fmt}: converting with {mod.CONVERTER} ...")
            for stale in _stale_files(out_dir, fmt):
                os.remove(stale)
            conv = mod.convert(module, torch.from_numpy(x), out_dir, precision=precision, input_name="input",
                               output_name=out_name, log=say)
    except ConverterFailure as exc:
        entry["error"] = str(exc)
        entry["seconds"]["convert"] = round(time.perf_counter() - t, 3)
        say(f"{fmt}: FAILED: {exc}")
        return entry
    entry["seconds"]["convert"] = round(time.perf_counter() - t, 3)
    if worker is not None:
        entry["seconds"]["converted_in"] = "child process (alongside the other formats)"
    entry.update(files=[_file_record(p, out_dir) for p in conv.files], input_name=conv.input_name,
                 output_name=conv.output_name, op_histogram=conv.op_histogram, info=dict(conv.info))
    if module is not net:
        entry["info"]["argmax_formulation"] = module.formulation
        with torch.no_grad():
            same = np.array_equal(module(torch.from_numpy(x)).numpy().astype(np.int64), ref.astype(np.int64))
        entry["info"]["argmax_formulation_equals_torch_argmax"] = bool(same)
    if not parity:
        entry["ok"] = True
        entry["parity"] = {"checked": False, "note": "--no-parity"}
        return entry
    t = time.perf_counter()
    try:
        entry["parity"] = _parity(fmt, out_dir, manifest, entry, precision, graph, x, ref, margins)
    except Exception as exc:  # the runtime cannot load or run the artifact
        entry["parity"] = {"checked": False}
        entry["error"] = (f"{fmt} artifact does not run in its runtime: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:300] if str(exc) else ''}")
        say(f"{fmt}: FAILED: {entry['error']}")
        return entry
    entry["seconds"]["parity"] = round(time.perf_counter() - t, 3)
    manifest["parity_runtime"][fmt] = entry["runtime"]["name"]
    entry["ok"] = bool(entry["parity"]["ok"])
    if not entry["ok"]:
        entry["error"] = "parity check failed (the artifact is kept for inspection)"
    say(f"{fmt}: {'ok' if entry['ok'] else 'FAILED'} (convert {entry['seconds']['convert']:.1f} s)")
    return entry


def _write_manifest(out_dir: str, manifest: dict) -> None:
    tmp = os.path.join(out_dir, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, os.path.join(out_dir, "manifest.json"))


def _stale_files(out_dir: str, fmt: str) -> list[str]:
    names = {"onnx": ["model.onnx"], "ncnn": ["model.ncnn.param", "model.ncnn.bin"], "tflite": ["model.tflite"]}
    return [p for p in (os.path.join(out_dir, n) for n in names.get(fmt, [])) if os.path.exists(p)]
