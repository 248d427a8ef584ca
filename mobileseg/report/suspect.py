"""Measurements a reader should not trust: a smaller input of the same model, runtime, precision, graph, threads and
device measured slower than a larger one beyond both 95% intervals. Fewer pixels cannot take longer; such a pair
is what host contention during one of the two cells leaves behind, so the slower one is flagged "suspect:
re-measure" in the report's plots and tables."""

from __future__ import annotations

SUSPECT = "suspect: re-measure"
# Cells compared with each other: everything but the input size is the same.
SAME_CELL = ["device", "model", "format", "runtime", "precision", "graph", "threads"]


def _interval(r) -> tuple[float, float]:
    """The median's 95% interval, else (fewer than 6 samples) the samples' min..max, else the latency alone."""
    for lo, hi in (("median_ci_low_ms", "median_ci_high_ms"), ("min_ms", "max_ms")):
        a, b = r.get(lo), r.get(hi)
        if a == a and b == b and a is not None and b is not None:
            return float(a), float(b)
    return float(r["latency_ms"]), float(r["latency_ms"])


def _fmt(r, lo_hi) -> str:
    return f"{r['resolution']} at {r['latency_ms']:.2f} ms (95% interval {lo_hi[0]:.2f}-{lo_hi[1]:.2f})"


def inversions(df) -> dict:
    """``{row index: reason}`` for every row of ``df`` (the report's frame: ``latency_ms``, ``height``, ``width``,
    the :data:`SAME_CELL` columns and the interval columns) slower, beyond both intervals, than a larger input of
    the same cell. The reason names the larger input it lost to (the largest such gap)."""
    out = {}
    keys = [c for c in SAME_CELL if c in df.columns]
    timed = df[df.latency_ms.notna()]
    for _, group in timed.groupby(keys, sort=False, dropna=False):
        if len(group) < 2:
            continue
        rows = [(i, r, _interval(r), int(r["height"]) * int(r["width"])) for i, r in group.iterrows()]
        for i, small, (s_lo, _s_hi), s_px in rows:
            beaten = [(b_lo, big, (b_lo, b_hi)) for _, big, (b_lo, b_hi), b_px in rows if b_px > s_px and s_lo > b_hi]
            if beaten:
                _, big, big_iv = min(beaten, key=lambda t: t[0])
                out[i] = (
                    f"{small['model']} {_fmt(small, _interval(small))} is slower than at {_fmt(big, big_iv)} "
                    f"with fewer pixels ({small['runtime']}, {small['device']})"
                )
    return out


def flag(df):
    """``df`` with ``suspect`` (bool) and ``suspect_reason`` columns (see :func:`inversions`)."""
    found = inversions(df)
    return df.assign(suspect=[i in found for i in df.index], suspect_reason=[found.get(i, "") for i in df.index])
