"""``mobileseg results``: list measurement records as a table and export them as CSV (pandas)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("results", help="list benchmark records (results/*.jsonl) and export them as CSV")
    p.add_argument("files", nargs="*", default=["results"], help="results files or folders (default results/)")
    p.add_argument("--csv", metavar="OUT", help="write one row per record to this CSV file")
    p.add_argument("--model", help="only records of models matching this shell pattern")
    p.add_argument("--all", action="store_true", help="include failed (error) records in the table")
    p.set_defaults(func=run)


# Flat columns of the CSV / DataFrame, in order.
COLUMNS = ["id", "model", "height", "width", "format", "runtime", "runtime_version", "precision", "graph", "threads",
           "affinity", "device_kind", "device", "emulated", "harness", "warmup", "median_ms", "p10_ms", "p90_ms",
           "mean_ms", "stdev_ms", "min_ms", "max_ms", "count", "overhead_ms", "gmacs", "params", "gmac_per_s",
           "sgemm_gflop_s", "share_of_sgemm", "parity_ok", "max_abs", "rel_l2", "argmax_agree", "status", "error",
           "cpu_model", "timestamp", "schema_version", "file"]


def flatten(r: dict) -> dict:
    """One flat row of a record (the CSV columns)."""
    s = r.get("stats_ms") or {}
    p = r.get("parity") or {}
    dev = r.get("device") or {}
    h, w = (list(r.get("resolution") or [None, None]) + [None, None])[:2]
    med = s.get("median")
    rate = r["gflops"] / (med / 1e3) if (med and r.get("gflops")) else None
    sg = (r.get("sgemm") or {})
    sg_rate = sg.get("macs_per_s")
    return {"id": r.get("id"), "model": r.get("model"), "height": h, "width": w, "format": r.get("format"),
            "runtime": r.get("runtime"), "runtime_version": r.get("runtime_version"), "precision": r.get("precision"),
            "graph": r.get("graph"), "threads": r.get("threads"),
            "affinity": " ".join(str(c) for c in r.get("affinity") or []), "device_kind": dev.get("kind"),
            "device": dev.get("model") or dev.get("serial"), "emulated": r.get("emulated"),
            "harness": r.get("harness"), "warmup": r.get("warmup"), "median_ms": med, "p10_ms": s.get("p10"),
            "p90_ms": s.get("p90"), "mean_ms": s.get("mean"), "stdev_ms": s.get("stdev"), "min_ms": s.get("min"),
            "max_ms": s.get("max"), "count": s.get("count"), "overhead_ms": r.get("overhead_ms"),
            "gmacs": r.get("gflops"), "params": r.get("params"), "gmac_per_s": rate,
            "sgemm_gflop_s": sg.get("gflop_s"),
            "share_of_sgemm": (rate * 1e9 / sg_rate) if (rate and sg_rate) else None,
            "parity_ok": p.get("ok"), "max_abs": p.get("max_abs"), "rel_l2": p.get("rel_l2"),
            "argmax_agree": p.get("argmax_agree"), "status": r.get("status"), "error": r.get("error"),
            "cpu_model": (r.get("host") or {}).get("cpu_model"), "timestamp": r.get("timestamp"),
            "schema_version": r.get("schema_version"), "file": r.get("_file")}


def results_frame(files=("results",), model: str | None = None):
    """Python API behind ``mobileseg results``: a pandas DataFrame with one row per record, and notes on skipped
    lines."""
    import fnmatch

    from ..bench.store import read_records
    from ..errors import require

    pd = require("pandas", "report", "tables of results")
    records, notes = read_records(files)
    if model:
        records = [r for r in records if fnmatch.fnmatch(str(r.get("model")), model)]
    return pd.DataFrame([flatten(r) for r in records], columns=COLUMNS), notes


def run(args) -> int:
    import sys

    from ._format import table

    df, notes = results_frame(args.files, args.model)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if args.csv:
        from pathlib import Path

        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.csv, index=False)
        print(f"wrote {len(df)} record(s) to {args.csv}", file=sys.stderr)
    shown = df if args.all else df[df["status"] != "error"]
    rows = []
    for _, r in shown.iterrows():
        def f(v, fmt):
            return "" if v is None or v != v else format(v, fmt)
        rows.append({"model": r["model"], "res": f"{r['height']}x{r['width']}", "runtime": r["runtime"],
                     "prec": r["precision"], "graph": r["graph"], "t": r["threads"], "device": r["device"],
                     "median ms": (f(r["median_ms"], ".2f") if r["median_ms"] == r["median_ms"]
                                   and r["median_ms"] is not None else
                                   f"{f(r['mean_ms'], '.2f')} (mean)" if r["mean_ms"] == r["mean_ms"]
                                   and r["mean_ms"] is not None else ""), "p10": f(r["p10_ms"], ".2f"),
                     "p90": f(r["p90_ms"], ".2f"), "n": r["count"], "GMAC/s": f(r["gmac_per_s"], ".2f"),
                     "% SGEMM": f(100 * r["share_of_sgemm"], ".1f") if r["share_of_sgemm"] == r["share_of_sgemm"]
                     and r["share_of_sgemm"] is not None else "",
                     "rel_l2": f(r["rel_l2"], ".1e"), "status": r["status"]})
    print(table(rows))
    hidden = len(df) - len(shown)
    if hidden:
        print(f"({hidden} failed record(s) hidden; --all shows them)")
    return 0
