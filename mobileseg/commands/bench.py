"""``mobileseg bench``: single-thread latency of exported models on the host or an ADB device, with parity."""

from __future__ import annotations

from ..formats import GRAPHS, PRECISIONS, RUNTIMES, default_runtimes
from ..results.paths import RUNS_DIR
from ._args import add_adb_transport, add_allow_edited, add_export_dir, add_harness, add_list, add_quiet, split_list


def add_sampling(p) -> None:
    """``--target-ci PCT`` and ``--max-time S`` (mobileseg.bench.sampling)."""
    p.add_argument(
        "--target-ci",
        type=float,
        default=None,
        metavar="PCT",
        help="keep sampling each cell until the 95%% interval of its median is within PCT percent of the "
        "median (relative half-width, the wider side), or --max-time ran out; --repeats is then "
        "the minimum count (default 10)",
    )
    p.add_argument(
        "--max-time",
        type=float,
        default=None,
        metavar="S",
        help="with --target-ci: seconds of sampling per cell at most (default 30)",
    )
    p.add_argument(
        "--sustained",
        type=float,
        default=None,
        metavar="MINUTES",
        help="run each cell for MINUTES minutes on end: per-minute median/p90, temperatures and "
        "frequencies, and the minute the median first exceeds minute 1's by 10%%",
    )
    import argparse

    p.add_argument("--sustained-minute-s", type=float, default=None, help=argparse.SUPPRESS)  # tests: short minutes
    p.add_argument(
        "--profile",
        action="store_true",
        help="also record a per-op profile of each cell in its own pass after the timed runs (host: "
        "ONNX Runtime's profiler, ncnn layer by layer); the report shows each cell's top ops",
    )


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="time exported models (one pinned core) and check parity; results -> JSONL",
        description="Measure every cell (model x resolution x runtime x precision x graph) on the "
        "target, check its output against the PyTorch reference, and append one record "
        "per cell to a JSON Lines results file.",
    )
    p.add_argument(
        "--device",
        default="local",
        help="local (default); adb (the only device the adb server lists), adb:SERIAL (any serial it "
        "lists: USB, HOST:PORT, emulator-5554; a HOST:PORT it does not list is adb-connected), "
        "adb:S1,S2 or adb:all (several devices in parallel, one results file each); "
        "adb@SERVER[/SERIAL],... the devices of several adb servers (SERVER: HOST:PORT or a name "
        "from --adb-server)",
    )
    add_list(
        p,
        "--adb-server",
        "NAME=HOST:PORT: an adb server of a lab on several hosts, named in --device "
        "adb@NAME[/SERIAL] (repeatable; --device adb@HOST:PORT/SERIAL needs no declaration)",
    )
    add_adb_transport(
        p,
        "server: through the adb server (ADB_SERVER_SOCKET, ANDROID_ADB_SERVER_ADDRESS/PORT, else "
        "localhost:5037; started with adb start-server when needed); direct: adb-shell straight to "
        "the device (TCP, or USB with libusb and no adb server running); auto (default): the "
        "server, or direct when none answers and no adb binary can start one",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per runtime (default: the suite's threads, else 1: one intra-op thread, no inter-op pool)",
    )
    add_list(p, "--models", "model names (default: every segmentation model, or the suite's)", aliases=("-m",))
    add_list(p, "--res", "resolutions, 448 or HxW (default: each model's paper resolution)")
    add_list(
        p,
        "--runtimes",
        f"{', '.join(RUNTIMES)} (default: every installed one of "
        f"{', '.join(default_runtimes())}; ncnn-vulkan only when named: it needs a Vulkan device, Mesa's software "
        "lavapipe where there is no GPU)",
    )
    add_list(
        p,
        "--precisions",
        f"{' or '.join(PRECISIONS)} (default fp32, for every runtime; on ncnn-vulkan fp16 "
        "means fp16 storage and arithmetic, what ncnn runs on phones' GPUs: ask for it with --precisions fp16)",
        aliases=("--precision",),
    )
    add_list(p, "--graphs", f"timed graph boundary: {' or '.join(GRAPHS)} (default logits)", aliases=("--graph",))
    p.add_argument("--suite", help="a suite file such as bench/smoke.toml; --models/--res/--runtimes then filter it")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up runs per cell (default 5)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--repeats", type=int, default=None, help="timed runs per cell (default 20)")
    g.add_argument("--min-time", type=float, default=None, help="seconds of timed runs per cell instead of --repeats")
    add_sampling(p)
    p.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="CPU to pin to (default: the host's last CPU; on a device, the last core of the big cluster)",
    )
    add_harness(
        p,
        "what runs the cells on an ADB device: python (device_scripts/harness.py under the "
        "device's python3: ncnn, onnxruntime, litert), native (the C++ ncnn harness built by "
        "`mobileseg harness build`, for phones without Python; ncnn only) or auto (default: python "
        "when the device has it, else native); on the host the runtimes always run in-process",
    )
    p.add_argument(
        "--tflite-benchmark",
        metavar="PATH|auto",
        default=None,
        help="time litert cells on the ADB device with this TFLite benchmark_model binary (built for "
        "the device; pushed once, same threads and pinning; timings only: parity not checked); "
        "auto: the official prebuilt fetched by `mobileseg tools fetch tflite-benchmark`",
    )
    p.add_argument(
        "--ort-perf-test",
        metavar="PATH",
        default=None,
        help="time onnxruntime cells on the ADB device with this onnxruntime_perf_test binary (built "
        "for the device; pushed once, same threads and pinning; timings only: parity not checked)",
    )
    p.add_argument(
        "--cooldown",
        type=float,
        default=None,
        help="max seconds to wait for temperatures between models (default: the suite's cooldown_s, else no wait)",
    )
    p.add_argument("--resume", action="store_true", help="skip cells already finished in the results file")
    p.add_argument("--out", default=RUNS_DIR, help=f"results folder (default {RUNS_DIR}/, git-ignored)")
    p.add_argument("--results-file", default=None, help="append to this file instead of <out>/<device>-t<N>.jsonl")
    add_export_dir(p)
    p.add_argument(
        "--no-export",
        action="store_true",
        help="use the export folders in --export-dir as they are, never export (a machine with the "
        "runtimes but not the converters, e.g. exports copied to a GPU machine); a cell whose "
        "artifact is missing is recorded as an error",
    )
    p.add_argument("--no-sgemm", action="store_true", help="skip timing the core's SGEMM reference rate")
    add_quiet(p)
    add_allow_edited(p)
    add_artifact_options(p)
    p.set_defaults(func=run)


