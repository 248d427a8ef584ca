"""Plots in the style of the TopFormer paper's Figure 1, plus the paper-vs-measured and runtime views.

Only matplotlib (Agg backend) and pandas. Every plot is written as PNG and SVG; the functions return the paths.
"""

from __future__ import annotations

from pathlib import Path

from .layout import xlabel_overlaps  # noqa: F401  (re-exported: the tests use it from here)
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


SUSPECT_COLOR = "#b8860b"  # dark gold: no runtime colour of tab10, no precision colour
SUSPECT_TEXT = "suspect: re-measure"


def figure1(
    points,
    out_base,
    title: str,
    xlabel: str = "Latency (ms, log scale)",
    ylabel: str = "mIoU (%)",
    realtime_ms: float | None = REALTIME_MS,
    note: str | None = None,
    inspect=None,
) -> list[Path]:
    """mIoU against latency (log axis), bubble area = parameters, TopFormer red and the others blue.

    ``points``: DataFrame with ``label``, ``latency_ms``, ``miou``, ``params_m`` (NaN allowed: a small default
    bubble) and ``is_topformer``. The Pareto frontier (faster and more accurate is better) is drawn as a line and
    its points are outlined; the dashed vertical line bounds the real-time zone (left of it). Optional
    ``ci_low_ms``/``ci_high_ms`` columns (the 95% interval of the median) are drawn as horizontal error bars, and
    an optional boolean ``suspect`` column rings a point and adds :data:`SUSPECT_TEXT` to its label. The points
    are one SVG group, id ``<file stem>-points``, in the order of the complete rows of ``points`` (the HTML page
    attaches each point's record to it). ``inspect(fig, ax)``, when given, is called before saving.
    """
    plt = _pyplot()
    pts = points[points.latency_ms.notna() & points.miou.notna()].reset_index(drop=True)
    suspect = list(pts.suspect.fillna(False).astype(bool)) if "suspect" in pts else [False] * len(pts)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.set_xscale("log")
    sizes = [BUBBLE_PER_M_PARAM * (p if p == p and p else 1.0) for p in pts.params_m]
    colors = [TOPFORMER_COLOR if t else OTHER_COLOR for t in pts.is_topformer]
    on_front = pareto_mask(pts.latency_ms, pts.miou)
    bubbles = ax.scatter(
        pts.latency_ms,
        pts.miou,
        s=sizes,
        c=colors,
        alpha=0.55,
        edgecolors=["black" if f else "none" for f in on_front],
        linewidths=1.2,
        zorder=3,
    )
    bubbles.set_gid(f"{Path(out_base).name}-points")
    if any(suspect):
        ring = [i for i, f in enumerate(suspect) if f]
        ax.scatter(
            pts.latency_ms[ring],
            pts.miou[ring],
            s=[sizes[i] * 2.2 + 60 for i in ring],
            facecolors="none",
            edgecolors=SUSPECT_COLOR,
            linewidths=1.6,
            linestyles="--",
            zorder=3.6,
        )
    lo_ms, hi_ms = pts.latency_ms.astype(float), pts.latency_ms.astype(float)
    has_ci = "ci_low_ms" in pts and pts.ci_low_ms.notna().any()
    if has_ci:
        ok = pts.ci_low_ms.notna() & pts.ci_high_ms.notna()
        sub = pts[ok]
        ax.errorbar(
            sub.latency_ms,
            sub.miou,
            xerr=[(sub.latency_ms - sub.ci_low_ms).clip(lower=0), (sub.ci_high_ms - sub.latency_ms).clip(lower=0)],
            fmt="none",
            ecolor="#333333",
            elinewidth=0.9,
            capsize=2,
            zorder=3.5,
        )
        lo_ms = pts.ci_low_ms.where(ok, pts.latency_ms).combine(pts.latency_ms, min)
        hi_ms = pts.ci_high_ms.where(ok, pts.latency_ms).combine(pts.latency_ms, max)
    path = frontier_path(pts.latency_ms, pts.miou)
    if len(path) > 1:
        xs, ys = zip(*path)
        ax.plot(xs, ys, "-", color="#555555", lw=1.2, alpha=0.8, zorder=2)
    if len(pts):
        # the whole of every error bar in view, and room for the labels right of the slowest points
        ax.set_xlim(float(lo_ms.min()) / 1.4, float(hi_ms.max()) * 3.2)
        ylo, yhi = float(pts.miou.min()), float(pts.miou.max())
        ax.set_ylim(ylo - 2.0, yhi + 3.0)  # room above the top cluster for its labels
    avoid = []
    if realtime_ms:
        avoid.append(_realtime_zone(ax, realtime_ms))
    _plain_log_ticks(ax.xaxis)
    texts = [f"{lab}\n{SUSPECT_TEXT}" if f else lab for lab, f in zip(pts.label, suspect)]
    label_colors = [
        SUSPECT_COLOR if f else (TOPFORMER_COLOR if t else "#333333") for f, t in zip(suspect, pts.is_topformer)
    ]
    place_labels(fig, ax, list(pts.latency_ms), list(pts.miou), texts, label_colors, sizes, avoid=avoid)
    _legend(ax, pts, path, has_ci, any(suspect), realtime_ms)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    if note:
        fig.text(0.01, -0.1, note, fontsize=7, color="#555555", ha="left", va="top", wrap=True)
    if inspect:
        inspect(fig, ax)
    return _save(fig, Path(out_base))


