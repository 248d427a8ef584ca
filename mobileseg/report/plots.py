"""Plots in the style of the TopFormer paper's Figure 1, plus the paper-vs-measured and runtime views.

Only matplotlib (Agg backend) and pandas. Every plot is written as PNG and SVG; the functions return the paths.
"""
from __future__ import annotations

from pathlib import Path

from .pareto import frontier_path, pareto_mask

TOPFORMER_COLOR = "#d62728"
OTHER_COLOR = "#1f77b4"
# Our choice, not read from the paper (its Figure 1 is not in the text): 30 frames per second.
REALTIME_MS = 1000.0 / 30
BUBBLE_PER_M_PARAM = 40.0  # marker area (points^2) per million parameters


def _pyplot():
    from ..errors import require

    mpl = require("matplotlib", "report", "the report plots")
    mpl.use("Agg", force=True)
    mpl.rcParams["svg.hashsalt"] = "mobileseg"  # stable element ids: the same data gives the same SVG bytes
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_base: Path) -> list[Path]:
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out_base.with_suffix(f".{ext}")
        fig.savefig(p, dpi=150 if ext == "png" else None, bbox_inches="tight", metadata=_metadata(ext))
        paths.append(p)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def _metadata(ext):
    # No creation date in the files: re-running the report on the same data gives the same bytes (clean diffs).
    return {"Date": None} if ext == "svg" else {}


def figure1(points, out_base, title: str, xlabel: str = "Latency (ms, log scale)", ylabel: str = "mIoU (%)",
            realtime_ms: float | None = REALTIME_MS, note: str | None = None) -> list[Path]:
    """mIoU against latency (log axis), bubble area = parameters, TopFormer red and the others blue.

    ``points``: DataFrame with ``label``, ``latency_ms``, ``miou``, ``params_m`` (NaN allowed: a small default
    bubble) and ``is_topformer``. The Pareto frontier (faster and more accurate is better) is drawn as a line and
    its points are outlined; the dashed vertical line bounds the real-time zone (left of it).
    """
    plt = _pyplot()
    pts = points[points.latency_ms.notna() & points.miou.notna()].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.set_xscale("log")
    sizes = [BUBBLE_PER_M_PARAM * (p if p == p and p else 1.0) for p in pts.params_m]
    colors = [TOPFORMER_COLOR if t else OTHER_COLOR for t in pts.is_topformer]
    on_front = pareto_mask(pts.latency_ms, pts.miou)
    ax.scatter(pts.latency_ms, pts.miou, s=sizes, c=colors, alpha=0.55,
               edgecolors=["black" if f else "none" for f in on_front], linewidths=1.2, zorder=3)
    path = frontier_path(pts.latency_ms, pts.miou)
    if path:
        xs, ys = zip(*path)
        ax.plot(xs, ys, "-", color="#555555", lw=1.2, alpha=0.8, zorder=2, label="Pareto frontier")
    if len(pts):
        lo, hi = float(pts.latency_ms.min()), float(pts.latency_ms.max())
        ax.set_xlim(lo / 1.6, hi * 3.2)  # room for the labels right of the slowest points
        ylo, yhi = float(pts.miou.min()), float(pts.miou.max())
        ax.set_ylim(ylo - 2.0, yhi + 2.0)
    _place_labels(fig, ax, pts)
    if realtime_ms:
        ax.axvspan(ax.get_xlim()[0], realtime_ms, color="#2ca02c", alpha=0.06, zorder=0)
        ax.axvline(realtime_ms, ls="--", color="#2ca02c", lw=1.3, zorder=1)
        ax.text(realtime_ms, 0.98, f"real-time zone\n(< {realtime_ms:.0f} ms) ", transform=ax.get_xaxis_transform(),
                ha="right", va="top", fontsize=8, color="#2ca02c")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=TOPFORMER_COLOR, alpha=0.6, label="TopFormer"),
               Line2D([], [], marker="o", ls="", color=OTHER_COLOR, alpha=0.6, label="previous models"),
               Line2D([], [], color="#555555", label="Pareto frontier"),
               Line2D([], [], ls="--", color="#2ca02c", label="real-time zone boundary")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=4, fontsize=8,
              title="bubble area = parameters", title_fontsize=8, frameon=False)
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    if note:
        fig.text(0.01, -0.1, note, fontsize=7, color="#555555", ha="left", va="top", wrap=True)
    return _save(fig, Path(out_base))