def add_artifact_options(p) -> None:
    """``--artifact PATH...`` (files mobileseg did not write) and their input/reference options."""
    add_list(
        p,
        "--artifact",
        "bench these model files instead of registered models: .onnx, .tflite, .ncnn.param "
        "(with its .ncnn.bin) or .pte, written by any tool; several files of one model get parity across formats",
    )
    p.add_argument(
        "--input-shape",
        default=None,
        metavar="NxCxHxW",
        help="with --artifact: the input's size where the file leaves dimensions dynamic (e.g. 1x3x512x512)",
    )
    p.add_argument(
        "--input",
        default=None,
        metavar="FILE.npy",
        help="with --artifact: the input array (default: seeded random in the input's declared range)",
    )
    p.add_argument(
        "--reference",
        default=None,
        metavar="OUT.npy",
        help="with --artifact: the expected output; parity is checked against it",
    )


def settings_from_args(args):
    """The :class:`~mobileseg.bench.settings.BenchSettings` of a parsed command line (every flag, by its field)."""
    from ..bench.settings import BenchSettings

    return BenchSettings(
        models=split_list(args.models),
        resolutions=split_list(args.res),
        runtimes=split_list(args.runtimes),
        precisions=split_list(args.precisions),
        graphs=split_list(args.graphs),
        suite=args.suite,
        artifacts=split_list(args.artifact),
        input_shape=args.input_shape,
        input=args.input,
        reference=args.reference,
        device=args.device,
        adb_servers=split_list(args.adb_server),
        cpu=args.cpu,
        harness=args.harness,
        adb_transport=args.adb_transport,
        tflite_benchmark=args.tflite_benchmark,
        ort_perf_test=args.ort_perf_test,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        min_time=args.min_time,
        target_ci=args.target_ci,
        max_time=args.max_time,
        sustained=args.sustained,
        sustained_minute_s=args.sustained_minute_s,
        profile=args.profile,
        cooldown=args.cooldown,
        measure_reference=not args.no_sgemm,
        resume=args.resume,
        out_dir=args.out,
        results_file=args.results_file,
        export_root=args.export_dir,
        no_export=args.no_export,
        progress=not args.quiet,
    )


def run(args) -> int:
    """One settings object for every path; several devices run the same loop once each (mobileseg.bench.fleet)."""
    settings = settings_from_args(args)  # every flag checked once: refused in one sentence, never dropped
    if settings.several_devices:
        return run_several(settings)
    from ..bench.runner import run as run_bench

    records = run_bench(settings)
    _print_records(records)
    print(f"{len(records)} cell(s) measured, {len(records.skipped)} skipped (done earlier); results: {records.path}")
    return 1 if any(r["status"] != "ok" for r in records) else 0


def _print_records(records) -> None:
    from ._format import table

    rows = [summary_row(r) for r in records]
    if rows:
        print(table(rows))


def summary_row(rec: dict) -> dict:
    """The printed row of one record, from the results table view (latency and rate rules live there)."""
    from ..results.table import latency_text, row

    r = row(rec)
    two = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
    out = {
        "model": r["model"],
        "res": r["resolution"],
        "runtime": r["runtime"],
        "prec": r["precision"],
        "graph": r["graph"],
        "latency ms": latency_text(r),
        "p10": two(r["p10_ms"]),
        "p90": two(r["p90_ms"]),
        "n": r["count"] if r["count"] is not None else "",
        "GMAC/s": two(r["gmac_per_s"]),
        "rel_l2": "" if r["rel_l2"] is None else f"{r['rel_l2']:.1e}",
        "status": r["status"] if r["status"] != "error" else f"error: {r['error']}",
    }
    if r["status"] == "parity_failed" and (rec.get("parity") or {}).get("error"):  # why, not only in the JSON
        out["status"] = f"parity_failed: {rec['parity']['error']}"
    return out


def run_several(settings) -> int:
    """``--device adb:S1,S2`` / ``adb:all``: the same plan on every device in parallel (mobileseg.bench.fleet)."""
    from ..bench.fleet import DevicesLostError, open_and_run

    try:
        outcomes = open_and_run(settings)
    except DevicesLostError as exc:
        _print_outcomes(exc.outcomes)
        raise
    _print_outcomes(outcomes)
    bad = any(not o.ok or any(r["status"] != "ok" for r in o.run) for o in outcomes)
    return 1 if bad else 0


def _print_outcomes(outcomes) -> None:
    from ._format import table

    rows = [{"device": o.serial, **summary_row(r)} for o in outcomes if o.run for r in o.run]
    if rows:
        print(table(rows))
    for o in outcomes:
        print(o.summary())
    if len(outcomes) > 1:
        ok = sum(o.ok for o in outcomes)
        print(
            f"{len(outcomes)} device(s) ran: {ok} finished"
            + (f", {len(outcomes) - ok} did not" if ok < len(outcomes) else "")
        )
