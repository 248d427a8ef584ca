"""``mobileseg choose``: which model, runtime and precision to ship on this device, decided by racing.

Candidates (:mod:`mobileseg.choose.candidates`) are exported first, outside the time budget; then the race
(:mod:`mobileseg.choose.race`) asks the bench stage (:mod:`mobileseg.choose.measure`) for batches of samples until
one feasible winner is separated or ``--max-time`` ends. Writes the candidates' table (``choose.json``), a Pareto
plot and the deployment card (:mod:`mobileseg.choose.card`) into ``--out``.
"""

from __future__ import annotations

import os
import shlex

from ..formats import PRECISIONS, RUNTIMES, default_runtimes
from ..results.paths import RUNS_DIR
from ._args import add_adb_transport, add_export_dir, add_harness, add_list, add_quiet, split_list

DEFAULT_OUT = os.path.join(RUNS_DIR, "choose")
DEFAULT_MAX_TIME_S = 300.0
EMULATED_BATCH = 3


def register(sub) -> None:
    p = sub.add_parser(
        "choose",
        help="which model, runtime and precision to ship on this device (racing, with a deployment card)",
        description="Race every candidate (model x resolution x runtime x precision) on the device: "
        "drop those over the latency budget or dominated at the stated confidence, "
        "until one winner within the constraints is separated.",
    )
    p.add_argument("--device", default="local", help="local (default), adb or adb:SERIAL")
    p.add_argument(
        "--budget-ms",
        type=float,
        required=True,
        metavar="MS",
        help="latency budget: the median must be within it, at the interval's confidence",
    )
    p.add_argument("--threads", type=int, default=1, help="threads per runtime (default 1)")
    add_list(p, "--models", "model names (default: every registered segmentation model)", aliases=("-m",))
    add_list(p, "--res", "resolutions, 448 or HxW (default: each model's paper resolution)")
    add_list(
        p,
        "--runtimes",
        f"{', '.join(RUNTIMES)} (default: every one of {', '.join(default_runtimes())} the device runs)",
    )
    add_list(p, "--precisions", f"{' '.join(PRECISIONS)} (default: fp32 and every precision the runtime has)")
    add_list(p, "--graphs", "logits or argmax (default logits)")
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="a folder `mobileseg eval` reads (ADE20K or Cityscapes layout): every candidate's own mIoU",
    )
    p.add_argument("--calib", default=None, metavar="DIR", help="calibration images for the int8 candidates")
    p.add_argument("--eval-limit", type=int, default=None, metavar="N", help="with --data: the first N images only")
    p.add_argument("--max-memory-mb", type=float, default=None, metavar="M", help="peak RSS growth limit")
    p.add_argument("--max-size-mb", type=float, default=None, metavar="S", help="artifact size limit")
    p.add_argument(
        "--objective",
        choices=["miou", "latency"],
        default="miou",
        help="miou (default): the most accurate within the constraints; latency: the fastest at or above --min-miou",
    )
    p.add_argument(
        "--min-miou",
        type=float,
        default=None,
        metavar="F",
        help="mIoU floor (needed by --objective latency; optional with miou)",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="the confidence every decision holds at, over all looks and candidates (default 0.95)",
    )
    p.add_argument(
        "--max-time",
        type=float,
        default=DEFAULT_MAX_TIME_S,
        metavar="S",
        help=f"seconds of racing at most (exports excluded; default {DEFAULT_MAX_TIME_S:g}); then a tie "
        "is reported with what more time would settle",
    )
    p.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default as in bench)")
    add_harness(p, "what runs the cells on an ADB device (as in bench)")
    add_adb_transport(p, "how an ADB device is reached (as in bench)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="pool the samples already in the results file for these candidates and race on from there",
    )
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"output folder (default {DEFAULT_OUT}/): records, choose.json, the plot, card.json + card.md",
    )
    add_export_dir(p)
    add_quiet(p)
    p.set_defaults(func=run)


