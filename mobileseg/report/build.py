"""``build_report``: the Python API behind ``mobileseg report``.

Reads measurement records (contract 4), the papers' numbers (``published.csv``) and optional eval records, and
writes into ``out``: per device x runtime Figure-1-style plots, the paper-vs-measured view, the runtime comparison
(PNG + SVG each), ``report.md`` (tables) and ``report.html`` (self-contained, no network: see
:mod:`mobileseg.report.page`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..results.paths import REPORT_DIR, writable_folder
from ..results.paths import slug as _slug
from . import plots
from .data import attach_miou, load_evals, load_results
from .pareto import pareto_mask
from .published import figure1_resolutions, figure1_rows, load_published, paper_latency
from .suspect import SUSPECT
from .suspect import flag as flag_suspects
from .tables import constant_columns, html_table, markdown_table

DEFAULT_OUT = Path(REPORT_DIR)


@dataclass
class Report:
    out: Path
    plots: list = field(default_factory=list)  # [(title, [png, svg])]
    tables: list = field(default_factory=list)  # [(title, markdown, html)]
    points: dict = field(default_factory=dict)  # svg path -> [record shown on hovering point i] (report.html)
    notes: list = field(default_factory=list)
    markdown: Path | None = None
    html: Path | None = None

    def files(self) -> list[Path]:
        return [p for _, ps in self.plots for p in ps] + [p for p in (self.markdown, self.html) if p]


def _point_label(r) -> str:
    """``model HxW`` plus whatever differs from the default cell (precision, graph, threads) and '(eval)'."""
    extra = [r.precision] if r.precision != "fp32" else []
    extra += ["+argmax"] if r.graph == "argmax" else []
    extra += [f"{r.threads} threads"] if r.threads not in (1, None) else []
    extra += ["(eval)"] if r.evaluated else []
    extra += [resolution_mismatch(r)] if resolution_mismatch(r) else []
    return " ".join([r.model, r.resolution] + extra)


def resolution_mismatch(r) -> str:
    """``(mIoU at 512, latency at 256)`` when the point's mIoU was measured at another input size, else ''."""
    at = getattr(r, "miou_resolution", None)
    if not at or not isinstance(at, str) or at == r.resolution:
        return ""
    short = lambda res: res.split("x")[0] if len(set(res.split("x"))) == 1 else res  # noqa: E731
    return f"(mIoU at {short(at)}, latency at {short(r.resolution)})"


def _is_topformer(model: str) -> bool:
    return str(model).startswith("topformer")


def published_figure(report: Report, published, stem: str = "figure1-published") -> None:
    """Figure 1 from the TopFormer paper's own Table 1 numbers (ADE20K val, Snapdragon 865, one core)."""
    rows = figure1_rows(published)
    plotted = rows[rows.latency_ms.notna() & rows.miou.notna()]  # the points figure1 draws, in its order
    left_out = rows[rows.latency_ms.isna()]
    note = "Data: TopFormer paper Table 1 (results/published.csv). † = 448x448 input, others 512x512. " + (
        f"Not drawn (no latency given): {', '.join(left_out.label)}." if len(left_out) else ""
    )
    paths = plots.figure1(
        plotted,
        report.out / stem,
        "ADE20K val: mIoU vs latency on one Snapdragon 865 core (published, TopFormer Table 1)",
        xlabel="Latency (ms, Snapdragon 865, 1 thread; log scale)",
        note=note,
    )
    report.plots.append(("Figure 1 from the paper's numbers", paths))
    report.points[paths[1]] = [
        {
            "model": r.label,
            "input": r.resolution,
            "latency": f"{r.latency_ms:.0f} ms (Snapdragon 865, 1 thread, as published)",
            "mIoU": f"{r.miou:.1f}",
            "params": f"{r.params_m:.1f} M",
            "GFLOPs": f"{r.gflops:.1f}",
            "source": "TopFormer paper, Table 1",
        }
        for r in plotted.itertuples()
    ]
    t = rows.assign(pareto=["yes" if f else "" for f in pareto_mask(rows.latency_ms, rows.miou)])
    cols = {
        "label": "model",
        "resolution": "input",
        "params_m": "params (M)",
        "gflops": "GFLOPs",
        "miou": "mIoU",
        "latency_ms": "latency (ms)",
        "pareto": "Pareto",
    }
    digits = {"latency_ms": 0}
    report.tables.append(
        (
            "TopFormer Table 1 (ADE20K val, Snapdragon 865 latency)",
            markdown_table(t, cols, digits),
            html_table(t, cols, digits),
        )
    )


