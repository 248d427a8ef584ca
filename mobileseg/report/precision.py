"""Precision in the report: a Pareto view with one marker per precision, and the int8 (or fp16) trade table.

Added to the report only when the records hold more than one precision for a device and runtime. The table gives,
per device, runtime and model (same resolution and graph), the fp32 median latency, the other precision's, the
speed-up (fp32 median / its median, both measured by the same kind of run) and, from eval records of
``mobileseg eval --precision int8`` (``miou_delta``: int8 minus fp32 on the same images), the mIoU change.
"""

from __future__ import annotations

from pathlib import Path

MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}
COLORS = {"fp32": "#1f77b4", "fp16": "#ff7f0e", "int8": "#d62728"}


def _eval_deltas(eval_files, dataset: str | None = None) -> dict:
    """``{(model, runtime, precision): miou_delta}`` from eval records on ``dataset`` that carry one (the newest
    wins): a delta measured on another data set is not added to this one's mIoU."""
    if not eval_files:
        return {}
    from ..results.store import read_records

    records, _ = read_records(eval_files, ("model", "miou"), what="eval")
    out = {}
    for rec in sorted(records, key=lambda r: str(r.get("timestamp") or "")):
        if rec.get("miou_delta") is not None and (dataset is None or rec.get("dataset") == dataset):
            out[(rec["model"], rec.get("runtime"), rec.get("precision"))] = rec["miou_delta"]
    return out


def trade_rows(df, deltas: dict) -> list[dict]:
    rows = []
    for (dev, rt, model, res, _graph), sub in df.groupby(
        ["device", "runtime", "model", "resolution", "graph"], sort=True
    ):
        base = sub[sub.precision == "fp32"]
        if base.empty:
            continue
        fp32 = float(base.latency_ms.iloc[0])
        for prec, other in sub[sub.precision != "fp32"].groupby("precision"):
            ms = float(other.latency_ms.iloc[0])
            rows.append(
                {
                    "device": dev,
                    "runtime": rt,
                    "model": model,
                    "resolution": res,
                    "precision": prec,
                    "fp32_ms": fp32,
                    "ms": ms,
                    "speedup": fp32 / ms if ms else float("nan"),
                    "miou_delta": deltas.get((model, rt, prec), float("nan")),
                }
            )
    return rows


def precision_pareto(points, out_base, title: str) -> list[Path]:
    """Latency (log) against mIoU, marker shape and colour by precision, each model's precisions joined."""
    from . import plots

    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.set_xscale("log")
    ends = []
    for model, sub in points.groupby("model"):
        sub = sub.sort_values("latency_ms")
        ax.plot(sub.latency_ms, sub.miou, "-", color="#999999", lw=0.8, zorder=1)
        ends.append((float(sub.latency_ms.iloc[-1]), float(sub.miou.iloc[-1]), model))
    for prec, sub in points.groupby("precision"):
        ax.scatter(
            sub.latency_ms,
            sub.miou,
            marker=MARKERS.get(prec, "D"),
            c=COLORS.get(prec, "#555555"),
            s=50,
            label=prec,
            zorder=3,
            alpha=0.8,
        )
    if len(points):
        ax.set_xlim(float(points.latency_ms.min()) / 1.4, float(points.latency_ms.max()) * 3.2)
        ax.set_ylim(float(points.miou.min()) - 1.0, float(points.miou.max()) + 1.0)
    plots._plain_log_ticks(ax.xaxis)
    plots.place_labels(
        fig,
        ax,
        [e[0] for e in ends],
        [e[1] for e in ends],
        [e[2] for e in ends],
        ["#333333"] * len(ends),
        sizes=[50.0] * len(ends),
    )
    ax.legend(title="precision", fontsize=8)
    ax.set_xlabel("Latency (ms, log scale)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    return plots._save(fig, Path(out_base))


def precision_views(report, df, eval_files=None, dataset: str | None = None) -> None:
    """Append the per-precision Pareto plots and the trade table to ``report`` (nothing with one precision)."""
    from ..results.paths import slug as _slug
    from .tables import html_table, markdown_table

    df = df[~df.numerics_only]
    if df.empty or df.precision.nunique() < 2:
        return
    deltas = _eval_deltas(eval_files, dataset)
    for (dev, rt), sub in df.groupby(["device", "runtime"], sort=True):
        if sub.precision.nunique() < 2:
            continue
        pts = sub[sub.miou.notna() & sub.latency_ms.notna()].copy()
        if len(pts):
            # an int8 point's mIoU: the fp32 one plus the evaluated delta when there is one
            for i, r in pts.iterrows():
                d = deltas.get((r.model, rt, r.precision))
                if r.precision != "fp32" and d is not None:
                    pts.loc[i, "miou"] = r.miou + d
            title = f"mIoU vs latency by precision: {dev}, {rt}"
            report.plots.append(
                (title, precision_pareto(pts, report.out / f"precision-{_slug(dev)}-{_slug(rt)}", title))
            )
    rows = trade_rows(df, deltas)
    if rows:
        import pandas as pd

        t = pd.DataFrame(rows)
        cols = {
            "device": "device",
            "runtime": "runtime",
            "model": "model",
            "resolution": "input",
            "precision": "precision",
            "fp32_ms": "fp32 (ms)",
            "ms": "ms",
            "speedup": "speed-up",
            "miou_delta": "mIoU change (points)",
        }
        digits = {"fp32_ms": 2, "ms": 2, "speedup": 2, "miou_delta": 2}
        report.tables.append(
            (
                "Precision: speed-up and mIoU change against fp32",
                markdown_table(t, cols, digits),
                html_table(t, cols, digits),
            )
        )