def _check_args(args) -> None:
    from ..errors import MobilesegError

    if not args.budget_ms > 0:
        raise MobilesegError(f"--budget-ms must be a number of milliseconds above 0, not {args.budget_ms:g}")
    if not args.max_time > 0:
        raise MobilesegError(f"--max-time must be a number of seconds above 0, not {args.max_time:g}")
    if not 0.5 <= args.confidence < 1:
        raise MobilesegError(f"--confidence must be at least 0.5 and below 1 (such as 0.95), not {args.confidence:g}")
    for flag, v in (("--max-memory-mb", args.max_memory_mb), ("--max-size-mb", args.max_size_mb)):
        if v is not None and not v > 0:
            raise MobilesegError(f"{flag} must be above 0, not {v:g}")
    if args.objective == "latency" and args.min_miou is None:
        raise MobilesegError("--objective latency needs an mIoU floor: give --min-miou F (the lowest mIoU you accept)")
    if args.eval_limit is not None and args.data is None:
        raise MobilesegError("--eval-limit limits --data's evaluation: give --data DIR too")
    if args.eval_limit is not None and args.eval_limit < 1:
        raise MobilesegError(f"--eval-limit must be at least 1, not {args.eval_limit}")
    if args.data is not None:
        from ..eval.datasets import find_pairs

        find_pairs(args.data)  # a folder eval cannot read is one sentence now, before anything is exported
    if args.calib is not None and not os.path.isdir(args.calib):
        raise MobilesegError(f"--calib folder {args.calib} not found: give a folder of calibration images")