def build_report(
    results=None,
    device=None,
    runtime=None,
    dataset: str = "ade20k",
    eval_files=None,
    out=DEFAULT_OUT,
    published_only: bool = False,
    published_path=None,
) -> Report:
    """Write the report; returns a :class:`Report` listing every file written."""
    published = load_published(published_path)
    report = Report(out=Path(out))
    df = None
    if not published_only:  # read and check every input before writing anything
        if not results:
            from .errors import ResultsFileError

            raise ResultsFileError(
                "no results file given and none found in results/runs/*.jsonl: run `mobileseg "
                "bench` first, pass --results FILE (e.g. the committed results/reference/"
                "host-amd-epyc-t1.jsonl), or use --published-only"
            )
        df = load_results(results, device=device, runtime=runtime)
        report.notes += df.attrs.get("notes", [])  # lines skipped, repeated cells (the newest kept)
        evals = load_evals(eval_files) if eval_files else None
        _check_dataset(dataset, published, evals)
        df = attach_miou(df, published, evals, dataset)
    writable_folder(report.out, "the report", "choose a writable folder with --out")
    published_figure(report, published)
    if df is not None:
        _measured(report, df, published, dataset)
        from .profile import top_ops_section

        top_ops_section(report, results, df[~df.numerics_only])
        from .precision import precision_views

        precision_views(report, df, eval_files, dataset)
    _write_markdown(report)
    from .page import write_html

    write_html(report, ABOUT)
    return report


