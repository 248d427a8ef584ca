"""``export_model``: the Python API behind ``mobileseg export`` (contract 2 of docs/ARCHITECTURE.md).

Steps: build the model (registry, strict checkpoint) -> fold BatchNorm (verified) -> optional argmax head -> seeded
reference input/output -> one artifact per format -> run each artifact with its own runtime at 1 thread and compare
with :func:`mobileseg.parity.compare` -> ``manifest.json``. An unchanged re-run reuses the artifacts: every format
entry carries a content hash of what made it (model, weights sha256, classes, resolution, precision, graph,
converter versions, mobileseg version) and the sha256 of its files.
"""
from __future__ import annotations

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

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.out_dir, "manifest.json")

    @property
    def formats(self) -> dict:
        return self.manifest["formats"]

    @property
    def ok(self) -> bool:
        return all(e.get("ok") for e in self.formats.values())

    def failures(self) -> dict:
        return {f: e.get("error") or "parity check failed" for f, e in self.formats.items() if not e.get("ok")}

    def rows(self) -> list[dict]:
        rows = []
        for fmt, e in self.formats.items():
            p = e.get("parity") or {}
            size = sum(f["bytes"] for f in e.get("files", []))
            rows.append({"format": fmt, "runtime": (e.get("runtime") or {}).get("name", ""),
                         "ok": "yes" if e.get("ok") else "NO", "MB": f"{size / 1e6:.2f}" if size else "-",
                         "max_abs": _fmt(p.get("max_abs")), "rel_l2": _fmt(p.get("rel_l2")),
                         "limit": _fmt(p.get("limit_rel_l2") if "limit_argmax_agree" not in p
                                       else p.get("limit_argmax_agree")),
                         "argmax_agree": _fmt(p.get("argmax_agree"), ".4f"),
                         "seconds": _fmt(e.get("seconds", {}).get("convert"), ".1f"),
                         "cached": "yes" if fmt in self.reused else "",
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


def _argmax_module(model, size):
    import torch.nn.functional as F
    from torch import nn

    class ArgmaxGraph(nn.Module):
        """The model's logits, bilinearly resized to the input size (segmentation), then argmax over classes."""

        def __init__(self, inner, out_size):
            super().__init__()
            self.model = inner
            self.size = (int(out_size[0]), int(out_size[1]))
            self.spec = getattr(inner, "spec", None)

        def forward(self, x):
            y = self.model(x)
            if y.dim() == 4 and tuple(y.shape[-2:]) != self.size:
                y = F.interpolate(y, size=self.size, mode="bilinear", align_corners=False)
            return y.argmax(dim=1)

    return ArgmaxGraph(model, size).eval()


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


def build_export_model(name: str, resolution, num_classes=None, weights=None, graph: str = "logits",
                       classifier_scale=None, example=None):
    """The exact PyTorch model that is exported: ``(model, info)``.

    Random weights (no ``weights``) are drawn after ``torch.manual_seed(WEIGHTS_SEED)``, and the classifier is
    scaled so the logits are spread (std ``LOGIT_SPREAD``); ``classifier_scale`` replays a recorded scale.
    BatchNorm is folded (verified) before the optional argmax head is added.
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
    folded = fold_batchnorm(model, example)
    info = {"fold": folded.fold_report, "num_classes": spec.num_classes, "classifier": None,
            "classifier_scale": None}
    if weights is None:
        layer, out = _final_layer(folded, example)
        if layer is not None:
            if classifier_scale is None:
                std = float(out.double().std())
                classifier_scale = float(f"{LOGIT_SPREAD / std:.6g}") if std > 0 else 1.0
            mod = folded.get_submodule(layer)
            with torch.no_grad():
                mod.weight.mul_(classifier_scale)
                if mod.bias is not None:
                    mod.bias.mul_(classifier_scale)
            info.update(classifier=layer, classifier_scale=classifier_scale)
    if graph == "argmax":
        folded = _argmax_module(folded, (h, w))
    folded.eval()
    return folded, info


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


def _parity(fmt: str, out_dir: str, manifest: dict, entry: dict, precision: str, graph: str, x, ref) -> dict:
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
                "max_abs": float(diff.max()), "rel_l2": None, "limit_rel_l2": None, "what": "class map"}
    return compare(out, ref, precision)


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
    keys = {fmt: _cache_key(base, fmt, versions) for fmt in formats}
    old = None if force else _read_manifest(out_dir)
    ref_ok = all(os.path.isfile(os.path.join(out_dir, "reference", f)) for f in ("input.npy", "output.npy"))
    reused = {f: e for f in formats if ref_ok and (e := _cached_entry(out_dir, old, f, keys[f]))}
    if old and len(reused) == len(formats):
        manifest = dict(old)
        manifest["formats"] = {f: reused[f] for f in formats}
        say(f"{spec.name} {h}x{w}: every artifact is up to date in {out_dir} (cache)")
        return ExportResult(out_dir, manifest, True, time.perf_counter() - t0, list(formats))

    import torch

    x = reference_input(spec, (h, w))
    t_build = time.perf_counter()
    net, info = build_export_model(spec.name, (h, w), num_classes=num_classes, weights=weights, graph=graph,
                                   example=torch.from_numpy(x))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    build_seconds = time.perf_counter() - t_build
    np.save(os.path.join(out_dir, "reference", "input.npy"), x)
    np.save(os.path.join(out_dir, "reference", "output.npy"), ref)
    say(f"{spec.name} {h}x{w}: BatchNorm folded ({info['fold']['batchnorm_before']} BN, verify rel L2 "
        f"{info['fold']['verify_rel_l2']:.1e}) in {build_seconds:.1f} s")
    n_cls = info["num_classes"]
    if weights is None:
        note = (f"random weights (torch.manual_seed({WEIGHTS_SEED})); classifier {info['classifier']} scaled by "
                f"{info['classifier_scale']} so logits are spread (std {LOGIT_SPREAD}) for a meaningful argmax check")
    else:
        note = "checkpoint loaded with strict=True"
    out_name = "classes" if graph == "argmax" else "logits"
    manifest = {
        "schema_version": SCHEMA_VERSION, "model": spec.name, "task": spec.task, "resolution": [h, w],
        "num_classes": n_cls,
        "weights": {"path": weights, "sha256": weights_sha, "note": note,
                    "classifier_scale": info["classifier_scale"] if weights is None else None,
                    "seed": WEIGHTS_SEED if weights is None else None},
        "graph": graph, "precision": precision,
        "graph_note": ("logits at the model's own stride" if graph == "logits" else
                       "logits bilinearly resized to the input size, then argmax over classes (int64 class map)"),
        "input": {"name": "input", "shape": [1, 3, h, w], "dtype": "float32", "layout": "NCHW",
                  "mean": list(spec.mean), "std": list(spec.std), "range": "RGB 0..255, then (x - mean) / std"},
        "output": {"name": out_name, "shape": list(ref.shape), "dtype": str(ref.dtype),
                   "stride": spec.output_stride if graph == "logits" and spec.task == "segmentation" else 1},
        "fold": info["fold"],
        "reference": {"input": "reference/input.npy", "output": "reference/output.npy", "seed": INPUT_SEED},
        "formats": {}, "parity_runtime": {}, "versions": versions, "export_seconds": None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cache": {"key_fields": sorted(base) + ["converter_versions", "mobileseg"]},
    }
    for fmt in formats:
        if fmt in reused and not force:
            manifest["formats"][fmt] = reused[fmt]
            manifest["parity_runtime"][fmt] = (reused[fmt].get("runtime") or {}).get("name")
            say(f"{fmt}: up to date (cache)")
            continue
        mod = _converter(fmt)
        conv_versions = mod.converter_versions()
        entry = {"files": [], "input_name": None, "output_name": None, "op_histogram": {},
                 "converter": {"name": mod.CONVERTER, "version": conv_versions}, "ok": False, "error": None,
                 "parity": {"checked": False}, "seconds": {}, "cache_key": keys[fmt]}
        manifest["formats"][fmt] = entry
        say(f"{fmt}: converting with {mod.CONVERTER} ...")
        t = time.perf_counter()
        for stale in _stale_files(out_dir, fmt):
            os.remove(stale)
        try:
            conv = mod.convert(net, torch.from_numpy(x), out_dir, precision=precision, input_name="input",
                               output_name=out_name, log=say)
        except ConverterFailure as exc:
            entry["error"] = str(exc)
            entry["seconds"]["convert"] = round(time.perf_counter() - t, 3)
            say(f"{fmt}: FAILED: {exc}")
            continue
        entry["seconds"]["convert"] = round(time.perf_counter() - t, 3)
        entry.update(files=[_file_record(p, out_dir) for p in conv.files], input_name=conv.input_name,
                     output_name=conv.output_name, op_histogram=conv.op_histogram, info=conv.info)
        if not parity:
            entry["ok"] = True
            entry["parity"] = {"checked": False, "note": "--no-parity"}
            continue
        t = time.perf_counter()
        try:
            entry["parity"] = _parity(fmt, out_dir, manifest, entry, precision, graph, x, ref)
        except Exception as exc:  # the runtime cannot load or run the artifact
            entry["parity"] = {"checked": False}
            entry["error"] = (f"{fmt} artifact does not run in its runtime: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}")
            say(f"{fmt}: FAILED: {entry['error']}")
            continue
        entry["seconds"]["parity"] = round(time.perf_counter() - t, 3)
        manifest["parity_runtime"][fmt] = entry["runtime"]["name"]
        entry["ok"] = bool(entry["parity"]["ok"])
        if not entry["ok"]:
            entry["error"] = "parity check failed (the artifact is kept for inspection)"
    manifest["export_seconds"] = round(time.perf_counter() - t0, 3)
    tmp = os.path.join(out_dir, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, os.path.join(out_dir, "manifest.json"))
    return ExportResult(out_dir, manifest, False, time.perf_counter() - t0, [f for f in reused])


def _stale_files(out_dir: str, fmt: str) -> list[str]:
    names = {"onnx": ["model.onnx"], "ncnn": ["model.ncnn.param", "model.ncnn.bin"], "tflite": ["model.tflite"]}
    return [p for p in (os.path.join(out_dir, n) for n in names[fmt]) if os.path.exists(p)]
