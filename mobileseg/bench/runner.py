"""The one bench loop: measure cells on a target and append one record per cell to a results store.

Every path runs it: registered models (exported on demand, :mod:`.model_cells`), files users bring
(:mod:`.artifact_cells`), a suite mixing both, and each device of a several-device run (:mod:`.fleet` runs it once
per device). Its options are one :class:`~mobileseg.bench.settings.BenchSettings`, validated once.

Per cell: the cell's source gives its export folder (exporting it now if needed), the target times it, the source
judges its output (parity) and the record is appended at once, so Ctrl-C or a lost device keeps every finished cell
and ``--resume`` skips them on the next run. The pieces, for other stages that measure cells (the entry points):

* :func:`plan` -> :class:`Plan`: the sources of a settings object, and each cell's timing;
* :func:`runnable`: the cells of a plan a target can run (the others left out with a note, or refused);
* :func:`measure`: the loop over those cells on one target;
* :func:`measure_cell`: one cell -> one :class:`~mobileseg.results.record.LatencyRecord`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingDependencyError, MobilesegError
from .. import manifest as _manifest
from ..results.paths import RUNS_DIR
from .progress import Progress
from ..results.record import SCHEMA_VERSION, LatencyRecord
from ..results.stats import STATS_KEYS, median_ci, summarize
from ..results.store import ResultStore
from .settings import DEFAULT_REPEATS, DEFAULT_WARMUP, BenchSettings, Timing  # noqa: F401  (re-exported)
from .suite import Suite, SuiteError, load_suite
from . import targets as _targets
from .targets import Target, TargetLostError


class BenchRun(list):
    """The records written by one run of the loop on one target (dicts), plus where they went and what was
    skipped."""

    path: Path | None = None
    skipped: list
    sgemm: dict | None = None


def results_file_for(target: Target, threads: int, out_dir=RUNS_DIR) -> Path:
    """Default results file: ``<out_dir>/<device id>-t<threads>.jsonl`` (``results/runs/host-amd-epyc-3f09a1-t1.jsonl``)."""
    return Path(out_dir) / f"{target.device_id()}-t{int(threads)}.jsonl"


@dataclass
class Plan:
    """What one run measures: its settings (``threads`` resolved), its cell sources (registered models and/or files users bring) and the
    timing of each cell (the settings merged with the suite's)."""

    settings: BenchSettings
    sources: list
    timing: Timing
    suite_name: str | None = None

    def cells(self) -> list:
        """``(source, cell)`` in order: files first, then registered models (as the command always ran them)."""
        return [(src, c) for src in self.sources for c in src.cells]


def plan(settings: BenchSettings, export_fn=None, notes=None) -> Plan:
    """The cell sources of ``settings``: ``--artifact`` files, else the suite's file groups and model groups (the
    command line's lists filter them), else the command line's models. ``notes(text)``: what the user should know
    about the files (default: stderr)."""
    from .artifact_cells import artifact_sources
    from .model_cells import filter_cells, model_source

    if export_fn is None and settings.no_export:
        export_fn = existing_export
    suite = settings.suite
    if suite is not None and not isinstance(suite, Suite):
        suite = load_suite(suite)
    if settings.threads is None:  # the suite's threads, else one
        settings = settings.but(threads=int((suite.settings if suite is not None else {}).get("threads", 1)))
    sources = artifact_sources(settings, suite, notes)
    if suite is not None:
        for src in sources:
            src.cells = filter_cells(
                src.cells,
                settings.models,
                settings.resolutions,
                settings.runtimes,
                settings.precisions,
                settings.graphs,
            )
    models = model_source(settings, suite, export_fn)
    if models is not None:
        sources.append(models)
    sources = [s for s in sources if s.cells]
    if suite is not None and not sources:
        raise SuiteError(
            f"no cell of suite '{suite.name}' matches the --models/--res/--runtimes/--precision/--graph "
            "filters; loosen them"
        )
    return Plan(
        settings,
        sources,
        settings.timing(suite.settings if suite is not None else None),
        suite.name if suite is not None else None,
    )


def runnable(p: Plan, target: Target) -> tuple[list, list[str]]:
    """The ``(source, cell)`` pairs of ``p`` that ``target`` can run, and the runtimes left out.

    Every runtime must be usable before anything is exported or timed; a runtime of a source whose runtimes were
    not chosen (the command line's defaults) that cannot run is left out instead, with a note (``{runtime: why}``).
    """
    usable: dict = {}
    why_not: dict = {}
    for src in p.sources:
        for rt in dict.fromkeys(c.runtime for c in src.cells):
            if usable.get(rt):
                continue
            try:
                target.check_runtime(rt)
                usable[rt] = True
            except MissingDependencyError as exc:
                if src.explicit_runtimes:
                    raise MissingDependencyError(
                        f"runtime '{rt}' cannot run: {exc}; or leave it out with --runtimes"
                    ) from None
                usable[rt], why_not[rt] = False, str(exc)
    pairs = [(src, c) for src, c in p.cells() if usable[c.runtime]]
    if not pairs:
        raise MobilesegError(
            "no runtime is installed for the requested cells: install one with "
            "pip install 'mobileseg[export]' -c constraints.txt"
        )
    return pairs, {r: why_not[r] for r in sorted(why_not)}


def existing_export(model, resolution, formats, precision, graph, out) -> dict:
    """``bench --no-export``'s export stage: the manifest already in ``out``, unchanged (no converter, no cache
    key: the artifacts were exported elsewhere); a missing folder is that cell's error."""
    from .model_cells import ExportFailedError

    man = _manifest.read(out)
    if man is None:
        raise ExportFailedError(
            f"--no-export: {out} holds no export (no readable manifest.json); export "
            f"{model} at {resolution[0]}x{resolution[1]} ({precision}) there first"
        )
    return man


def run(settings: BenchSettings, target: Target | None = None, export_fn=None) -> BenchRun:
    """Measure the cells of ``settings`` on one target (``settings.device``, or ``target`` when given; the fleet
    runs several devices, :func:`mobileseg.bench.fleet.run_on_devices`)."""
    if settings.several_devices and target is None:
        raise MobilesegError(
            f"--device {settings.device} names several devices: they are measured by "
            "mobileseg.bench.fleet.run_on_devices (the mobileseg bench command does that)"
        )
    p = plan(settings, export_fn)
    own = target is None
    if own:
        target = _targets.open_target(settings.device, **settings.target_options())
    try:
        pairs, missing = runnable(p, target)
        prog = settings.progress
        if not isinstance(prog, Progress):
            prog = Progress(len(pairs), enabled=bool(prog))
        return measure(p, pairs, target, prog, missing)
    finally:
        if own:
            target.close()


def run_bench(
    target: Target | None = None, export_fn=None, settings: BenchSettings | None = None, **options
) -> BenchRun:
    """The Python API of ``mobileseg bench`` on one target: ``options`` are :class:`BenchSettings`' fields
    (``models``, ``resolutions``, ``runtimes``, ``suite``, ``artifacts``, ``device``, ``repeats``, ``target_ci``,
    ``profile``, ``sustained``...; ``cooldown_s`` and ``target_options`` are accepted as older spellings).
    ``target``: an opened target (then ``device`` is not used); ``export_fn``: the export stage (tests)."""
    return run(settings if settings is not None else BenchSettings.of(**options), target=target, export_fn=export_fn)


def measure(p: Plan, pairs: list, target: Target, prog: Progress, missing=()) -> BenchRun:
    """The loop: every ``(source, cell)`` of ``pairs`` on ``target``, one record each appended to the results file."""
    s, timing = p.settings, p.timing
    run = BenchRun()
    run.skipped = []
    try:
        device_id = target.device_id()
        path = Path(s.results_file) if s.results_file else results_file_for(target, s.threads, s.out_dir)
        store = ResultStore(path)
        store.check_writable()  # a bad --out/--results-file fails now, not after the first measured cell
        run.path = path
        done = store.done_keys() if s.resume else set()
        why_not = missing if isinstance(missing, dict) else dict.fromkeys(missing, "not installed")
        for (
            r,
            why,
        ) in why_not.items():  # the target's reason: not installed here, or (a phone) it needs an official tool
            prog.note(f"runtime '{r}' is left out: {why}")
        if not s.resume and (again := store.repeat_note(c.key(device_id) for _, c in pairs)):
            prog.note(again)
        description = target.describe()
        from .env import describe_host

        host = describe_host()
        todo = [c for _, c in pairs if c.key(device_id) not in done]
        if todo and s.measure_reference:
            run.sgemm = target.reference_rate(prog.note)
        formats_by_group: dict = {}
        for c in todo:
            formats_by_group.setdefault((c.model, c.resolution, c.precision, c.graph), set()).add(c.format)
        last_model, reference_state = None, None
        for source, cell in pairs:
            key = cell.key(device_id)
            if key in done:
                run.skipped.append(key)
                prog.skip(cell.label())
                continue
            waited = None
            if timing.cooldown_s and last_model is not None and cell.model != last_model:
                waited = target.cooldown(reference_state, timing.cooldown_s)
            try:
                export = source.export(
                    cell, sorted(formats_by_group[(cell.model, cell.resolution, cell.precision, cell.graph)]), prog
                )
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # recorded as this cell's error by measure_cell
                export = exc
            prog.start(cell.label())
            rec = measure_cell(
                cell,
                target,
                export,
                timing,
                judge=source.judge,
                key=key,
                description=description,
                host=host,
                sgemm=run.sgemm,
            )
            if s.profile and rec.status != "error":
                rec.extra["profile"] = target.profile(cell, *export)
            if waited is not None:
                rec.extra["cooldown"] = waited
            source.finish(rec, cell)
            reference_state = rec.device_state.get("before", {})
            last_model = cell.model
            store.append(rec)
            d = rec.to_dict()
            run.append(d)
            prog.finish(_summary(d), measured=d["status"] != "error")
        prog.close()
    except TargetLostError as exc:
        # Keep the subclass (DeviceLostError...) and say what was kept and how to go on.
        if run.path is not None and "--resume" not in str(exc):
            left = len(pairs) - len(run) - len(run.skipped)
            exc.args = (
                f"{exc}; {len(run) + len(run.skipped)} finished cell(s) are kept in {run.path}: rerun the "
                f"same command with --resume to measure the {left} cell(s) left",
            )
        raise
    return run


_COMPLEXITY: dict = {}


def model_complexity(model: str, resolution, num_classes=None) -> tuple[float | None, int | None]:
    """(GMACs in the papers' convention, parameters) of ``model`` at ``resolution``; cached."""
    key = (model, tuple(resolution), num_classes)
    if key not in _COMPLEXITY:
        try:
            from ..export.api import torch_threads
            from ..flops import count_complexity
            from ..registry import create_model

            with torch_threads(1):  # the process is pinned to one core: more threads would only fight over it
                c = count_complexity(create_model(model, num_classes=num_classes), *resolution)
            _COMPLEXITY[key] = (c.macs / 1e9, c.params)
        except (ImportError, MobilesegError):
            _COMPLEXITY[key] = (None, None)
    return _COMPLEXITY[key]


def _complexity_of(manifest: dict, cell) -> tuple[float | None, int | None]:
    """The export's own count (manifest ``complexity``), so a cell builds no model; counted here for older exports."""
    c = manifest.get("complexity") or {}
    if c.get("gmacs") is not None:
        return c["gmacs"], c.get("params")
    return model_complexity(cell.model, cell.resolution, manifest.get("num_classes"))


def _artifact(folder: Path, manifest: dict, fmt: str) -> dict:
    entry = (manifest.get("formats") or {}).get(fmt) or {}
    files = entry.get("files") or []
    return {
        "export_dir": str(folder),
        "manifest": str(folder / _manifest.FILE),
        "sha256": (files[0].get("sha256") if files and isinstance(files[0], dict) else None),
        "files": [f.get("path") if isinstance(f, dict) else f for f in files],
        "weights": manifest.get("weights"),
    }


THROTTLE_DROP = 0.95  # a CPU running below 95% of its frequency before the cell counts as throttled


def _throttled(before: dict, after: dict, cpu, affinity=None) -> bool:
    """Whether the frequency of a CPU the cell ran on dropped between ``before`` and ``after`` (device states).

    The CPUs looked at are the cell's affinity when known, else the pinned CPU, else every CPU of the state.
    """
    fb, fa = (before or {}).get("freqs_khz") or {}, (after or {}).get("freqs_khz") or {}
    keys = [str(c) for c in affinity or [] if str(c) in fb]
    if not keys:
        keys = [str(cpu)] if cpu is not None and str(cpu) in fb else list(fb)
    return any(k in fa and fb[k] and fa[k] < THROTTLE_DROP * fb[k] for k in keys)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _fmt_ms(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _summary(d: dict) -> str:
    """The progress line of a finished cell (latency from the results table view)."""
    from ..results.table import row

    if d["status"] == "error":
        return f"ERROR {d['error']}"
    r = row(d)
    par = (
        f"rel_l2 {r['rel_l2']:.1e}"
        if r["rel_l2"] is not None
        else f"argmax {r['argmax_agree']}"
        if r["argmax_agree"] is not None
        else "parity not checked"
    )
    tag = "" if d["status"] == "ok" else " PARITY FAILED"
    if (d.get("parity") or {}).get("error"):  # e.g. output shape [1, 4, 64, 64] != reference shape [1, 5, 64, 64]
        par, tag = "PARITY FAILED", f" ({d['parity']['error']})"
    per_layer = (d.get("parity") or {}).get("per_layer") or {}
    if per_layer.get("sentence") or per_layer.get("error"):
        tag += f"; {per_layer.get('sentence') or per_layer.get('error')}"
    if (d.get("device_state") or {}).get("throttled"):
        tag += " THROTTLED (the CPU frequency dropped during the cell)"
    if r["latency_stat"] == "mean":  # a tool's own summary without a median (benchmark_model)
        return (
            f"mean {_fmt_ms(r['mean_ms'])} ms (min {_fmt_ms(r['min_ms'])}, max {_fmt_ms(r['max_ms'])}, "
            f"n={r['count']}, {d.get('harness')} summary), {par}{tag}"
        )
    return (
        f"median {_fmt_ms(r['latency_ms'])} ms (p10 {_fmt_ms(r['p10_ms'])}, p90 {_fmt_ms(r['p90_ms'])}, "
        f"n={r['count']}), {par}{tag}"
    )


def _cell_stats(cr) -> tuple[dict, str]:
    """(stats_ms, stats_source) of a CellRun: from its samples, else from the harness's own summary."""
    if cr.samples_ms:
        return {**summarize(cr.samples_ms), **median_ci(cr.samples_ms)}, "samples"
    tool = cr.stats_ms or {}
    if not tool.get("count") or all(tool.get(k) is None for k in ("median", "mean")):
        raise MobilesegError(f"the {cr.harness} harness returned no timings (neither samples nor a summary)")
    stats = {k: tool.get(k) for k in STATS_KEYS}
    stats["count"] = int(stats["count"])
    return stats, "tool-summary"


def _time_cell(target, cell, folder, manifest, timing: Timing, extra: dict):
    """The target's CellRun of one cell by the timing's rule: minutes on end, adaptive, or a count / a time."""
    if timing.sustained is not None:
        from .sustained import run_sustained

        cr, extra["sustained"] = run_sustained(
            target, cell, folder, manifest, timing.warmup, timing.sustained, timing.sustained_minute_s
        )
        return cr
    rule = timing.sampling()
    if rule is not None:
        return target.run_cell(cell, folder, manifest, timing.warmup, timing.repeats, timing.min_time, sampling=rule)
    return target.run_cell(cell, folder, manifest, timing.warmup, timing.repeats, timing.min_time)


def measure_cell(
    cell,
    target: Target,
    export,
    timing: Timing,
    *,
    judge=None,
    key: str | None = None,
    description: dict | None = None,
    host: dict | None = None,
    sgemm: dict | None = None,
) -> LatencyRecord:
    """Measure one cell on ``target`` and return its record (not stored); a broken cell is an ``error`` record.

    ``export``: ``(folder, manifest)`` of the cell's artifact, or the exception its export raised. ``timing``: the
    run's :class:`~mobileseg.bench.settings.Timing` (``BenchSettings(...).timing()``), or a ``BenchSettings``
    (its timing without a suite). ``judge(cell, output,
    folder, manifest, target) -> parity dict``: the source's parity rule (default: the export's reference).
    """
    from .env import describe_host, package_versions

    if isinstance(timing, BenchSettings):
        timing = timing.timing()
    if judge is None:
        from .model_cells import ModelCells

        judge = ModelCells([]).judge
    description = description if description is not None else target.describe()
    base = dict(
        id=key or cell.key(target.device_id()),
        model=cell.model,
        resolution=list(cell.resolution),
        format=cell.format,
        runtime=cell.runtime,
        precision=cell.precision,
        graph=cell.graph,
        threads=cell.threads,
        device=description,
        emulated=bool(target.emulated),
        warmup=timing.warmup,
        host=host if host is not None else describe_host(),
        timestamp=_now(),
        schema_version=SCHEMA_VERSION,
    )
    extra = {"sgemm": sgemm} if sgemm else {}
    try:
        if isinstance(export, BaseException):
            raise export
        folder, manifest = export
        target.prepare(folder, cell.format, manifest)
        before = target.state()
        cr = _time_cell(target, cell, folder, manifest, timing, extra)
        after = target.state()
        stats, stats_source = _cell_stats(cr)
    except (KeyboardInterrupt, TargetLostError):
        raise
    except Exception as exc:  # one broken cell (export, load or run) must not stop a suite
        msg = str(exc) if isinstance(exc, MobilesegError) else f"{type(exc).__name__}: {exc}"
        gmacs, params = model_complexity(cell.model, cell.resolution)
        return LatencyRecord(
            **base,
            status="error",
            error=msg.splitlines()[0] if msg else type(exc).__name__,
            versions=package_versions(),
            gflops=gmacs,
            params=params,
            extra=extra,
        )
    if cr.output is None:  # timings-only harness (official benchmark binaries)
        parity = {"checked": False, "reason": cr.parity_note or f"the {cr.harness} harness returns no output"}
    else:
        parity = judge(cell, cr.output, folder, manifest, target)
    gmacs, params = _complexity_of(manifest, cell)
    versions = package_versions()
    versions.update({k: v for k, v in (manifest.get("versions") or {}).items() if k not in versions})
    extra["stats_source"] = stats_source
    extra.update(cell_extras(cr, timing.repeats, timing.min_time))
    if manifest.get("int8"):
        from .int8 import record_fields

        extra.update(record_fields(manifest, cell.format, cr.output, folder))
    return LatencyRecord(
        **base,
        runtime_version=cr.runtime_version,
        runtime_settings=cr.runtime_settings,
        affinity=list(cr.affinity),
        device_state={
            "before": before,
            "after": after,
            "throttled": _throttled(before, after, description.get("pinned_cpu"), cr.affinity),
        },
        harness=cr.harness,
        stats_ms=stats,
        samples_ms=[round(v, 6) for v in cr.samples_ms],
        overhead_ms=cr.overhead_ms,
        parity=parity,
        gflops=gmacs,
        params=params,
        versions=versions,
        artifact=_artifact(folder, manifest, cell.format),
        status="ok" if parity.get("ok", True) or parity.get("checked") is False else "parity_failed",
        extra=extra,
    )


def cell_extras(cr, repeats, min_time) -> dict:
    """The per-cell fields beside the timings: ``load_ms``, ``first_run_ms``, ``memory`` (with its definition) and
    ``sampling`` (the rule that stopped the loop), each only when the harness measured it."""
    out = {k: getattr(cr, k, None) for k in ("load_ms", "first_run_ms", "memory")}
    out["sampling"] = getattr(cr, "sampling", None) or {
        "rule": "repeats" if repeats is not None else "min-time",
        "repeats": repeats,
        "min_time_s": min_time,
    }
    return {k: v for k, v in out.items() if v is not None}