def _legend(ax, pts, path, has_ci: bool, has_suspect: bool, realtime_ms) -> None:
    """A legend entry for each thing drawn, and only for those."""
    from matplotlib.lines import Line2D

    handles = []
    if pts.is_topformer.any():
        handles.append(Line2D([], [], marker="o", ls="", color=TOPFORMER_COLOR, alpha=0.6, label="TopFormer"))
    if (~pts.is_topformer.astype(bool)).any():
        handles.append(Line2D([], [], marker="o", ls="", color=OTHER_COLOR, alpha=0.6, label="previous models"))
    if len(path) > 1:
        handles.append(Line2D([], [], color="#555555", label="Pareto frontier"))
    if has_ci:
        handles.append(
            Line2D([], [], marker="|", ls="-", color="#333333", lw=0.9, label="95% confidence interval of the median")
        )
    if has_suspect:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                mfc="none",
                mec=SUSPECT_COLOR,
                mew=1.6,
                label=f"{SUSPECT_TEXT}: a smaller input slower beyond both intervals",
            )
        )
    lo, hi = ax.get_xlim()
    if realtime_ms and lo < realtime_ms < hi:
        handles.append(Line2D([], [], ls="--", color="#2ca02c", label="real-time zone boundary"))
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.11),
        ncol=len(handles) if len(handles) <= 4 else 3,
        fontsize=8,
        title="bubble area = parameters",
        title_fontsize=8,
        frameon=False,
    )


def _realtime_zone(ax, realtime_ms: float):
    """Shade the real-time zone and label it inside the axes: beside the boundary when it is in view (on the side
    with room), else in the corner, saying on which side of the axis the zone lies. Returns the label."""
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
        return ax.text(
            realtime_ms,
            0.98,
            f"{pad}real-time zone\n{pad}(< {realtime_ms:.0f} ms){pad}",
            transform=ax.get_xaxis_transform(),
            ha=ha,
            va="top",
            fontsize=8,
            color=color,
            clip_on=True,
        )
    if realtime_ms <= lo:  # every point is slower than real time
        return ax.text(
            0.01,
            0.98,
            f"{text}: left of this axis, every point is slower",
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize=8,
            color=color,
        )
    ax.axvspan(lo, hi, color=color, alpha=0.06, zorder=0)
    ax.set_xlim(lo, hi)
    return ax.text(
        0.01,
        0.98,
        f"{text}: every point is inside it",
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize=8,
        color=color,
    )


# Tick values per decade, fewest first: the first set that puts MIN_LOG_TICKS numbers in view is used.
_MANTISSAS = ((1,), (1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9))


def _plain_log_ticks(axis) -> None:
    """Numbered log-axis ticks as plain numbers (10, 20, 50 ...), at least ``layout.MIN_LOG_TICKS`` of them in
    view however narrow the range (call it once the axis limits are final); unnumbered minor ticks between."""
    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    from .layout import MIN_LOG_TICKS

    lo, hi = sorted(axis.get_view_interval())
    if not (lo > 0 and hi > lo):
        return
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    for mantissas in _MANTISSAS:
        ticks = [m * 10.0**e for e in decades for m in mantissas if lo <= m * 10.0**e <= hi]
        if len(ticks) >= MIN_LOG_TICKS:
            break
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_locator(LogLocator(subs="all"))
    axis.set_minor_formatter(NullFormatter())


