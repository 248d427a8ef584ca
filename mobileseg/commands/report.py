"""``mobileseg report``: Pareto plots (Figure-1 style), paper-vs-measured and runtime views, Markdown + HTML."""

from __future__ import annotations

from ..results.paths import REPORT_DIR, RUNS_DIR, default_results_paths
from ._args import add_list, split_list


def register(sub) -> None:
    p = sub.add_parser("report", help="Pareto plots, tables and an HTML page from results (and published numbers)")
    p.add_argument(
        "--results",
        nargs="+",
        default=None,
        metavar="FILE",
        help=f"measurement records (JSONL, patterns allowed); default: {RUNS_DIR}/*.jsonl",
    )
    add_list(p, "--devices", "keep only these devices (label, kind, serial, model or SoC)", aliases=("--device",))
    add_list(p, "--runtimes", "keep only these runtimes or formats", aliases=("--runtime",))
    p.add_argument("--dataset", default="ade20k", help="dataset whose mIoU is plotted (default ade20k)")
    p.add_argument(
        "--eval",
        nargs="+",
        default=None,
        metavar="FILE",
        dest="eval_files",
        help="eval records from `mobileseg eval`: their mIoU replaces the published one (marked 'eval')",
    )
    p.add_argument("--out", default=REPORT_DIR, help=f"output folder (default {REPORT_DIR})")
    p.add_argument(
        "--published-only",
        action="store_true",
        help="only Figure 1 from the TopFormer paper's own Table 1 numbers (no results needed)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import build_report

    results = args.results
    if results is None and not args.published_only:
        results = default_results_paths()
    report = build_report(
        results=results,
        device=split_list(args.devices),
        runtime=split_list(args.runtimes),
        dataset=args.dataset,
        eval_files=args.eval_files,
        out=args.out,
        published_only=args.published_only,
    )
    for title, paths in report.plots:
        print(f"{title}: {', '.join(str(p) for p in paths)}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"tables: {report.markdown}")
    print(f"HTML page (plots embedded): {report.html}")
    return 0
