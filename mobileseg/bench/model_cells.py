"""Registered models as a cell source of the bench loop: cells planned from the command line or a suite's model
groups, each exported on demand through the export stage (cached in the export folder) and judged against the
export's PyTorch reference (``reference/output.npy``).

A source answers the loop's three questions (:mod:`mobileseg.bench.runner`): which cells, the export folder of a
cell (``export``), and its parity (``judge``). The files users bring are the other source
(:mod:`mobileseg.bench.artifact_cells`).
"""

from __future__ import annotations

import threading
from pathlib import Path

from .. import formats as _formats
from .. import manifest as _manifest
from ..errors import MobilesegError
from .suite import Cell, Suite, SuiteError, build_group


class ExportFailedError(MobilesegError):
    """The export stage could not produce the artifact a cell needs (recorded as that cell's error)."""


def filter_cells(cells: list, models=(), resolutions=(), runtimes=(), precisions=(), graphs=()) -> list:
    """The cells that pass the ``--models/--res/--runtimes/--precisions/--graphs`` filters (a suite's, or files')."""
    from ..registry import get_spec, parse_resolution

    if models:
        wanted = set()
        for m in models:
            try:
                wanted.add(get_spec(m).name)
            except MobilesegError:
                wanted.add(m)  # a file's name (a suite's artifact group)
        cells = [c for c in cells if c.model in wanted]
    if resolutions:
        wanted_res = {parse_resolution(r) for r in resolutions}
        cells = [c for c in cells if tuple(c.resolution) in wanted_res]
    for attr, values in (("runtime", runtimes), ("precision", precisions), ("graph", graphs)):
        if values:
            cells = [c for c in cells if getattr(c, attr) in set(values)]
    return cells


def command_line_cells(models=(), resolutions=(), runtimes=(), precisions=(), graphs=(), threads: int = 1) -> list:
    """Cells of ``--models/--res/--runtimes/--precisions/--graphs`` (defaults: every segmentation model at its
    paper resolution, every default runtime, fp32, logits; int8 only where a runtime runs it)."""
    from ..registry import get_spec, list_models
    from .int8 import int8_cells

    explicit = bool(runtimes)
    models = list(models or list_models(task="segmentation"))
    runtimes = list(runtimes or _formats.default_runtimes())
    precisions = list(precisions or ["fp32"])
    graphs = list(graphs or ["logits"])
    cells = []
    for m in models:
        res = list(resolutions) if resolutions else [list(get_spec(m).default_resolution)]
        g = build_group([m], res, runtimes, precisions, graphs, where="command line")
        cells += [c for c in Suite(name="command line", groups=[g]).cells(threads) if c not in cells]
    return int8_cells(cells, explicit)


def ensure_export(cell: Cell, formats: list[str], export_root: Path, export_fn, cache: dict) -> tuple[Path, dict]:
    """The export folder of ``cell`` and its manifest, exported now through the export stage if needed.

    One call per (model, resolution, precision, graph) and set of formats, asking for every format the run needs
    there plus those already exported in the folder (the export stage rewrites the manifest with the formats it is
    given, and reuses up-to-date artifacts from its own cache).
    """
    folder = export_root / _manifest.export_dir_name(cell.model, cell.resolution, cell.precision, cell.graph)
    key = (cell.model, cell.resolution, cell.precision, cell.graph)
    if key not in cache or not set(formats) <= cache[key][0]:
        if export_fn is None:
            from ..export import export_model as export_fn
        wanted = (
            set(formats) | _manifest.ok_formats(_manifest.read(folder)) | (cache[key][0] if key in cache else set())
        )
        result = export_fn(
            cell.model,
            list(cell.resolution),
            formats=sorted(wanted),
            precision=cell.precision,
            graph=cell.graph,
            out=str(folder),
        )
        cache[key] = (wanted, result.manifest if hasattr(result, "manifest") else result)
    man = cache[key][1]
    entry = _manifest.format_entry(man, cell.format)
    if not entry or not entry.get("files"):
        why = (entry or {}).get("error") or "no artifact was written"
        raise ExportFailedError(
            f"the {cell.format} export of {cell.model} at {cell.resolution[0]}x{cell.resolution[1]} failed: {why}"
        )
    return folder, man


def group_label(cell: Cell) -> str:
    h, w = cell.resolution
    tags = [
        t
        for t in (cell.precision if cell.precision != "fp32" else "", cell.graph if cell.graph != "logits" else "")
        if t
    ]
    return f"{cell.model} {h}x{w}" + (f" ({', '.join(tags)})" if tags else "")


class ModelCells:
    """Cells of registered models. Safe to share between the fleet's device workers: each export is done once,
    under a lock, by whichever worker needs it first (the export is host work on a shared folder)."""

    kind = "models"

    def __init__(self, cells: list, export_root="export", export_fn=None, explicit_runtimes: bool = True):
        self.cells = list(cells)
        self.export_root = Path(export_root)
        self.export_fn = export_fn
        self.explicit_runtimes = explicit_runtimes
        self._cache: dict = {}
        self._lock = threading.Lock()

    def export(self, cell: Cell, formats: list[str], progress) -> tuple[Path, dict]:
        """``(folder, manifest)`` of ``cell``; ``formats``: every format this run needs at the cell's group."""
        with self._lock:
            key = (cell.model, cell.resolution, cell.precision, cell.graph)
            if key not in self._cache:  # the export is not part of the cell's time (nor of the ETA)
                progress.exporting(group_label(cell))
            return ensure_export(cell, formats, self.export_root, self.export_fn, self._cache)

    def judge(self, cell: Cell, output, folder: Path, manifest: dict, target) -> dict:
        """The cell's parity against the export's reference, by the export's rule; where it diverged on failure."""
        import numpy as np

        from ..parity import check

        ref_path = Path(folder) / _manifest.REFERENCE_OUTPUT
        if not ref_path.exists():
            return {"checked": False, "reason": f"the export folder has no {_manifest.REFERENCE_OUTPUT}"}
        parity = check(
            output, np.load(ref_path), cell.precision, manifest.get("graph") or cell.graph, runtime=cell.runtime
        )
        if parity.get("ok") is False:  # where it diverged (mobileseg.numerics): a summary, never a crash
            from ..numerics.failed_cell import diverging_layer

            parity["per_layer"] = diverging_layer(folder, cell, manifest, target)
        return parity

    def finish(self, rec, cell) -> None:
        """Nothing to add: the record's fields are the loop's."""


def model_source(settings, suite, export_fn=None) -> ModelCells | None:
    """The registered models of ``settings`` (its suite's model groups, else the command line's), filtered."""
    if settings.artifacts:
        return None
    if suite is None:
        cells = command_line_cells(
            settings.models,
            settings.resolutions,
            settings.runtimes,
            settings.precisions,
            settings.graphs,
            settings.threads,
        )
        return ModelCells(cells, settings.export_root, export_fn, explicit_runtimes=bool(settings.runtimes))
    cells = filter_cells(
        suite.cells(settings.threads),
        settings.models,
        settings.resolutions,
        settings.runtimes,
        settings.precisions,
        settings.graphs,
    )
    return ModelCells(cells, settings.export_root, export_fn, explicit_runtimes=True)  # a suite names its runtimes


__all__ = [
    "ExportFailedError",
    "ModelCells",
    "SuiteError",
    "command_line_cells",
    "ensure_export",
    "filter_cells",
    "model_source",
]