# adjustText's settings, tried in turn until the labels pass ``layout.label_problems`` (the best try is kept): a
# fixed number of iterations (its default, a time limit, would make the layout depend on the machine's speed), and
# pushes strong enough to clear the big bubbles of a crowded cluster.
_ADJUST_COMMON = {"iter_lim": 1000, "ensure_inside_axes": True, "min_arrow_len": 8}
ADJUST_TRIES = (
    {
        "force_text": (0.6, 1.0),
        "force_static": (0.3, 0.6),
        "force_pull": (0.01, 0.01),
        "expand": (1.08, 1.3),
        "max_move": (15, 15),
    },
    {
        "force_text": (0.3, 0.6),
        "force_static": (1.0, 1.5),
        "force_pull": (0.002, 0.002),
        "expand": (1.08, 1.3),
        "max_move": (40, 40),
    },
    {
        "force_text": (0.6, 1.0),
        "force_static": (0.3, 0.6),
        "force_pull": (0.002, 0.002),
        "expand": (1.08, 1.3),
        "max_move": (15, 15),
    },
    {
        "force_text": (0.6, 1.0),
        "force_static": (1.0, 1.5),
        "force_pull": (0.002, 0.002),
        "expand": (1.2, 1.6),
        "max_move": (40, 40),
    },
    {
        "force_text": (0.3, 0.6),
        "force_static": (0.3, 0.6),
        "force_pull": (0.05, 0.05),
        "expand": (1.15, 1.4),
        "max_move": (20, 20),
    },
    {
        "force_text": (1.0, 1.5),
        "force_static": (0.6, 1.0),
        "force_pull": (0.01, 0.01),
        "expand": (1.1, 1.5),
        "max_move": (25, 25),
    },
)
ARROW = {"arrowstyle": "-", "color": "#999999", "lw": 0.6}


def place_labels(fig, ax, xs, ys, texts, colors, sizes=None, avoid=()) -> list:
    """Label each point (``xs``, ``ys`` in data coordinates) with adjustText: the labels are pushed apart from
    each other, from every bubble (``sizes``: marker areas in points^2) and from the texts in ``avoid``, kept
    inside the axes, and joined to their point by a thin line when moved away from it. Call it last, once the
    axis limits are final. Each label keeps its point's display position in ``anchor_px`` (for ``layout``)."""
    if not len(xs):
        return []
    from matplotlib.transforms import Bbox

    from ..errors import require

    adjust_text = require("adjustText", "report", "placing the plot labels").adjust_text
    sizes = list(sizes) if sizes is not None else [36.0] * len(xs)
    to_data = ax.transData.inverted()
    centres = ax.transData.transform(list(zip(xs, ys)))
    radii = [(s**0.5) / 2 * fig.dpi / 72 + 1 for s in sizes]  # marker area in points^2 -> radius in pixels
    objects = [Bbox(to_data.transform([(cx - r, cy - r), (cx + r, cy + r)])) for (cx, cy), r in zip(centres, radii)]
    renderer = fig.canvas.get_renderer()
    objects += [Bbox(to_data.transform(a.get_window_extent(renderer).get_points())) for a in avoid]
    from .layout import label_problems

    best = None  # (problems, labels, leader lines) of the best try so far
    for settings in ADJUST_TRIES:
        labels = []
        for (cx, cy), r, text, color in zip(centres, radii, texts, colors):
            x, y = to_data.transform((cx + r + 3, cy))  # start right of the bubble
            t = ax.text(x, y, text, fontsize=8, color=color, ha="left", va="center", zorder=4)
            t.anchor_px = (float(cx), float(cy))
            labels.append(t)
        _, lines = adjust_text(labels, objects=objects, ax=ax, arrowprops=ARROW, **_ADJUST_COMMON, **settings)
        n = len(label_problems(fig, ax))
        worse = best is not None and n >= best[0]
        for artist in (labels + lines) if worse else (best[1] + best[2] if best else []):
            artist.remove()
        if not worse:
            best = (n, labels, lines)
        if best[0] == 0:
            break
        for artist in best[1]:  # out of the next try's way (label_problems reads the visible texts only)
            artist.set_visible(False)
    for artist in best[1]:
        artist.set_visible(True)
    labels = best[1]
    return labels


