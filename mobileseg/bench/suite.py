"""Declarative benchmark suites (``bench/*.toml``) and the measurement cells they expand to.

A suite file::

    name = "smoke"
    description = "what it is for"

    [settings]                 # optional; command-line flags override them
    threads = 1
    warmup = 5
    repeats = 20               # or min_time = 2.0 (seconds of timed runs per cell)

    [[cells]]                  # one or more groups; each expands to the product of its lists
    models = ["topformer-t"]
    resolutions = [448, "512x512"]
    runtimes = ["onnxruntime", "ncnn", "litert", "torch"]
    precisions = ["fp32"]      # optional, default ["fp32"]
    graphs = ["logits"]        # optional, default ["logits"] ("argmax" adds resize + argmax)

    [[cells]]                  # a group of model files from other tools (mobileseg bench --artifact)
    artifacts = ["models/seg.onnx", "models/seg.tflite"]   # paths relative to the suite file
    input_shape = "1x3x512x512"  # optional: dynamic dimensions; also optional: input, reference (.npy), runtimes,
                                 # precisions

Every mistake (unknown key, model, runtime, resolution, a list given as a string...) is reported as one sentence
naming the file and the fix, before anything is exported or timed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import formats
from ..errors import MobilesegError
from ..formats import GRAPHS, PRECISIONS
from ..results.record import cell_key

_TOP_KEYS = {"name", "description", "settings", "cells"}
_SETTINGS_KEYS = {"threads", "warmup", "repeats", "min_time", "cooldown_s"}
_CELL_KEYS = {"models", "resolutions", "runtimes", "precisions", "graphs", "note"}
_ARTIFACT_KEYS = {"artifacts", "input_shape", "input", "reference", "runtimes", "precisions", "note"}


class SuiteError(MobilesegError, ValueError):
    pass


@dataclass(frozen=True)
class Cell:
    """One measurement: a model at a resolution, in one runtime, precision and graph boundary, with N threads."""

    model: str
    resolution: tuple[int, int]
    runtime: str
    precision: str = "fp32"
    graph: str = "logits"
    threads: int = 1

    @property
    def format(self) -> str:
        return formats.runtime_format(self.runtime)

    def key(self, device: str) -> str:
        return cell_key(
            device, self.model, self.resolution, self.format, self.runtime, self.precision, self.graph, self.threads
        )

    def label(self) -> str:
        h, w = self.resolution
        return f"{self.model} {h}x{w} {self.runtime} {self.precision} {self.graph} t{self.threads}"


@dataclass
class Suite:
    name: str
    description: str = ""
    settings: dict = field(default_factory=dict)
    groups: list = field(default_factory=list)  # list of dicts with normalised lists
    path: str | None = None
    artifact_groups: list = field(default_factory=list)  # [[cells]] with artifacts = [paths] (see the module doc)

    def cells(self, threads: int | None = None) -> list[Cell]:
        """The suite's cells in file order (models outermost, so one export serves consecutive cells)."""
        t = int(threads if threads is not None else self.settings.get("threads", 1))
        out, seen = [], set()
        for g in self.groups:
            for model in g["models"]:
                for res in g["resolutions"]:
                    for precision in g["precisions"]:
                        for graph in g["graphs"]:
                            for runtime in g["runtimes"]:
                                c = Cell(model, res, runtime, precision, graph, t)
                                if c not in seen:
                                    seen.add(c)
                                    out.append(c)
        return out


def _as_list(value, key: str, where: str) -> list:
    if isinstance(value, (list, tuple)):
        if not value:
            raise SuiteError(f"{where}: '{key}' is an empty list; give at least one value")
        return list(value)
    raise SuiteError(f"{where}: '{key}' must be a list such as {key} = [{value!r}], not {type(value).__name__}")


def _unknown(keys, allowed, where: str) -> None:
    bad = sorted(set(keys) - allowed)
    if bad:
        raise SuiteError(f"{where}: unknown key '{bad[0]}'; allowed keys are {', '.join(sorted(allowed))}")


def build_group(models, resolutions, runtimes, precisions=("fp32",), graphs=("logits",), where="command line") -> dict:
    """Validate and normalise one group of cells (also used for ``--models/--res/--runtimes`` on the command line)."""
    from ..registry import get_spec, parse_resolution

    names = []
    for m in models:
        if not isinstance(m, str):
            raise SuiteError(f"{where}: model names must be strings, got {m!r}")
        try:
            spec = get_spec(m)  # UnknownModelError names close matches
        except MobilesegError as exc:
            raise SuiteError(f"{where}: {exc}") from None
        if spec.task != "segmentation":
            raise SuiteError(
                f"{where}: '{spec.name}' is a classification model; bench segmentation models "
                "(`mobileseg models --task segmentation`)"
            )
        names.append(spec.name)
    res_list = []
    for r in resolutions:
        if isinstance(r, bool) or not isinstance(r, (int, str, list, tuple)):
            raise SuiteError(f'{where}: resolution {r!r} must be a number (448) or a string "HxW"')
        try:
            res_list.append(parse_resolution(r))
        except MobilesegError as exc:
            raise SuiteError(f"{where}: {exc}") from None
    for m in names:
        for h, w in res_list:
            try:
                get_spec(m).check_resolution(h, w)
            except MobilesegError as exc:
                raise SuiteError(f"{where}: {exc}") from None
    for rt in runtimes:
        if rt not in formats.RUNTIMES:
            raise SuiteError(f"{where}: unknown runtime '{rt}'; choose from {', '.join(formats.RUNTIMES)}")
    for p in precisions:
        if p not in PRECISIONS:
            raise SuiteError(f"{where}: unknown precision '{p}'; choose from {', '.join(PRECISIONS)}")
    for g in graphs:
        if g not in GRAPHS:
            raise SuiteError(f"{where}: unknown graph '{g}'; choose 'logits' (model stride) or 'argmax'")
    return {
        "models": names,
        "resolutions": res_list,
        "runtimes": list(runtimes),
        "precisions": list(precisions),
        "graphs": list(graphs),
    }