def _plain_log_ticks(axis) -> None:
    """Log-axis ticks as plain numbers (20, 50, 100, 200 ...) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter

    def minor(v, _pos):
        lead = int(f"{v:.0e}"[0])
        return f"{v:g}" if lead in (2, 5) else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


_OFFSETS = [(7, 3), (7, -11), (-7, 3), (-7, -11), (7, 13), (7, -21), (-7, 13), (-7, -21), (7, 23), (7, -31)]


def _place_labels(fig, ax, pts) -> None:
    """Write each label beside its point, trying a few offsets so that labels do not overlap each other."""
    renderer = fig.canvas.get_renderer()
    placed = []
    order = sorted(range(len(pts)), key=lambda i: (-pts.miou.iloc[i], pts.latency_ms.iloc[i]))
    for i in order:
        r = pts.iloc[i]
        best = None
        for dx, dy in _OFFSETS:
            t = ax.annotate(r.label, (r.latency_ms, r.miou), xytext=(dx, dy), textcoords="offset points",
                            fontsize=8, ha="left" if dx > 0 else "right",
                            color=TOPFORMER_COLOR if r.is_topformer else "#333333", zorder=4)
            box = t.get_window_extent(renderer).expanded(1.02, 1.1)
            if not any(box.overlaps(b) for b in placed):
                best = box
                break
            t.remove()
        if best is None:  # crowded: keep the first position
            t = ax.annotate(r.label, (r.latency_ms, r.miou), xytext=_OFFSETS[0], textcoords="offset points",
                            fontsize=8, color=TOPFORMER_COLOR if r.is_topformer else "#333333", zorder=4)
            best = t.get_window_extent(renderer)
        placed.append(best)


def paper_vs_measured(rows, out_base, title: str) -> list[Path]:
    """Per model: the paper's Snapdragon 865 latency beside each measured (device, runtime) median, log axis.

    ``rows``: DataFrame with ``model``, ``resolution``, ``series`` (legend name), ``latency_ms`` and ``p10_ms``/
    ``p90_ms`` (NaN for the paper's numbers).
    """
    plt = _pyplot()
    keys = list(dict.fromkeys(f"{m}\n{r}" for m, r in zip(rows.model, rows.resolution)))
    series = list(dict.fromkeys(rows.series))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(keys) + 2), 4.8))
    width = 0.8 / max(1, len(series))
    cmap = plt.get_cmap("tab10")
    for si, s in enumerate(series):
        sub = rows[rows.series == s]
        xs, ys, lo, hi = [], [], [], []
        for r in sub.itertuples():
            k = keys.index(f"{r.model}\n{r.resolution}")
            xs.append(k + (si - (len(series) - 1) / 2) * width)
            ys.append(r.latency_ms)
            lo.append(max(0.0, r.latency_ms - r.p10_ms) if r.p10_ms == r.p10_ms else 0.0)
            hi.append(max(0.0, r.p90_ms - r.latency_ms) if r.p90_ms == r.p90_ms else 0.0)
        color = "#7f7f7f" if s.startswith("paper") else cmap(si % 10)
        ax.bar(xs, ys, width=width, color=color, label=s, yerr=[lo, hi], capsize=2, hatch="//" if s.startswith("paper") else None)
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys, fontsize=8)
    ax.set_ylabel("latency (ms, log scale; bars = median, whiskers = p10..p90)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.25)
    return _save(fig, Path(out_base))


def runtime_comparison(df, out_base, title: str) -> list[Path]:
    """Per model x resolution, one bar per runtime (median, p10..p90 whiskers), log axis."""
    rows = df.assign(series=df.runtime + " (" + df.precision + ")")
    return paper_vs_measured(rows[["model", "resolution", "series", "latency_ms", "p10_ms", "p90_ms"]], out_base, title)