def _runtime_names(values) -> tuple[list, bool]:
    import difflib

    from .. import formats
    from ..errors import MobilesegError

    if not values:
        return list(default_runtimes()), False
    out = []
    for v in values:
        name = formats.runtime_key(v)
        if name is None:
            near = difflib.get_close_matches(v, list(RUNTIMES), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise MobilesegError(f"unknown runtime '{v}'{hint}: choose from {', '.join(RUNTIMES)}")
        out.append(name)
    return list(dict.fromkeys(out)), True


def command_line(args) -> str:
    """The command that reproduces this run (from the parsed arguments, in their canonical spelling)."""
    parts = [
        "mobileseg",
        "choose",
        "--device",
        args.device,
        "--budget-ms",
        f"{args.budget_ms:g}",
        "--threads",
        str(args.threads),
    ]
    for flag, values in (
        ("--models", args.models),
        ("--res", args.res),
        ("--runtimes", args.runtimes),
        ("--precisions", args.precisions),
        ("--graphs", args.graphs),
    ):
        if values:
            parts += [flag, *split_list(values)]
    for flag, v in (
        ("--data", args.data),
        ("--calib", args.calib),
        ("--eval-limit", args.eval_limit),
        ("--max-memory-mb", args.max_memory_mb),
        ("--max-size-mb", args.max_size_mb),
        ("--min-miou", args.min_miou),
    ):
        if v is not None:
            parts += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
    if args.objective != "miou":
        parts += ["--objective", args.objective]
    if args.confidence != 0.95:
        parts += ["--confidence", f"{args.confidence:g}"]
    parts += ["--max-time", f"{args.max_time:g}"]
    return " ".join(shlex.quote(p) for p in parts)


def observation(rec: dict):
    """A bench record as the race sees it."""
    from ..choose.race import Observation
    from ..results.table import numerics_only

    if rec.get("status") == "error":
        return Observation([], error=rec.get("error") or "the measurement failed")
    why = None
    if numerics_only(rec):
        settings = rec.get("runtime_settings") or {}
        why = (
            "software Vulkan (" + str(settings.get("vulkan_device") or "lavapipe") + ")"
            if settings.get("vulkan_software")
            else "emulated device (qemu)"
        )
    par = rec.get("parity") or {}
    reason = None
    if rec.get("status") == "parity_failed":
        fig = (
            f"rel L2 {par['rel_l2']:.2e} > limit {par.get('limit_rel_l2', 0):.0e}"
            if par.get("rel_l2") is not None and par.get("limit_rel_l2") is not None
            else "outside the limit"
        )
        per = (par.get("per_layer") or {}).get("sentence")
        reason = fig + (f"; {per}" if per else "")
    mem = (rec.get("memory") or {}).get("peak_rss_growth_mb")
    return Observation(
        list(rec.get("samples_ms") or []),
        numerics_only=why,
        parity_ok=False if rec.get("status") == "parity_failed" else True,
        parity_reason=reason,
        memory_mb=mem,
    )


def run(args) -> int:
    import sys
    import time

    from ..choose import accuracy as acc
    from ..choose.candidates import plan
    from ..choose.measure import BenchMeasure
    from ..choose.race import OVER_SIZE, Arm, Race, drive
    from ..runtimes.base import check_threads

    _check_args(args)
    threads = check_threads(args.threads)
    say = (lambda m: print(f"[choose] {m}", file=sys.stderr, flush=True)) if not args.quiet else (lambda m: None)
    names, explicit = _runtime_names(split_list(args.runtimes))
    opts = {k: v for k, v in (("harness", args.harness), ("adb_transport", args.adb_transport)) if v != "auto"}
    m = BenchMeasure(
        args.device,
        threads,
        out_dir=args.out,
        export_root=args.export_dir,
        target_options=opts,
        cpu=args.cpu,
        calib=args.calib,
    )
    m.open()
    try:
        usable, notes = m.usable_runtimes(names, explicit)
        if not usable:
            from ..errors import MobilesegError

            raise MobilesegError("no runtime runs on this device: install one with pip install 'mobileseg[export]'")
        cands, more = plan(
            split_list(args.models),
            split_list(args.res),
            usable,
            split_list(args.precisions),
            split_list(args.graphs),
            threads,
            explicit,
        )
        for n in notes + more:
            say(n)
        say(f"{len(cands)} candidate(s) on {m.device_id}; exporting (not counted in --max-time)")
        table_pub = acc.published_table() if args.data is None else None
        eval_cache: dict = {}
        arms, exports, evidence = [], {}, {}
        for c in cands:
            arm = Arm(id=c.id)
            try:
                folder, man = m.prepare(c)
                exports[c.id] = (folder, man)
                files = ((man.get("formats") or {}).get(c.format) or {}).get("files") or []
                arm.size_mb = sum(f.get("bytes") or 0 for f in files if isinstance(f, dict)) / 1e6
                if args.max_size_mb is not None and arm.size_mb > args.max_size_mb:
                    arm.excluded = (OVER_SIZE, f"{arm.size_mb:.1f} MB > {args.max_size_mb:g} MB")
            except Exception as exc:  # one failed export must not stop the others: it is out with its reason
                arm.excluded = ("error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            if args.data is not None and not arm.excluded:
                say(f"evaluating {c.id} on {args.data}")
                ev = acc.measured(
                    c,
                    args.data,
                    args.calib,
                    os.path.join(args.export_dir, "eval"),
                    args.eval_limit,
                    eval_cache,
                    progress=not args.quiet,
                )
            else:
                ev = acc.published(c, table_pub)
            evidence[c.id] = ev
            arm.accuracy, arm.proxy = ev.miou, ev.proxy
            arms.append(arm)
        race = Race(
            arms,
            args.budget_ms,
            objective=args.objective,
            min_miou=args.min_miou,
            max_memory_mb=args.max_memory_mb,
            alpha=1 - args.confidence,
            # qemu's timings are never ranked: a short first batch is enough for parity
            **({"first": EMULATED_BATCH} if m.emulated else {}),
        )
        by_id = {c.id: c for c in cands}
        records: dict = {c.id: [] for c in cands}
        if args.resume:
            for c in cands:
                for rec in m.earlier(c):
                    if race._arm(c.id).live:
                        race.observe(c.id, observation(rec))
                        records[c.id].append(rec)
            if any(records.values()):
                say(f"resumed from {m.path}: {sum(len(v) for v in records.values())} earlier record(s)")
                race.settle()

        def measure(arm_id, n):
            say(f"round {race.round + 1}: {arm_id}: {n} samples")
            rec = m.measure(by_id[arm_id], n)
            records[arm_id].append(rec)
            return observation(rec)

        t0 = time.monotonic()
        drive(race, measure, time.monotonic, args.max_time)
        race_s = time.monotonic() - t0
    finally:
        m.close()
    return _report(args, race, cands, records, exports, evidence, m, race_s)


def _fmt(v, spec="{:.3g}") -> str:
    import math

    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else spec.format(v)


def _rows(race, cands, records, evidence) -> list:
    out = []
    for c, a in zip(cands, race.arms):
        recs = records.get(c.id) or []
        ev = evidence.get(c.id)
        par = (recs[-1].get("parity") or {}) if recs else {}
        out.append(
            {
                "id": c.id,
                "model": c.model,
                "resolution": list(c.resolution),
                "runtime": c.runtime,
                "precision": c.precision,
                "graph": c.graph,
                "fate": a.fate,
                "by": a.by,
                "reason": a.reason,
                "rounds": a.rounds,
                "samples": a.n,
                "median": a.median,
                "low": a.low,
                "high": a.high,
                "level": a.seq.level,
                "miou": a.accuracy if a.accuracy is not None else a.proxy,
                "measured": a.accuracy is not None,
                "accuracy": ev.to_dict() if ev else None,
                "memory_mb": a.memory_mb,
                "size_mb": a.size_mb,
                "parity_ok": par.get("ok"),
                "rel_l2": par.get("rel_l2"),
                "numerics_only": a.fate == "not ranked (numerics only)",
                "records": len(recs),
            }
        )
    return out


def _line(row: dict, budget: float) -> str:
    h, w = row["resolution"]
    acc = row["accuracy"] or {}
    miou = f"mIoU {acc['miou']:.1f} ({acc['source']})" if acc.get("miou") is not None else acc.get("source", "")
    return (
        f"{row['model']} {h}x{w} on {row['runtime']} {row['precision']}: median {_fmt(row['median'])} ms "
        f"[{_fmt(row['low'])}, {_fmt(row['high'])}] (budget {budget:g} ms), {miou}, memory "
        f"{_fmt(row['memory_mb'])} MB, size {_fmt(row['size_mb'])} MB"
    )


def _report(args, race, cands, records, exports, evidence, m, race_s: float) -> int:
    import json
    import math
    import sys

    from ..choose import card as card_mod
    from ..choose.plot import pareto
    from ._format import table

    rows = _rows(race, cands, records, evidence)
    out = args.out
    os.makedirs(out, exist_ok=True)
    printable = [
        {
            "candidate": r["id"],
            "fate": r["fate"] + (f" by {r['by']}" if r["by"] else ""),
            "rounds": r["rounds"],
            "n": r["samples"],
            "median ms": _fmt(r["median"]),
            "interval ms": f"[{_fmt(r['low'])}, {_fmt(r['high'])}]" if r["samples"] else "",
            "mIoU": (_fmt(r["miou"], "{:.1f}") + ("" if r["measured"] else "?")) if r["miou"] else "-",
            "parity": "" if r["parity_ok"] is None else ("ok" if r["parity_ok"] else "FAILED"),
            "MB mem": _fmt(r["memory_mb"]),
            "MB size": _fmt(r["size_mb"]),
            "why": r["reason"],
        }
        for r in rows
    ]
    print(table(printable))
    if any(r["miou"] and not r["measured"] for r in rows):
        print("mIoU '?': accuracy not measured (the fp32 model's published figure, shown only as a proxy)")
    summary = {
        "command": command_line(args),
        "budget_ms": args.budget_ms,
        "objective": args.objective,
        "min_miou": args.min_miou,
        "confidence": args.confidence,
        "state": race.state,
        "refusal": race.refusal,
        "results_file": str(m.path),
        "device": m.device,
        "race_seconds": round(race_s, 3),
        "rounds": race.round,
        "tie": race.tie_report() if race.state == "tied" else [],
        "candidates": [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows
        ],
    }
    settle = sorted({(r["accuracy"] or {}).get("settle") for r in rows if (r["accuracy"] or {}).get("settle")})
    plots = []
    try:
        dev = m.device.get("model") or m.device.get("serial") or m.device_id
        plots = pareto(rows, args.budget_ms, os.path.join(out, "pareto"), f"mobileseg choose on {dev}: {race.state}")
    except Exception as exc:  # the report extra (matplotlib) may be missing: the decision stands without a plot
        print(f"mobileseg: note: no plot ({exc})", file=sys.stderr)
    summary["plots"] = [str(p) for p in plots]
    lead = race.winner or (race.leader() if race.state == "tied" else None)
    if lead is not None:
        c = next(c for c in cands if c.id == lead.id)
        folder, man = exports[c.id]
        crd = card_mod.build(
            c,
            lead,
            records[c.id],
            man,
            folder,
            evidence[c.id],
            race,
            command_line(args),
            tied=race.tied(),
            results_file=m.path,
        )
        summary["card"] = [str(p) for p in card_mod.write(crd, out)]
    with open(os.path.join(out, "choose.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, default=str)
    row_of = {r["id"]: r for r in rows}
    if race.state == "chosen":
        print(f"chosen: {_line(row_of[race.winner.id], args.budget_ms)}")
    elif race.state == "tied":
        names = ", ".join(a.id for a in race.tied())
        print(f"no single winner at {args.confidence:g} within --max-time {args.max_time:g} s: tied: {names}")
        for s in race.tie_report():
            print(f"  {s}")
        if lead is not None:
            print(f"  leading (lowest median, not a decision): {_line(row_of[lead.id], args.budget_ms)}")
    elif race.state == "refused":
        print(race.refusal)
    else:
        print(
            f"no candidate meets the constraints (budget {args.budget_ms:g} ms"
            + (f", memory {args.max_memory_mb:g} MB" if args.max_memory_mb else "")
            + (f", size {args.max_size_mb:g} MB" if args.max_size_mb else "")
            + "): see the table"
        )
    if settle and race.state != "refused":
        print("accuracy: " + "; ".join(settle))
    print(
        f"records: {m.path}; summary: {os.path.join(out, 'choose.json')}"
        + (f"; card: {os.path.join(out, 'card.md')}" if lead is not None else "")
        + (f"; plot: {plots[0]}" if plots else "")
    )
    return 0 if race.state == "chosen" else 1
