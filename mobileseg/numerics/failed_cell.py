"""What a bench cell that failed parity records about where it diverged (``parity.per_layer`` of its record).

Called by :mod:`mobileseg.bench.runner` for a failed cell only. It never raises: a cell's record must be written
whatever this analysis hits (no ``model.pt`` and no way to write it, a runtime without capture, memory), and then
says why in ``error``. The target gives the tensors (``target.intermediates``): on the host none, and the cell's own
runtime and precision are captured here; on an ADB device whose harness returns intermediates (:mod:`.device_capture`) the
device's tensors are used.
"""

from __future__ import annotations

import os

from ..formats import FORMATS


def _ensure_module(folder: str, cell, manifest: dict) -> None:
    """Write ``model.pt`` (the torch format) into the export folder when the bench exported without it."""
    if os.path.isfile(os.path.join(folder, FORMATS["torch"].model_file)):
        return
    from ..export import export_model

    weights = (manifest.get("weights") or {}).get("path")
    export_model(
        cell.model,
        list(cell.resolution),
        formats=["torch"],
        precision=cell.precision,
        graph=cell.graph,
        weights=weights,
        num_classes=manifest.get("num_classes") if weights else None,
        out=str(folder),
    )


def diverging_layer(folder, cell, manifest: dict, target=None) -> dict:
    """``{"first_diverging": {...}, "sentence", "matched_pct", "accounted_pct", "rows", "report"}`` or ``{"error"}``."""
    from .layer_report import bench_summary, sentence, write

    folder = str(folder)
    try:
        tensors, device = target.intermediates(folder, cell) if target is not None else (None, "host")
        _ensure_module(folder, cell, manifest)
        from .analyze import per_layer

        rep = per_layer(
            folder, cell.format, precision=cell.precision, runtime=cell.runtime, tensors=tensors, device=device
        )
        path = write(rep, os.path.join(folder, "numerics"))
    except Exception as exc:  # noqa: BLE001 - the record is written whatever this analysis hits
        return {
            "error": f"per-layer analysis not possible: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        }
    out = bench_summary(rep)
    out["sentence"] = (
        sentence(rep["first_diverging"])
        or "no single layer over the per-layer limit (the error builds up across layers)"
    )
    out["report"] = path
    return out
