"""Numerical parity between an artifact's output and the PyTorch reference (numpy only: runs anywhere).

Figures (DESIGN.md section 6): max abs error, relative L2 error ``||out - ref|| / ||ref||`` and the share of pixels
whose argmax class agrees. Limits: fp32 relative L2 <= 1e-4, fp16 <= 2e-2.
"""
from __future__ import annotations

import numpy as np

REL_L2_LIMITS = {"fp32": 1e-4, "fp16": 2e-2}


def compare(out, ref, precision: str = "fp32", class_axis: int = 1) -> dict:
    """Parity figures of ``out`` against ``ref`` (same shape) and whether they pass the precision's limit."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        if out.size == ref.size:
            out = out.reshape(ref.shape)
        else:
            return {"ok": False, "error": f"output shape {list(out.shape)} != reference shape {list(ref.shape)}",
                    "max_abs": None, "rel_l2": None, "argmax_agree": None, "limit_rel_l2": REL_L2_LIMITS.get(precision)}
    diff = out - ref
    denom = float(np.linalg.norm(ref)) or 1.0
    rel = float(np.linalg.norm(diff)) / denom
    if ref.ndim > class_axis and ref.shape[class_axis] > 1:
        agree = float(np.mean(np.argmax(out, axis=class_axis) == np.argmax(ref, axis=class_axis)))
    else:
        agree = None
    limit = REL_L2_LIMITS.get(precision, REL_L2_LIMITS["fp32"])
    finite = bool(np.all(np.isfinite(out)))
    return {"ok": bool(finite and rel <= limit), "max_abs": float(np.max(np.abs(diff))) if diff.size else 0.0,
            "rel_l2": rel, "argmax_agree": agree, "limit_rel_l2": limit, "finite": finite}
