"""Pareto frontier of (latency, accuracy): lower latency and higher mIoU are better."""

from __future__ import annotations


def pareto_mask(latency, score) -> list[bool]:
    """``True`` for each point that no other point dominates.

    A point is dominated when another is at least as fast and at least as accurate, and strictly better in one of
    the two. Identical points do not dominate each other (both stay on the frontier). Points with a missing value
    are never on the frontier.
    """
    pts = [(float(x), float(y)) for x, y in zip(latency, score)]
    ok = [x == x and y == y for x, y in pts]  # NaN check
    mask = []
    for i, (x, y) in enumerate(pts):
        if not ok[i]:
            mask.append(False)
            continue
        dominated = any(
            ok[j] and xj <= x and yj >= y and (xj < x or yj > y) for j, (xj, yj) in enumerate(pts) if j != i
        )
        mask.append(not dominated)
    return mask


def frontier_path(latency, score) -> list[tuple[float, float]]:
    """The frontier points sorted by latency (the polyline drawn on the plots)."""
    mask = pareto_mask(latency, score)
    pts = [(float(x), float(y)) for x, y, m in zip(latency, score, mask) if m]
    return sorted(pts)
