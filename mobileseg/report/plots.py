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
            realtime_ms: float | None = REALTIME_MS, note: str | None = None, inspect=None) -> list[Path]:
    """mIoU against latency (log axis), bubble area = parameters, TopFormer red and the others blue.

    ``points``: DataFrame with ``label``, ``latency_ms``, ``miou``, ``params_m`` (NaN allowed: a small default
    bubble) and ``is_topformer``. The Pareto frontier (faster and more accurate is better) is drawn as a line and
    its points are outlined; the dashed vertical line bounds the real-time zone (left of it). Optional
    ``ci_low_ms``/``ci_high_ms`` columns (the 95% interval of the median) are drawn as horizontal error bars.
    ``inspect(fig, ax)``, when given, is called before saving (the tests check the layout with it).
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
    if "ci_low_ms" in pts and pts.ci_low_ms.notna().any():
        ok = pts.ci_low_ms.notna() & pts.ci_high_ms.notna()
        sub = pts[ok]
        ax.errorbar(sub.latency_ms, sub.miou, xerr=[(sub.latency_ms - sub.ci_low_ms).clip(lower=0),
                                                    (sub.ci_high_ms - sub.latency_ms).clip(lower=0)],
                    fmt="none", ecolor="#333333", elinewidth=0.9, capsize=2, zorder=3.5)
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
        _realtime_zone(ax, realtime_ms)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=TOPFORMER_COLOR, alpha=0.6, label="TopFormer"),
               Line2D([], [], marker="o", ls="", color=OTHER_COLOR, alpha=0.6, label="previous models"),
               Line2D([], [], color="#555555", label="Pareto frontier"),
               Line2D([], [], ls="--", color="#2ca02c", label="real-time zone boundary")]
    if not (realtime_ms and ax.get_xlim()[0] < realtime_ms < ax.get_xlim()[1]):
        handles = handles[:3]  # no boundary in view: no legend entry for it
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=4, fontsize=8,
              title="bubble area = parameters", title_fontsize=8, frameon=False)
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    if note:
        fig.text(0.01, -0.1, note, fontsize=7, color="#555555", ha="left", va="top", wrap=True)
    if inspect:
        inspect(fig, ax)
    return _save(fig, Path(out_base))


def _realtime_zone(ax, realtime_ms: float) -> None:
    """Shade the real-time zone and label it inside the axes: beside the boundary when it is in view (on the side
    with room), else in the corner, saying on which side of the axis the zone lies."""
    lo, hi = ax.get_xlim()
    color = "#2ca02c"
    text = f"real-time zone (< {realtime_ms:.0f} ms)"
    if lo < realtime_ms < hi:
        ax.axvspan(lo, realtime_ms, color=color, alpha=0.06, zorder=0)
        ax.axvline(realtime_ms, ls="--", color=color, lw=1.3, zorder=1)
        ax.set_xlim(lo, hi)
        import math

        left_room = (math.log(realtime_ms) - math.log(lo)) / (math.log(hi) - math.log(lo))
        ha, pad = ("right", " ") if left_room > 0.3 else ("left", " ")
        ax.text(realtime_ms, 0.98, f"{pad}real-time zone\n{pad}(< {realtime_ms:.0f} ms){pad}",
                transform=ax.get_xaxis_transform(), ha=ha, va="top", fontsize=8, color=color, clip_on=True)
    elif realtime_ms <= lo:  # every point is slower than real time
        ax.text(0.01, 0.98, f"{text}: left of this axis, every point is slower", transform=ax.transAxes,
                ha="left", va="top", fontsize=8, color=color)
    else:
        ax.axvspan(lo, hi, color=color, alpha=0.06, zorder=0)
        ax.set_xlim(lo, hi)
        ax.text(0.01, 0.98, f"{text}: every point is inside it", transform=ax.transAxes, ha="left", va="top",
                fontsize=8, color=color)


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


def paper_vs_measured(rows, out_base, title: str, inspect=None) -> list[Path]:
    """Per model: the paper's Snapdragon 865 latency beside each measured (device, runtime) median, log axis.

    ``rows``: DataFrame with ``model``, ``resolution``, ``series`` (legend name), ``latency_ms`` and ``ci_low_ms``/
    ``ci_high_ms``, the 95% interval of the median (NaN for the paper's numbers and where there is none). The x
    labels are turned until no two overlap (:func:`_separate_xlabels`).
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
            lo.append(max(0.0, r.latency_ms - r.ci_low_ms) if r.ci_low_ms == r.ci_low_ms else 0.0)
            hi.append(max(0.0, r.ci_high_ms - r.latency_ms) if r.ci_high_ms == r.ci_high_ms else 0.0)
        color = "#7f7f7f" if s.startswith("paper") else cmap(si % 10)
        ax.bar(xs, ys, width=width, color=color, label=s, yerr=[lo, hi], capsize=2, hatch="//" if s.startswith("paper") else None)
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys, fontsize=8)
    ax.set_ylabel("latency (ms, log scale; bars = median,\nwhiskers = its 95% confidence interval)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(True, axis="y", which="both", alpha=0.25)
    _separate_xlabels(fig, ax)
    if inspect:
        inspect(fig, ax)
    return _save(fig, Path(out_base))


def xlabel_overlaps(fig, ax) -> int:
    """How many neighbouring x tick labels overlap (0: all readable)."""
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    return sum(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))


