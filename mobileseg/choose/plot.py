"""The choose run's Pareto plot: every candidate's median latency with its interval against its mIoU, the budget
line and the chosen point. Unmeasured accuracy is drawn hollow at its fp32 proxy (so it is visibly a guess);
numerics-only candidates (emulated, software Vulkan) are listed in the note, never on the latency axis."""

from __future__ import annotations

import math
from pathlib import Path

from ..report.plots import _pyplot, _save


def pareto(rows: list, budget_ms: float, out_base, title: str) -> list:
    """``rows``: dicts with ``id``, ``median``, ``low``, ``high``, ``miou``, ``measured`` (bool), ``fate``,
    ``numerics_only`` (bool). Returns the PNG and SVG paths."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    plotted, left_out = [], []
    for r in rows:
        y = r.get("miou")
        if r.get("numerics_only") or r.get("median") is None or y is None:
            left_out.append(r["id"])
            continue
        lo = r["low"] if math.isfinite(r.get("low", -math.inf)) else r["median"]
        hi = r["high"] if math.isfinite(r.get("high", math.inf)) else r["median"]
        chosen = r.get("fate") == "chosen"
        color = "#d62728" if chosen else ("#1f77b4" if r.get("measured") else "#7f7f7f")
        ax.errorbar(
            [r["median"]],
            [y],
            xerr=[[r["median"] - lo], [hi - r["median"]]],
            fmt="none",
            ecolor=color,
            alpha=0.6,
            capsize=2,
        )
        ax.scatter(
            [r["median"]],
            [y],
            s=160 if chosen else 36,
            marker="*" if chosen else "o",
            facecolors=color if r.get("measured") else "none",
            edgecolors=color,
            zorder=3,
        )
        ax.annotate(
            r["id"] + (" (chosen)" if chosen else ""),
            (r["median"], y),
            fontsize=6,
            xytext=(4, 3),
            textcoords="offset points",
        )
        plotted.append(r)
    ax.axvline(budget_ms, color="#2ca02c", linestyle="--", linewidth=1)
    ax.text(budget_ms, ax.get_ylim()[1], f" budget {budget_ms:g} ms", color="#2ca02c", fontsize=8, va="top")
    if plotted:
        ax.set_xscale("log")
    ax.set_xlabel("median latency (ms, log scale), bars: anytime-valid interval")
    ax.set_ylabel("mIoU (%); hollow: accuracy not measured (fp32 published as a proxy)")
    ax.set_title(title, fontsize=10)
    if left_out:
        fig.text(
            0.01, 0.01, "not on the axes (numerics only or no latency/mIoU): " + ", ".join(left_out)[:300], fontsize=6
        )
    return _save(fig, Path(out_base))
