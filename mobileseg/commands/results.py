"""``mobileseg results``: list measurement records as a table and export them as CSV (pandas)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("results", help="list benchmark records (results/runs/*.jsonl) and export them as CSV")
    p.add_argument("files", nargs="*", default=None, help="results files or folders (default: the results folder)")
    p.add_argument("--csv", metavar="FILE", help="write one row per record to this CSV file")
    p.add_argument("--model", help="only records of models matching this shell pattern")
    p.add_argument("--all", action="store_true", help="include failed (error) records in the table")
    p.set_defaults(func=run)


def results_frame(files=None, model: str | None = None):
    """Python API behind ``mobileseg results``: a DataFrame with one row per record (the columns of
    :data:`mobileseg.results.table.COLUMNS`), and notes on skipped lines."""
    import fnmatch

    from ..results.paths import default_results_paths
    from ..results.store import read_records
    from ..results.table import frame

    records, notes = read_records(files or default_results_paths())
    if model:
        records = [r for r in records if fnmatch.fnmatch(str(r.get("model")), model)]
    return frame(records), notes


def run(args) -> int:
    import sys

    from ..results.table import latency_text
    from ._format import table

    df, notes = results_frame(args.files, args.model)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if args.csv:
        from ..results.paths import writable_file

        writable_file(args.csv, "the CSV", "give a writable file name with --csv")
        df.to_csv(args.csv, index=False)
        print(f"wrote {len(df)} record(s) to {args.csv}", file=sys.stderr)
    shown = df if args.all else df[df["status"] != "error"]

    def f(v, fmt):
        return "" if v is None or v != v else format(v, fmt)

    rows = [
        {
            "model": r["model"],
            "res": r["resolution"],
            "runtime": r["runtime"],
            "prec": r["precision"],
            "graph": r["graph"],
            "t": r["threads"],
            "device": r["device"],
            "latency ms": latency_text(r),
            "p10": f(r["p10_ms"], ".2f"),
            "p90": f(r["p90_ms"], ".2f"),
            "n": r["count"],
            "GMAC/s": f(r["gmac_per_s"], ".2f"),
            "% SGEMM": f(None if r["share_of_sgemm"] is None else 100 * r["share_of_sgemm"], ".1f"),
            "rel_l2": f(r["rel_l2"], ".1e"),
            "status": r["status"],
        }
        for r in shown.to_dict("records")
    ]
    print(table(rows))
    hidden = len(df) - len(shown)
    if hidden:
        print(f"({hidden} failed record(s) hidden; --all shows them)")
    return 0