def _separate_xlabels(fig, ax) -> None:
    """Turn the x labels (30, 45, then 90 degrees) until no two overlap; at 90 also shrink the font."""
    for angle, size in ((0, 8), (30, 8), (45, 8), (90, 7), (90, 6)):
        for t in ax.get_xticklabels():
            t.set_rotation(angle)
            t.set_ha("center" if angle in (0, 90) else "right")
            t.set_rotation_mode("anchor" if angle not in (0, 90) else "default")
            t.set_fontsize(size)
        if not xlabel_overlaps(fig, ax):
            return


def runtime_comparison(df, out_base, title: str) -> list[Path]:
    """Per model x resolution, one bar per runtime (median, p10..p90 whiskers), log axis."""
    rows = df.assign(series=df.runtime + " (" + df.precision + ")", ci_low_ms=df.median_ci_low_ms,
                     ci_high_ms=df.median_ci_high_ms)
    return paper_vs_measured(rows[["model", "resolution", "series", "latency_ms", "ci_low_ms", "ci_high_ms"]],
                             out_base, title)


def memory_vs_latency(df, out_base, title: str, inspect=None) -> list[Path]:
    """Peak RSS growth (MB, over load + runs) against the median latency, one colour per runtime, log-log."""
    plt = _pyplot()
    pts = df[df.latency_ms.notna() & df.peak_rss_growth_mb.notna()].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    cmap = plt.get_cmap("tab10")
    for i, (rt, sub) in enumerate(pts.groupby("runtime", sort=True)):
        ax.scatter(sub.latency_ms, sub.peak_rss_growth_mb.clip(lower=0.1), color=cmap(i % 10), label=rt, alpha=0.7,
                   zorder=3)
        if "median_ci_low_ms" in sub and sub.median_ci_low_ms.notna().any():
            ok = sub[sub.median_ci_low_ms.notna()]
            ax.errorbar(ok.latency_ms, ok.peak_rss_growth_mb.clip(lower=0.1),
                        xerr=[(ok.latency_ms - ok.median_ci_low_ms).clip(lower=0),
                              (ok.median_ci_high_ms - ok.latency_ms).clip(lower=0)],
                        fmt="none", ecolor=cmap(i % 10), elinewidth=0.8, capsize=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    labels = pts.assign(label=pts.model + " " + pts.resolution, miou=pts.peak_rss_growth_mb.clip(lower=0.1),
                        is_topformer=[str(m).startswith("topformer") for m in pts.model])
    if len(pts):
        ax.set_xlim(float(pts.latency_ms.min()) / 1.6, float(pts.latency_ms.max()) * 3.2)
    _place_labels(fig, ax, labels)
    ax.set_xlabel("latency (ms, median, log scale; whiskers: its 95% interval)")
    ax.set_ylabel("peak RSS growth over load + runs (MB, log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title="runtime", title_fontsize=8)
    ax.grid(True, which="both", alpha=0.25)
    if inspect:
        inspect(fig, ax)
    return _save(fig, Path(out_base))


def top_ops(ops, out_base, title: str, n: int = 10, inspect=None) -> list[Path]:
    """Horizontal bars of the ``n`` costliest ops of one cell (``ops``: rows with ``name``, ``type``,
    ``median_ms``, ``share``), the biggest on top, each labelled with its share of the total."""
    plt = _pyplot()
    top = sorted(ops, key=lambda o: -(o.get("median_ms") or 0))[:n][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(3, len(top)) + 1.2))
    names = [f"{o.get('name')} ({o.get('type')})" if o.get("type") else str(o.get("name")) for o in top]
    names = [nm if len(nm) <= 60 else nm[:28] + "..." + nm[-29:] for nm in names]
    vals = [o.get("median_ms") or 0 for o in top]
    ax.barh(range(len(top)), vals, color="#1f77b4")
    ax.set_yticks(range(len(top)))
    ax.set_yticklabels(names, fontsize=7)
    for i, o in enumerate(top):
        ax.text(vals[i], i, f" {100 * (o.get('share') or 0):.1f}%", va="center", fontsize=7)
    if vals:
        ax.set_xlim(0, max(vals) * 1.18)
    ax.set_xlabel("median time per inference (ms)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.25)
    if inspect:
        inspect(fig, ax)
    return _save(fig, Path(out_base))
