"""Checks that a drawn plot can be read: each returns what is wrong, in words, so a test can fail on it.

A label (any text drawn in the axes: point labels, the real-time zone's) must lie inside the axes, overlap no other
label and stay off the core of every other point's bubble; an error bar must end inside the axis limits; a log axis must carry at
least :data:`MIN_LOG_TICKS` numbered ticks; neighbouring tick labels must not overlap.
"""

from __future__ import annotations

MIN_LOG_TICKS = 4
BUBBLE_CORE = 0.7  # a label may touch another point's bubble, not reach into its inner 70%
_TOL = 1.0  # display pixels: a box touching the axes' edge is still inside


def labels(ax) -> list:
    """The texts drawn inside ``ax`` (matplotlib ``Text``/``Annotation``), the empty ones left out."""
    return [t for t in ax.texts if t.get_visible() and t.get_text().strip()]


def label_problems(fig, ax) -> list[str]:
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    texts = labels(ax)
    boxes = [t.get_window_extent(renderer) for t in texts]
    out = []
    for t, b in zip(texts, boxes):
        if b.x0 < box.x0 - _TOL or b.x1 > box.x1 + _TOL or b.y0 < box.y0 - _TOL or b.y1 > box.y1 + _TOL:
            out.append(f"label {t.get_text()!r} is not inside the axes")
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if _overlap(boxes[i], boxes[j]):
                out.append(f"labels {texts[i].get_text()!r} and {texts[j].get_text()!r} overlap")
    for t, b in zip(texts, boxes):
        own = getattr(t, "anchor_px", None)
        for (cx, cy), r in _bubbles(ax, fig.dpi):
            if own is not None and abs(cx - own[0]) < 0.5 and abs(cy - own[1]) < 0.5:
                continue
            # distance from the bubble's centre to the label's box: inside the inner 70% of the radius is "on it"
            dx, dy = max(b.x0 - cx, 0, cx - b.x1), max(b.y0 - cy, 0, cy - b.y1)
            if (dx * dx + dy * dy) ** 0.5 < BUBBLE_CORE * r:
                out.append(f"label {t.get_text()!r} lies on the bubble at {cx:.0f},{cy:.0f} px")
    return out


def errorbar_problems(ax) -> list[str]:
    """Error bars (``ax.errorbar``, ``ax.bar(yerr=...)``) whose ends lie outside the axis limits."""
    from matplotlib.container import ErrorbarContainer

    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    out = []
    for c in ax.containers:
        if not isinstance(c, ErrorbarContainer):
            continue
        for coll in c.lines[2]:
            for seg in coll.get_segments():
                for x, y in seg:
                    if not (x0 <= x <= x1 and y0 <= y <= y1):
                        out.append(
                            f"an error bar ends at ({x:.4g}, {y:.4g}), outside the axes "
                            f"(x {x0:.4g}..{x1:.4g}, y {y0:.4g}..{y1:.4g})"
                        )
    return out


def tick_problems(fig, ax) -> list[str]:
    """Log axes with fewer than :data:`MIN_LOG_TICKS` numbered ticks in view; overlapping x tick labels."""
    fig.canvas.draw()
    out = []
    for name, axis, (lo, hi) in (("x", ax.xaxis, ax.get_xlim()), ("y", ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted((lo, hi))
        shown = [
            t
            for t in axis.get_majorticklabels() + axis.get_minorticklabels()
            if t.get_text() and lo <= t.get_position()[0 if name == "x" else 1] <= hi
        ]
        if len(shown) < MIN_LOG_TICKS:
            out.append(
                f"the log {name} axis has {len(shown)} numbered ticks "
                f"({', '.join(t.get_text() for t in shown)}); at least {MIN_LOG_TICKS} are needed"
            )
    if xlabel_overlaps(fig, ax):
        out.append(f"{xlabel_overlaps(fig, ax)} pairs of x tick labels overlap")
    return out


def problems(fig, ax) -> list[str]:
    """Every check above on one drawn plot: empty when it can be read."""
    return tick_problems(fig, ax) + label_problems(fig, ax) + errorbar_problems(ax)


def xlabel_overlaps(fig, ax) -> int:
    """How many neighbouring x tick labels overlap (0: all readable)."""
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    return sum(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 - _TOL and b.x0 < a.x1 - _TOL and a.y0 < b.y1 - _TOL and b.y0 < a.y1 - _TOL


def _bubbles(ax, dpi) -> list[tuple[tuple[float, float], float]]:
    """``((x, y), radius)`` in display pixels of every scatter point in ``ax``."""
    from matplotlib.collections import PathCollection

    out = []
    for coll in ax.collections:
        if isinstance(coll, PathCollection) and len(coll.get_offsets()):
            centres = coll.get_offset_transform().transform(coll.get_offsets())
            sizes = list(coll.get_sizes()) or [36.0]
            for i, c in enumerate(centres):
                s = sizes[i % len(sizes)]
                out.append(((float(c[0]), float(c[1])), (s**0.5) / 2 * dpi / 72))
    return out
