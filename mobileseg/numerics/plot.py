"""Error against depth, log scale: one line per format/runtime/precision report (matplotlib: the ``report`` extra).

Depth is the row's position in graph order divided by the number of rows, so models and formats with different
numbers of matched tensors share one axis. Each line's first diverging layer is circled and the per-layer limits
are drawn as dashed lines.
"""

from __future__ import annotations

import math

from ..errors import require


def label(rep: dict) -> str:
    dev = "" if rep.get("device") in (None, "host") else f" @ {rep['device']}"
    return f"{rep['format']} ({rep['runtime']}) {rep['precision']}{dev}"


def plot(reports: list[dict], path: str, title: str | None = None) -> str:
    matplotlib = require("matplotlib", "report", "the per-layer error plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    limits = {}
    floor = 1e-12
    for rep in reports:
        rows = rep["layers"]
        if not rows:
            continue
        n = max(len(rows) - 1, 1)
        xs = [r["depth"] / n for r in rows]
        ys = [max(_num(r["rel_l2"]), floor) for r in rows]
        (line,) = ax.plot(xs, ys, lw=1.2, label=label(rep))
        first = rep.get("first_diverging")
        if first:
            ax.plot(
                [first["depth"] / n], [max(_num(first["rel_l2"]), floor)], "o", ms=9, mfc="none", color=line.get_color()
            )
        limits.setdefault(rep["limit_rel_l2"], line.get_color())
    for lim in limits:
        ax.axhline(lim, ls="--", lw=0.8, color="grey")
        ax.text(1.0, lim, f" limit {lim:g}", va="bottom", ha="right", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("depth (matched tensors in graph order, 0 = input side, 1 = output)")
    ax.set_ylabel("rel-L2 vs PyTorch (exact: at 1e-12)")
    if title is None and reports:
        r0 = reports[0]
        res = "x".join(map(str, r0.get("resolution") or []))
        title = f"{r0.get('model')} {res}: per-layer error (circles: first layer over the limit)"
    ax.set_title(title or "per-layer error", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _num(v) -> float:
    if isinstance(v, str):
        return math.inf
    return float(v)
