"""Error figures of one tensor against its reference (numpy only), and the first layer whose error crosses a limit."""

from __future__ import annotations

import math

import numpy as np

from ..parity import rel_l2, sqnr_db


def figures(out, ref) -> dict:
    """rel-L2 ``||out-ref||/||ref||``, cosine similarity, SQNR in dB (None: exact) and max abs error."""
    a = np.asarray(out, dtype=np.float64).ravel()
    r = np.asarray(ref, dtype=np.float64).ravel()
    d = a - r
    nr, na = float(np.linalg.norm(r)), float(np.linalg.norm(a))
    rel = rel_l2(a, r)  # the toolkit's one rule (mobileseg.parity), zero references included
    cos = float(np.dot(a, r) / (na * nr)) if na > 0 and nr > 0 else (1.0 if na == nr else 0.0)
    sqnr = None if rel == 0 else sqnr_db(a, r)
    finite = bool(np.all(np.isfinite(a)))
    return {
        "rel_l2": rel if finite else math.inf,
        "cosine": cos,
        "sqnr_db": sqnr,
        "max_abs": float(np.max(np.abs(d))) if d.size else 0.0,
        "finite": finite,
        "ref_rms": nr / math.sqrt(r.size) if r.size else 0.0,
    }


def first_over(rows: list[dict], limit: float, min_rms: float = 0.0) -> int | None:
    """Index of the first matched row whose rel-L2 is above ``limit`` (graph order), or None. Rows whose reference
    RMS is below ``min_rms`` (values the precision cannot hold as normal numbers) are not judged."""
    for i, row in enumerate(rows):
        rel = row.get("rel_l2")
        if rel is not None and not (rel <= limit) and not ((row.get("ref_rms") or 0.0) < min_rms):
            return i
    return None


def previous_figure(rows: list[dict], index: int) -> float | None:
    """The rel-L2 of the last matched row before ``index``: what the error 'jumps from'."""
    for row in reversed(rows[:index]):
        if row.get("rel_l2") is not None:
            return row["rel_l2"]
    return None
