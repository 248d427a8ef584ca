"""``mobileseg compare``: two results files cell by cell, the ratio of medians with its interval, and a verdict."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="A/B: is B faster or slower than A beyond the noise (ratio of medians, 95%% "
        "interval); --run times two exports alternately on one core",
        description="Match the cells of two results files by their key without the device part "
        "(model|HxW|format|runtime|precision|graph|tN) and print, per cell, the ratio of "
        "medians B/A with its 95% bootstrap interval and a verdict: slower (interval "
        "above 1), faster (below 1) or no difference at this noise.",
    )
    p.add_argument("a", help="results file A (.jsonl), the baseline; with --run: export folder A")
    p.add_argument("b", help="results file B (.jsonl), the candidate; with --run: export folder B")
    p.add_argument(
        "--fail-if-slower",
        type=float,
        default=None,
        metavar="PCT",
        help="exit 1 when a cell is slower (interval above 1) by more than PCT percent (ratio > 1 + PCT/100)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the comparisons as JSON")
    g = p.add_argument_group("interleaved run (--run): A and B are export folders timed alternately on one core")
    g.add_argument("--run", action="store_true", help="time the two export folders now, alternating A B B A ...")
    g.add_argument("--runtime", default=None, help="runtime for --run (default: onnxruntime when both have ONNX)")
    g.add_argument("--repeats", type=int, default=40, help="timed calls per side with --run (default 40)")
    g.add_argument("--warmup", type=int, default=5, help="warm-up calls per side with --run (default 5)")
    g.add_argument("--cpu", type=int, default=None, help="CPU to pin to with --run (default: the last one)")
    g.add_argument("--out", default=None, help="with --run: also append both records to <out>/compare-run.jsonl")
    from ._args import add_allow_edited

    add_allow_edited(g)
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys

    from ..errors import MobilesegError
    from ..results.compare import compare_records, regressions
    from ._format import table

    if args.fail_if_slower is not None and args.fail_if_slower < 0:
        raise MobilesegError(f"--fail-if-slower takes a percentage of 0 or more, not {args.fail_if_slower:g}")
    if args.run:
        from ..bench.interleave import run_interleaved

        rec_a, rec_b = run_interleaved(
            args.a,
            args.b,
            runtime=args.runtime,
            repeats=args.repeats,
            warmup=args.warmup,
            cpu=args.cpu,
            out_dir=args.out,
        )
        a_recs, b_recs = [rec_a], [rec_b]
    else:
        import os

        from ..results.store import read_records

        if os.path.isfile(args.a) and os.path.isfile(args.b) and os.path.samefile(args.a, args.b):
            raise MobilesegError(
                f"A and B are the same file ({args.a}): compare two runs' results files (or time two "
                "export folders alternately with --run)"
            )
        a_recs, a_notes = read_records([args.a], ("model", "resolution", "runtime", "stats_ms"))
        b_recs, b_notes = read_records([args.b], ("model", "resolution", "runtime", "stats_ms"))
        for note in a_notes + b_notes:  # a torn line skipped: the comparison stands on the other records
            print(f"note: {note}", file=sys.stderr)
        from ..results.compare import match_key

        for side, path, recs in (("A", args.a, a_recs), ("B", args.b, b_recs)):
            kept = [r for r in recs if r.get("status") != "error"]
            if len(kept) > len({match_key(r) for r in kept}):  # a cell benched again without --resume
                print(
                    f"note: {side} ({path}) holds {len(kept) - len({match_key(r) for r in kept})} repeated "
                    "cell record(s): the newest of each cell is compared",
                    file=sys.stderr,
                )
    comps, only_a, only_b = compare_records(a_recs, b_recs, seed=args.seed)
    if not comps:
        raise MobilesegError(
            f"no cell of {args.a} matches one of {args.b} (by model|HxW|format|runtime|precision|"
            f"graph|threads): {len(only_a)} cell(s) only in A, {len(only_b)} only in B"
        )
    bad = regressions(comps, args.fail_if_slower) if args.fail_if_slower is not None else []
    if args.json:
        print(
            json.dumps(
                {
                    "comparisons": [c.to_dict() for c in comps],
                    "only_in_a": only_a,
                    "only_in_b": only_b,
                    "regressions": [c.key for c in bad],
                },
                indent=1,
            )
        )
    else:
        f = lambda v, d=2: "" if v is None else f"{v:.{d}f}"  # noqa: E731
        print(
            table(
                [
                    {
                        "cell": c.key,
                        "A ms": f(c.a_median_ms),
                        "B ms": f(c.b_median_ms),
                        "B/A": f(c.ratio, 3),
                        "95% interval": "" if c.ratio_low is None else f"{c.ratio_low:.3f}..{c.ratio_high:.3f}",
                        "n A/B": f"{c.a_count}/{c.b_count}",
                        "verdict": c.verdict,
                        "note": c.note,
                    }
                    for c in comps
                ]
            )
        )
        if not args.run:
            print(
                "note: A and B were measured apart: the intervals hold the noise within each run, not a drift "
                "between them (use compare --run to alternate the two on one core)",
                file=sys.stderr,
            )
        for side, keys in (("A", only_a), ("B", only_b)):
            if keys:
                print(f"{len(keys)} cell(s) only in {side}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}")
    if bad:
        print(
            f"mobileseg: {len(bad)} cell(s) slower than A by more than {args.fail_if_slower:g}%: "
            f"{', '.join(c.key for c in bad)}",
            file=sys.stderr,
        )
        return 1
    return 0