def _artifact_group(c: dict, where: str, base) -> dict:
    """A ``[[cells]]`` group of model files: paths resolved against the suite file's folder, checked later by
    :func:`mobileseg.bench.artifact.stage` (one sentence each)."""
    _unknown(c, _ARTIFACT_KEYS, where)
    paths = _as_list(c["artifacts"], "artifacts", where)
    for k in ("input_shape", "input", "reference"):
        if k in c and not isinstance(c[k], str):
            raise SuiteError(f"{where}: '{k}' must be a string such as {k} = \"...\"")
    for rt in c.get("runtimes", []):
        if rt not in formats.RUNTIMES:
            raise SuiteError(f"{where}: unknown runtime '{rt}'; choose from {', '.join(formats.RUNTIMES)}")
    rel = lambda q: str(Path(base) / q) if base is not None and not Path(q).is_absolute() else q  # noqa: E731
    if not all(isinstance(q, str) for q in paths):
        raise SuiteError(f"{where}: 'artifacts' must list file paths as strings")
    return {
        "artifacts": [rel(q) for q in paths],
        "input_shape": c.get("input_shape"),
        "input": rel(c["input"]) if c.get("input") else None,
        "reference": rel(c["reference"]) if c.get("reference") else None,
        "runtimes": list(c.get("runtimes") or []) or None,
        "precisions": list(c.get("precisions") or []) or None,
    }


def parse_suite(data: dict, where: str = "suite", base=None) -> Suite:
    """Validate a decoded suite mapping and return a :class:`Suite`."""
    _unknown(data, _TOP_KEYS, where)
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise SuiteError(f"{where}: 'settings' must be a table ([settings])")
    _unknown(settings, _SETTINGS_KEYS, f"{where} [settings]")
    for k in ("threads", "warmup", "repeats"):
        if k in settings and (
            isinstance(settings[k], bool)
            or not isinstance(settings[k], int)
            or settings[k] < (0 if k == "warmup" else 1)
        ):
            raise SuiteError(
                f"{where} [settings]: '{k}' must be a whole number"
                f" {'>= 0' if k == 'warmup' else '>= 1'}, not {settings[k]!r}"
            )
    for k in ("min_time", "cooldown_s"):
        if k in settings and (
            isinstance(settings[k], bool)
            or not isinstance(settings[k], (int, float))
            or settings[k] < 0
            or (k == "min_time" and settings[k] == 0)
        ):
            what = "a number of seconds above 0" if k == "min_time" else "a non-negative number of seconds"
            raise SuiteError(
                f"{where} [settings]: '{k}' must be {what}, like --{k.replace('_s', '').replace('_', '-')}"
            )
    if "repeats" in settings and "min_time" in settings:
        raise SuiteError(f"{where} [settings]: give either 'repeats' or 'min_time', not both")
    cells = data.get("cells")
    if not cells:
        raise SuiteError(f"{where}: no [[cells]] group; add one with models, resolutions and runtimes")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise SuiteError(f"{where}: 'cells' must be an array of tables written [[cells]]")
    groups, artifact_groups = [], []
    for i, c in enumerate(cells, 1):
        w = f"{where} [[cells]] #{i}"
        if "artifacts" in c:
            artifact_groups.append(_artifact_group(c, w, base))
            continue
        _unknown(c, _CELL_KEYS, w)
        for k in ("models", "resolutions", "runtimes"):
            if k not in c:
                raise SuiteError(f"{w}: missing '{k}'; every group needs models, resolutions and runtimes")
        groups.append(
            build_group(
                _as_list(c["models"], "models", w),
                _as_list(c["resolutions"], "resolutions", w),
                _as_list(c["runtimes"], "runtimes", w),
                _as_list(c.get("precisions", ["fp32"]), "precisions", w),
                _as_list(c.get("graphs", ["logits"]), "graphs", w),
                where=w,
            )
        )
    name = data.get("name", "suite")
    if not isinstance(name, str):
        raise SuiteError(f"{where}: 'name' must be a string")
    return Suite(
        name=name,
        description=str(data.get("description", "")),
        settings=dict(settings),
        groups=groups,
        artifact_groups=artifact_groups,
    )


def load_suite(path) -> Suite:
    """Read and validate a suite file; any problem is a :class:`SuiteError` naming the file and the fix."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as the tomli package
        from ..errors import require

        tomllib = require("tomli", "all", "reading suite files on Python 3.10")
    p = Path(path)
    if not p.exists():
        near = sorted(str(q) for q in Path("bench").glob("*.toml")) if Path("bench").is_dir() else []
        hint = f" (available: {', '.join(near)})" if near else ""
        raise SuiteError(f"suite file '{p}' does not exist; give a path such as bench/smoke.toml{hint}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"suite file '{p}' is not valid TOML ({exc}); fix that line") from None
    except UnicodeDecodeError:
        raise SuiteError(f"suite file '{p}' is not UTF-8 text; save it as a UTF-8 TOML file") from None
    except OSError as exc:  # a folder, no permission
        why = "is a folder, not a file" if p.is_dir() else f"cannot be read ({exc.strerror or exc})"
        raise SuiteError(f"suite file '{p}' {why}; give a path such as bench/smoke.toml") from None
    suite = parse_suite(data, where=str(p), base=p.parent)
    suite.path = str(p)
    return suite