def _check_dataset(dataset: str, published, evals) -> None:
    """An unknown ``--dataset`` (a typo such as ade20) would draw no Pareto plot: one sentence with the names known
    (the published numbers' datasets and those of the eval records given)."""
    import difflib

    from ..errors import DatasetError

    known = sorted(set(published.dataset.dropna()) | (set(evals.dataset) if evals is not None else set()))
    if dataset not in known:
        close = difflib.get_close_matches(str(dataset), known, n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise DatasetError(f"unknown dataset '{dataset}'{hint}: choose one of {', '.join(known)}")


def _numerics_table(report: Report, dev: str, rt: str, sub) -> None:
    """Parity only, for records whose timings are no device's speed (emulated, software Vulkan): no latency column."""
    why = sorted({"emulated device" if e else "software Vulkan" for e in sub.emulated})
    cols = {
        "model": "model",
        "resolution": "input",
        "format": "format",
        "precision": "precision",
        "max_abs": "max abs",
        "rel_l2": "rel L2",
        "argmax_agree": "argmax agree",
        "parity_ok": "parity ok",
    }
    digits = {"max_abs": 6, "rel_l2": 8, "argmax_agree": 4}
    report.tables.append(
        (
            f"{dev}, {rt}: numerics only ({', '.join(why)}: its timings are no device's speed and "
            "are on no latency axis)",
            markdown_table(sub, cols, digits),
            html_table(sub, cols, digits),
        )
    )


def _ms(v) -> str:
    return "" if v is None or v != v else f"{v:.2f}"


def _hover_record(r) -> dict:
    """What the HTML page shows on hovering a measured point: the record in a reader's words."""
    ci = (
        f" (95% interval {_ms(r.median_ci_low_ms)}-{_ms(r.median_ci_high_ms)}, n={int(r.count)})"
        if r.median_ci_low_ms == r.median_ci_low_ms
        else (f" (n={int(r.count)})" if r.count == r.count else "")
    )
    if not r.parity_checked:
        parity = "not checked"
    else:
        parity = ("ok" if r.parity_ok else "FAILED") + (f", rel L2 {r.rel_l2:.1e}" if r.rel_l2 == r.rel_l2 else "")
    rec = {
        "model": r.model,
        "input": r.resolution,
        "runtime": f"{r.runtime} {r.runtime_version or ''}".strip(),
        "precision": r.precision,
        "device": r.device,
        "latency": f"{_ms(r.latency_ms)} ms {r.latency_stat or 'median'}{ci}",
        "mIoU": f"{r.miou:.1f} ({r.miou_source})",
        "parity": parity,
    }
    if r.suspect:
        rec["check"] = f"{SUSPECT}: {r.suspect_reason}"
    return rec


def _measured(report: Report, df, published, dataset: str) -> None:
    for (dev, rt), sub in df[df.numerics_only].groupby(["device", "runtime"], sort=True):
        _numerics_table(report, dev, rt, sub)
    df = flag_suspects(df[~df.numerics_only])
    for reason in df.suspect_reason[df.suspect]:
        report.notes.append(f"{SUSPECT}: {reason}.")
    df = df.assign(
        check=[SUSPECT if f else "" for f in df.suspect],
        ci_ms=[
            f"{_ms(a)}-{_ms(b)}" if a == a and b == b else "" for a, b in zip(df.median_ci_low_ms, df.median_ci_high_ms)
        ],
    )
    for (dev, rt), sub in df.groupby(["device", "runtime"], sort=True):
        sub = sub.copy()
        sub["is_topformer"] = [_is_topformer(m) for m in sub.model]
        sub["evaluated"] = sub.miou_source.str.startswith("evaluated")
        sub["label"] = [_point_label(r) for r in sub.itertuples()]
        params = sub.params_m.copy()
        for i, r in sub.iterrows():  # fall back to the paper's parameter count when the record has none
            if params[i] != params[i] or params[i] is None:
                rows = published[(published.model == r.model) & published.params_m.notna()]
                params[i] = float(rows.params_m.iloc[0]) if len(rows) else float("nan")
        sub["params_m"] = params
        placed = sub[sub.miou.notna() & sub.latency_ms.notna()]
        missing = sub[sub.miou.isna()]
        mean = (placed.latency_stat == "mean").any()
        note = (
            f"Latency ({rt}, {dev}): the median of each measured cell"
            + (" (the mean where an official tool printed no median)" if mean else "")
            + "; whiskers: its 95% confidence interval. "
            f"mIoU: {dataset} "
            + (
                "published numbers"
                if not placed.evaluated.any()
                else "published, or evaluated by `mobileseg eval` where marked (eval)"
            )
            + (f". No mIoU for: {', '.join(sorted(set(missing.model)))}." if len(missing) else ".")
        )
        title = f"{dataset} mIoU vs measured latency: {dev}, {rt}"
        if len(placed):
            paths = plots.figure1(
                placed.assign(ci_low_ms=placed.median_ci_low_ms, ci_high_ms=placed.median_ci_high_ms),
                report.out / f"pareto-{_slug(dev)}-{_slug(rt)}",
                title,
                xlabel=f"Latency (ms, {dev}, {rt}; log scale)",
                note=note,
            )
            report.plots.append((title, paths))
            report.points[paths[1]] = [_hover_record(r) for r in placed.itertuples()]
        else:
            report.notes.append(f"{dev} / {rt}: no measured model has an mIoU on {dataset}, so no Pareto plot.")
        sub["pareto"] = ""
        if len(placed):
            front = pareto_mask(placed.latency_ms, placed.miou)
            sub.loc[placed.index[front], "pareto"] = "yes"
        cols = {
            "model": "model",
            "resolution": "input",
            "format": "format",
            "precision": "precision",
            "threads": "threads",
            "latency_ms": "latency (ms)",
            "latency_stat": "of",
            "ci_ms": "95% interval",
            "count": "n",
            "check": "check",
            "load_ms": "load (ms)",
            "first_run_ms": "first run (ms)",
            "peak_rss_growth_mb": "peak RSS growth (MB)",
            "params_m": "params (M)",
            "gmacs": "GMACs",
            "miou": "mIoU",
            "miou_source": "mIoU from",
            "pareto": "Pareto",
            "parity_ok": "parity ok",
        }
        digits = {"latency_ms": 2, "params_m": 2, "gmacs": 2, "load_ms": 0, "first_run_ms": 1, "peak_rss_growth_mb": 1}
        cols, same = constant_columns(
            sub, cols, digits, keep=("model", "resolution", "latency_ms", "pareto", "parity_ok", "check")
        )
        versions = ", ".join(sorted({v for v in sub.runtime_version if v}))
        cpu = next((c for c in sub.device_cpu if c), "")
        report.tables.append(
            (
                f"{dev}, {rt}"
                + (f" {versions}" if versions else "")
                + (f" ({cpu})" if cpu else "")
                + (f"; {same}" if same else ""),
                markdown_table(sub, cols, digits),
                html_table(sub, cols, digits, titles={"check": "suspect_reason"}),
            )
        )
    _paper_vs_measured(report, df, published)
    for dev, sub in df.groupby("device", sort=True):
        if sub.runtime.nunique() < 2:
            continue
        title = f"Runtime comparison on {dev}"
        paths = plots.runtime_comparison(sub, report.out / f"runtimes-{_slug(dev)}", title)
        report.plots.append((title, paths))
    for dev, sub in df[df.peak_rss_growth_mb.notna()].groupby("device", sort=True):
        title = f"Peak memory vs latency on {dev}"
        paths = plots.memory_vs_latency(sub, report.out / f"memory-{_slug(dev)}", title)
        report.plots.append((title, paths))


def _paper_vs_measured(report: Report, df, published) -> None:
    """The paper's Snapdragon 865 latency beside ours, for the models the paper timed at the measured input size."""
    rows = []
    for r in df.itertuples():
        pl = paper_latency(published, r.model, (r.height, r.width), exact=True)  # same input size only
        if pl is None:
            continue
        rows.append(
            {
                "model": r.model,
                "resolution": r.resolution,
                "series": f"{r.device} {r.runtime}",
                "latency_ms": r.latency_ms,
                "ci_low_ms": r.median_ci_low_ms,
                "ci_high_ms": r.median_ci_high_ms,
                "paper_ms": pl,
                "check": r.check,
                "suspect": r.suspect,
                "suspect_reason": r.suspect_reason,
            }
        )
    if not rows:
        report.notes.append(_no_paper_latency(df, published))
        return
    import pandas as pd

    meas = pd.DataFrame(rows)
    paper = meas.drop_duplicates(["model", "resolution"]).assign(
        series="paper: Snapdragon 865 (TNN)",
        latency_ms=lambda d: d.paper_ms,
        ci_low_ms=float("nan"),
        ci_high_ms=float("nan"),
        suspect=False,
        check="",
        suspect_reason="",
    )
    both = pd.concat([paper, meas], ignore_index=True)
    paths = plots.paper_vs_measured(
        both, report.out / "paper-vs-measured", "Latency: TopFormer paper (Snapdragon 865, 1 core) vs our measurements"
    )
    report.plots.append(("Paper vs measured latency", paths))
    meas["ratio"] = meas.latency_ms / meas.paper_ms
    cols = {
        "model": "model",
        "resolution": "input",
        "series": "measured on",
        "latency_ms": "ours (ms)",
        "check": "check",
        "paper_ms": "paper SD865 (ms)",
        "ratio": "ours / paper",
    }
    digits = {"latency_ms": 2, "ratio": 2, "paper_ms": 0}
    report.tables.append(
        (
            "Paper vs measured latency",
            markdown_table(meas, cols, digits),
            html_table(meas, cols, digits, titles={"check": "suspect_reason"}),
        )
    )


def _no_paper_latency(df, published) -> str:
    """Why no measured model has a paper latency beside it: the paper does not time it, or not at that size."""
    other = []
    for model, sub in df.groupby("model", sort=True):
        at = figure1_resolutions(published, model)
        if at:
            other.append(f"{model} at {' and '.join(at)} (measured at {', '.join(sorted(set(sub.resolution)))})")
    if other:
        return (
            "No measured cell has a latency in the TopFormer paper's Table 1 at its own input size; the table "
            f"times {'; '.join(other)}."
        )
    return "None of the measured models is timed in the TopFormer paper's Table 1."


ABOUT = (
    "Latency: the median of each measured cell (one thread; whiskers: the 95% confidence interval of the "
    "median, distribution-free, from the samples). A point whose published mIoU is for another input size than "
    "its latency says so (mIoU at 512, latency at 256). A smaller input of the same model, runtime and "
    'precision measured slower than a larger one beyond both intervals is marked "suspect: re-measure": '
    "fewer pixels cannot take longer, so the host was busy during one of the two. Emulated devices and "
    "software Vulkan are on no latency axis: their parity is tabled instead. mIoU: the papers' published "
    "numbers (results/published.csv; the paper and table are named per row) unless an eval record of "
    "`mobileseg eval` is given with --eval, in which case the point is marked (eval). Bubble area = "
    "parameters. Pareto frontier: no other point is both faster and more accurate. The dashed line bounds the "
    "real-time zone: 30 frames per second (33 ms), our choice. In report.html, hover a point for its record "
    "and click a column's header to sort a table by it."
)


def _write_markdown(report: Report) -> None:
    lines = ["# mobileseg report", "", ABOUT, ""] + [f"- {n}" for n in report.notes] + ([""] if report.notes else [])
    for title, paths in report.plots:
        png = next(p for p in paths if p.suffix == ".png")
        lines += [f"## {title}", "", f"![{title}]({png.name})", ""]
    for title, md, _ in report.tables:
        lines += [f"### {title}", "", md, ""]
    report.markdown = report.out / "report.md"
    report.markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")
