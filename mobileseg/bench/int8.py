"""int8 cells in bench: which runtimes can run them, and what their records say about the calibration.

Bench exports int8 artifacts through the export stage with its default calibration (synthetic images: bench has no
--calib; export the folder yourself with ``mobileseg export --precision int8 --calib DIR`` and bench reuses it);
every int8 record carries ``int8`` (scheme, calibration source in words, image count, sha256, ops left in float).
"""

from __future__ import annotations

from .. import formats
from .suite import SuiteError


def can_int8(runtime: str) -> bool:
    return "int8" in formats.FORMATS[formats.runtime_format(runtime)].precisions


def int8_cells(cells: list, explicit: bool) -> list:
    """Drop cells of runtimes whose format has no export at the cell's precision (int8 on torch or executorch, fp16
    on torch: its model.pt is fp32 at every precision); one sentence instead when the user named the runtime."""

    def able(runtime, precision):
        return precision in formats.FORMATS[formats.runtime_format(runtime)].precisions

    for precision in dict.fromkeys(c.precision for c in cells):
        bad = sorted({c.runtime for c in cells if c.precision == precision and not able(c.runtime, precision)})
        if bad and explicit:
            ok = [r for r in formats.RUNTIMES if able(r, precision)]
            raise SuiteError(
                f"{precision} is not available on {', '.join(bad)} (its format has no {precision} "
                f"export here): drop it from --runtimes for {precision}, or use {', '.join(ok)}"
            )
    return [c for c in cells if able(c.runtime, c.precision)]


def record_fields(manifest: dict, fmt: str, output=None, folder=None) -> dict:
    """The ``int8`` field of a record measured on an int8 artifact, and ``host_int8_agreement``: this output
    against the int8 output of the same artifact on the export host (ARM int8 kernels against x86 ones)."""
    q = manifest.get("int8") or {}
    cal = q.get("calibration") or {}
    entry = (manifest.get("formats") or {}).get(fmt) or {}
    info = entry.get("info", {}).get("int8", {})
    fields = {
        "int8": {
            "scheme": info.get("scheme"),
            "calibration_method": info.get("calibration_method"),
            "calibration": cal.get("note") or cal.get("source"),
            "calibration_images": cal.get("images"),
            "calibration_sha256": cal.get("sha256"),
            "float_ops": info.get("float_ops"),
            "keep_float": q.get("keep_float"),
        }
    }
    host = entry.get("host_output") or {}
    if output is not None and folder is not None and host.get("path"):
        from pathlib import Path

        import numpy as np

        from ..parity import rel_l2

        path = Path(folder) / host["path"]
        if path.is_file():
            ref = np.load(path).astype(np.float64)
            out = np.asarray(output, dtype=np.float64).reshape(ref.shape)
            rel = rel_l2(out, ref)
            agree = float(np.mean(out.argmax(1) == ref.argmax(1))) if ref.ndim == 4 else None
            fields["host_int8_agreement"] = {
                "host_runtime": host.get("runtime"),
                "rel_l2": rel,
                "max_abs": float(np.max(np.abs(out - ref))),
                "argmax_agree": agree,
            }
    return fields
