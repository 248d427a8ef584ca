"""``mobileseg bench --artifact PATH...`` and suite groups of model files: the command side of
:mod:`mobileseg.bench.artifact_bench`."""
from __future__ import annotations

from ._args import split_list


def _common(args) -> dict:
    from .bench import target_options

    return dict(device=args.device, threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                min_time=args.min_time, cpu=args.cpu, resume=args.resume, out_dir=args.out,
                results_file=args.results_file, export_root=args.export_dir, progress=not args.quiet,
                target_options=target_options(args))


def _check_device(args) -> None:
    from ..errors import MobilesegError

    if args.device.startswith("adb:"):
        from ..device.selection import parse_device_arg

        if parse_device_arg(args.device).several:
            raise MobilesegError("--artifact measures one device at a time: give --device adb:SERIAL (or run the "
                                 "command once per device)")


def run_artifact_args(args) -> int | None:
    """Run ``--artifact`` (exit code), or a suite's artifact groups (exit code when the suite has nothing else;
    None: go on with its model groups). None also when there is nothing of this kind to run."""
    from ..bench.artifact_bench import run_artifacts
    from ..errors import MobilesegError
    from .bench import summary_row
    from ._format import table

    artifacts = split_list(getattr(args, "artifact", None))
    runs = []
    if artifacts:
        if args.suite or args.models or args.res or args.graphs:
            raise MobilesegError("--artifact benches the given files: drop --suite, --models, --res and --graphs "
                                 "(the files fix the model and its input size)")
        _check_device(args)
        runs.append(run_artifacts(artifacts, input_shape=args.input_shape, input=args.input,
                                  reference=args.reference, runtimes=split_list(args.runtimes),
                                  precisions=split_list(args.precisions), **_common(args)))
    else:
        for opt in ("input_shape", "input", "reference"):
            if getattr(args, opt, None):
                raise MobilesegError(f"--{opt.replace('_', '-')} goes with --artifact PATH (a model file mobileseg "
                                     "did not write)")
        from ..bench.suite import load_suite

        suite = load_suite(args.suite)
        if not suite.artifact_groups:
            return None
        _check_device(args)
        for g in suite.artifact_groups:
            runs.append(run_artifacts(g["artifacts"], input_shape=g["input_shape"], input=g["input"],
                                      reference=g["reference"],
                                      runtimes=split_list(args.runtimes) or g["runtimes"],
                                      precisions=split_list(args.precisions) or g["precisions"], **_common(args)))
        if suite.groups:
            return None
    records = [r for run in runs for r in run]
    if records:
        print(table([dict(summary_row(r), model=r["model"]) for r in records]))
    for run in runs:
        print(f"{len(run)} cell(s) measured, {len(run.skipped)} skipped (done earlier); results: {run.path}")
    return 1 if any(r["status"] != "ok" for r in records) else 0