def paper_vs_measured(rows, out_base, title: str, inspect=None) -> list[Path]:
    """Per model: the paper's Snapdragon 865 latency beside each measured (device, runtime) median, log axis.

    ``rows``: DataFrame with ``model``, ``resolution``, ``series`` (legend name), ``latency_ms`` and ``ci_low_ms``/
    ``ci_high_ms``, the 95% interval of the median (NaN for the paper's numbers and where there is none); an
    optional boolean ``suspect`` column outlines a bar in dashed orange (:data:`SUSPECT_TEXT`). The x labels are
    turned until no two overlap (:func:`_separate_xlabels`).
    """
    plt = _pyplot()
    keys = list(dict.fromkeys(f"{m}\n{r}" for m, r in zip(rows.model, rows.resolution)))
    series = list(dict.fromkeys(rows.series))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(keys) + 2), 4.8))
    width = 0.8 / max(1, len(series))
    cmap = plt.get_cmap("tab10")
    for si, s in enumerate(series):
        sub = rows[rows.series == s]
        xs, ys, lo, hi, odd = [], [], [], [], []
        for r in sub.itertuples():
            odd.append(str(getattr(r, "suspect", False)) == "True")  # bool or numpy bool; NaN is not
            k = keys.index(f"{r.model}\n{r.resolution}")
            xs.append(k + (si - (len(series) - 1) / 2) * width)
            ys.append(r.latency_ms)
            lo.append(max(0.0, r.latency_ms - r.ci_low_ms) if r.ci_low_ms == r.ci_low_ms else 0.0)
            hi.append(max(0.0, r.ci_high_ms - r.latency_ms) if r.ci_high_ms == r.ci_high_ms else 0.0)
        color = "#7f7f7f" if s.startswith("paper") else cmap(si % 10)
        bars = ax.bar(
            xs,
            ys,
            width=width,
            color=color,
            label=s,
            yerr=[lo, hi],
            capsize=2,
            hatch="//" if s.startswith("paper") else None,
        )
        for bar, f in zip(bars, odd):
            if f:
                bar.set_edgecolor(SUSPECT_COLOR)
                bar.set_linestyle("--")
                bar.set_linewidth(1.6)
    ax.set_yscale("log")
    ax.set_ylim(ax.get_ylim())
    _plain_log_ticks(ax.yaxis)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys, fontsize=8)
    ax.set_ylabel("latency (ms, log scale; bars = median,\nwhiskers = its 95% confidence interval)")
    ax.set_title(title, fontsize=10)
    handles, names = ax.get_legend_handles_labels()
    if "suspect" in rows and rows.suspect.fillna(False).astype(bool).any():
        from matplotlib.patches import Patch

        handles.append(Patch(facecolor="white", edgecolor=SUSPECT_COLOR, linestyle="--", linewidth=1.6))
        names.append(f"{SUSPECT_TEXT} (a smaller input\nslower beyond both intervals)")
    ax.legend(handles, names, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(True, axis="y", which="both", alpha=0.25)
    _separate_xlabels(fig, ax)
    if inspect:
        inspect(fig, ax)
    return _save(fig, Path(out_base))


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
    rows = df.assign(
        series=df.runtime + " (" + df.precision + ")", ci_low_ms=df.median_ci_low_ms, ci_high_ms=df.median_ci_high_ms
    )
    keep = ["model", "resolution", "series", "latency_ms", "ci_low_ms", "ci_high_ms"]
    return paper_vs_measured(rows[keep + (["suspect"] if "suspect" in rows else [])], out_base, title)


def memory_vs_latency(df, out_base, title: str, inspect=None) -> list[Path]:
    """Peak RSS growth (MB, over load + runs) against the median latency, one colour per runtime (its points, error
    bars and labels), log-log."""
    plt = _pyplot()
    pts = df[df.latency_ms.notna() & df.peak_rss_growth_mb.notna()].reset_index(drop=True)
    pts = pts.assign(mb=pts.peak_rss_growth_mb.clip(lower=0.1))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    cmap = plt.get_cmap("tab10")
    colour = {rt: cmap(i % 10) for i, rt in enumerate(sorted(set(pts.runtime)))}
    lo_ms, hi_ms = pts.latency_ms.astype(float), pts.latency_ms.astype(float)
    for rt, sub in pts.groupby("runtime", sort=True):
        ax.scatter(sub.latency_ms, sub.mb, color=colour[rt], label=rt, alpha=0.7, zorder=3)
        if "median_ci_low_ms" in sub and sub.median_ci_low_ms.notna().any():
            ok = sub[sub.median_ci_low_ms.notna() & sub.median_ci_high_ms.notna()]
            ax.errorbar(
                ok.latency_ms,
                ok.mb,
                xerr=[
                    (ok.latency_ms - ok.median_ci_low_ms).clip(lower=0),
                    (ok.median_ci_high_ms - ok.latency_ms).clip(lower=0),
                ],
                fmt="none",
                ecolor=colour[rt],
                elinewidth=0.8,
                capsize=2,
            )
    if "median_ci_low_ms" in pts:
        lo_ms = pts.median_ci_low_ms.fillna(pts.latency_ms).combine(pts.latency_ms, min)
        hi_ms = pts.median_ci_high_ms.fillna(pts.latency_ms).combine(pts.latency_ms, max)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if len(pts):
        ax.set_xlim(float(lo_ms.min()) / 1.4, float(hi_ms.max()) * 3.2)
        ax.set_ylim(float(pts.mb.min()) / 1.6, float(pts.mb.max()) * 1.6)
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    place_labels(
        fig,
        ax,
        list(pts.latency_ms),
        list(pts.mb),
        list(pts.model + " " + pts.resolution),
        [colour[rt] for rt in pts.runtime],
    )
    ax.set_xlabel("latency (ms, median, log scale; whiskers: its 95% interval)")
    ax.set_ylabel("peak RSS growth over load + runs (MB, log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(
        fontsize=8, title="runtime", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
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
