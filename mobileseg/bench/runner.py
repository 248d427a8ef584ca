"""``run_bench``: measure a set of cells on a target and append one record per cell to a results store.

Per cell: export on demand through the export stage (cached in the export folder), time it on the target, compare
its output with the export's PyTorch reference (``reference/output.npy``) and append the record at once, so Ctrl-C
or a lost device keeps every finished cell and ``resume=True`` skips them on the next run.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ..errors import MissingDependencyError, MobilesegError
from .. import manifest as _manifest
from ..results.paths import RUNS_DIR
from .progress import Progress
from ..results.record import SCHEMA_VERSION, LatencyRecord
from ..results.stats import median_ci, summarize
from ..results.store import ResultStore
from .. import formats
from .suite import Cell, Suite, SuiteError, build_group, load_suite
from .targets import Target, TargetLostError, open_own_target

DEFAULT_WARMUP = 5
DEFAULT_REPEATS = 20


class BenchRun(list):
    """The records written by one ``run_bench`` call (dicts), plus where they went and what was skipped."""

    path: Path | None = None
    skipped: list
    sgemm: dict | None = None


def results_file_for(target: Target, threads: int, out_dir=RUNS_DIR) -> Path:
    """Default results file: ``<out_dir>/<device id>-t<threads>.jsonl`` (``results/runs/host-amd-epyc-3f09a1-t1.jsonl``)."""
    return Path(out_dir) / f"{target.device_id()}-t{int(threads)}.jsonl"


def plan_cells(models=None, resolutions=None, runtimes=None, precisions=None, graphs=None, suite=None,
               threads: int = 1) -> tuple[list[Cell], dict, bool]:
    """Cells to measure, the suite's settings, and whether the runtime list was chosen explicitly.

    With a suite, ``models``/``resolutions``/``runtimes``/``precisions``/``graphs`` filter its cells. Without one,
    they define the cells (defaults: every segmentation model at its paper resolution, every runtime, fp32, logits).
    """
    from ..registry import get_spec, list_models, parse_resolution

    if suite is not None:
        s = suite if isinstance(suite, Suite) else load_suite(suite)
        cells = s.cells(threads)
        if models:
            wanted = {get_spec(m).name for m in models}
            cells = [c for c in cells if c.model in wanted]
        if resolutions:
            wanted_res = {parse_resolution(r) for r in resolutions}
            cells = [c for c in cells if c.resolution in wanted_res]
        for attr, values in (("runtime", runtimes), ("precision", precisions), ("graph", graphs)):
            if values:
                cells = [c for c in cells if getattr(c, attr) in set(values)]
        if not cells:
            raise SuiteError(f"no cell of suite '{s.name}' matches the --models/--res/--runtimes/--precision/--graph "
                             "filters; loosen them")
        return cells, s.settings, True  # a suite names its runtimes
    explicit = bool(runtimes)
    models = list(models or list_models(task="segmentation"))
    runtimes = list(runtimes or formats.default_runtimes())
    precisions = list(precisions or ["fp32"])
    graphs = list(graphs or ["logits"])
    cells = []
    for m in models:
        res = list(resolutions) if resolutions else [list(get_spec(m).default_resolution)]
        g = build_group([m], res, runtimes, precisions, graphs, where="command line")
        s = Suite(name="command line", groups=[g])
        cells += [c for c in s.cells(threads) if c not in cells]
    from .int8 import int8_cells

    return int8_cells(cells, explicit), {}, explicit


class ExportFailedError(MobilesegError):
    """The export stage could not produce the artifact a cell needs (recorded as that cell's error)."""


def existing_export(model, resolution, formats, precision, graph, out) -> dict:
    """``bench --no-export``'s export stage: the manifest already in ``out``, unchanged (no converter, no cache
    key: the artifacts were exported elsewhere); a missing folder is that cell's error."""
    man = _manifest.read(out)
    if man is None:
        raise ExportFailedError(f"--no-export: {out} holds no export (no readable manifest.json); export "
                                f"{model} at {resolution[0]}x{resolution[1]} ({precision}) there first")
    return man


def _ensure_export(cell: Cell, formats: list[str], export_root: Path, export_fn, cache: dict) -> tuple[Path, dict]:
    """The export folder of ``cell`` and its manifest, exported now through the export stage if needed.

    One call per (model, resolution, precision, graph) and run, asking for every format the run needs there plus
    the formats already exported in the folder (the export stage rewrites the manifest with the formats it is
    given, and reuses up-to-date artifacts from its own cache).
    """
    key = (cell.model, cell.resolution, cell.precision, cell.graph)
    folder = export_root / _manifest.export_dir_name(cell.model, cell.resolution, cell.precision, cell.graph)
    if key not in cache:
        if export_fn is None:
            from ..export import export_model as export_fn
        wanted = set(formats) | _manifest.ok_formats(_manifest.read(folder))
        result = export_fn(cell.model, list(cell.resolution), formats=sorted(wanted), precision=cell.precision,
                           graph=cell.graph, out=str(folder))
        cache[key] = result.manifest if hasattr(result, "manifest") else result
    man = cache[key]
    entry = _manifest.format_entry(man, cell.format)
    if not entry or not entry.get("files"):
        why = (entry or {}).get("error") or "no artifact was written"
        raise ExportFailedError(f"the {cell.format} export of {cell.model} at "
                                f"{cell.resolution[0]}x{cell.resolution[1]} failed: {why}")
    return folder, man


def _parity(out, folder: Path, cell: Cell, manifest: dict) -> dict:
    """The cell's parity against the export's reference, judged by the same rule as at export."""
    import numpy as np

    from ..parity import check

    ref_path = folder / "reference" / "output.npy"
    if not ref_path.exists():
        return {"checked": False, "why": "the export folder has no reference/output.npy"}
    return check(out, np.load(ref_path), cell.precision, manifest.get("graph") or cell.graph, runtime=cell.runtime)


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
    return {"export_dir": str(folder), "manifest": str(folder / _manifest.FILE),
            "sha256": (files[0].get("sha256") if files and isinstance(files[0], dict) else None),
            "files": [f.get("path") if isinstance(f, dict) else f for f in files],
            "weights": manifest.get("weights")}


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


def run_bench(models=None, resolutions=None, runtimes=None, precisions=None, graphs=None, suite=None,
              device: str = "local", threads: int = 1, warmup: int | None = None, repeats: int | None = None,
              min_time: float | None = None, cpu: int | None = None, resume: bool = False, out_dir=RUNS_DIR,
              results_file=None, export_root="export", target: Target | None = None, export_fn=None,
              progress: bool | Progress = True, cooldown_s: float | None = None, measure_reference: bool = True,
              target_options: dict | None = None, target_ci: float | None = None,
              max_time: float | None = None, profile: bool = False, sustained: float | None = None,
              sustained_minute_s: float | None = None) -> BenchRun:
    """Measure cells and append one :class:`LatencyRecord` per cell to the results store; return the new records.

    Args:
        models, resolutions, runtimes, precisions, graphs: the cells (or filters of ``suite``); see :func:`plan_cells`.
        suite: a suite file path (``bench/paper.toml``) or a :class:`Suite`.
        device: ``local``, ``adb``, ``adb:HOST:PORT`` or ``adb:SERIAL`` (ignored when ``target`` is given).
        threads: threads per runtime (1: one intra-op thread, no inter-op pool).
        warmup, repeats, min_time: untimed warm-up calls; timed calls, or seconds of timed calls (default 20 calls).
        cpu: the CPU to pin to on the host (default: the last one).
        resume: skip cells that already have a finished record in the results file.
        out_dir, results_file: where records go (default ``results/runs/<device>-t<threads>.jsonl``).
        export_root: the export stage's output folder (artifacts are reused when present).
        measure_reference: also time this core's single-thread SGEMM (stored in every record as ``sgemm``).
        target_ci, max_time: sample each cell until the 95% interval of its median is within ``target_ci`` percent
            (relative half-width, :mod:`mobileseg.bench.sampling`) or ``max_time`` seconds ran out; ``repeats`` is
            then the minimum count.
        sustained, sustained_minute_s: run each cell for this many minutes in one-minute chunks, with per-minute
            statistics, temperatures and frequencies (``sustained`` in the record; :mod:`mobileseg.bench.sustained`).
        profile: after each cell's samples, a per-op profile in its own pass (``profile`` in the record;
            :mod:`mobileseg.bench.profile`).
    """
    if repeats is not None and min_time is not None:
        raise MobilesegError("give either --repeats or --min-time, not both")
    if target_ci is not None and min_time is not None:
        raise MobilesegError("give --target-ci (with --max-time) or --min-time, not both")
    if target_ci is None and max_time is not None:
        raise MobilesegError("--max-time bounds --target-ci sampling: give --target-ci PCT too (or use --min-time)")
    from ..runtimes.base import check_threads

    threads = check_threads(threads)  # before any cell: one sentence, not an error record per cell
    cells, settings, explicit_runtimes = plan_cells(models, resolutions, runtimes, precisions, graphs, suite, threads)
    warmup = int(warmup if warmup is not None else settings.get("warmup", DEFAULT_WARMUP))
    sampling = None
    if target_ci is not None:  # adaptive: --repeats (if given) is the minimum count; a suite's counts are ignored
        from .sampling import SamplingRule

        if repeats is not None and int(repeats) < 1:
            raise MobilesegError(f"--repeats must be at least 1, not {repeats}")
        sampling = SamplingRule(repeats=repeats, target_ci=float(target_ci),
                                max_time=None if max_time is None else float(max_time))
    elif repeats is None and min_time is None:
        repeats, min_time = settings.get("repeats"), settings.get("min_time")
        if repeats is None and min_time is None:
            repeats = DEFAULT_REPEATS
    if repeats is not None and int(repeats) < 1:
        raise MobilesegError(f"--repeats must be at least 1, not {repeats}")
    if warmup < 0:
        raise MobilesegError(f"--warmup must be 0 or more, not {warmup}")
    if min_time is not None and float(min_time) <= 0:  # 0 would time the minimum count, not a duration
        raise MobilesegError(f"--min-time must be more than 0 seconds, not {min_time:g}: give the seconds of timed "
                             "runs per cell (or --repeats N for a count)")
    if sustained is not None:
        from .sustained import minute_seconds

        if not float(sustained) > 0:
            raise MobilesegError(f"--sustained takes a number of minutes above 0, not {sustained:g}")
        minute_seconds(sustained_minute_s)
    cooldown_s = float(cooldown_s if cooldown_s is not None else settings.get("cooldown_s", 0))
    if cooldown_s < 0:
        raise MobilesegError(f"--cooldown must be 0 or more seconds, not {cooldown_s:g}")

    own_target = target is None
    if own_target:
        target = open_own_target(device, target_options, cpu)
    run = BenchRun()
    run.skipped = []
    try:
        # Every runtime must be usable before anything is exported or timed; when the runtime list was not chosen,
        # runtimes that are not installed are left out with a note instead.
        usable, why_not = {}, {}
        for rt in sorted({c.runtime for c in cells}):
            try:
                target.check_runtime(rt)
                usable[rt] = True
            except MissingDependencyError as exc:
                if explicit_runtimes:
                    raise MissingDependencyError(f"runtime '{rt}' cannot run: {exc}; or leave it out with "
                                                 "--runtimes") from None
                usable[rt], why_not[rt] = False, str(exc)
        missing_rts = sorted(r for r, ok in usable.items() if not ok)
        cells = [c for c in cells if usable[c.runtime]]
        if not cells:
            raise MobilesegError("no runtime is installed for the requested cells: install one with "
                                 "pip install 'mobileseg[export]' -c constraints.txt")

        device_id = target.device_id()
        path = Path(results_file) if results_file else results_file_for(target, threads, out_dir)
        store = ResultStore(path)
        store.check_writable()  # a bad --out/--results-file fails now, not after the first measured cell
        run.path = path
        done = store.done_keys() if resume else set()
        prog = progress if isinstance(progress, Progress) else Progress(len(cells), enabled=bool(progress))
        for r in missing_rts:  # the target's reason: not installed here, or (a phone) it needs an official tool
            prog.note(f"runtime '{r}' is left out: {why_not[r]}")
        if not resume and (again := store.repeat_note(c.key(device_id) for c in cells)):
            prog.note(again)
        description = target.describe()
        from .env import describe_host

        host = describe_host()
        todo = [c for c in cells if c.key(device_id) not in done]
        if todo and measure_reference and target.kind == "local":
            from .overhead import measure_sgemm

            prog.note("measuring this core's single-thread SGEMM rate (reference for achieved GFLOP/s)")
            run.sgemm = measure_sgemm()
            prog.note(f"SGEMM {run.sgemm['n']}^3 fp32, 1 thread: {run.sgemm['gflop_s']:.1f} GFLOP/s "
                      f"({run.sgemm['best']})")
        formats_by_group: dict = {}
        for c in cells:
            formats_by_group.setdefault((c.model, c.resolution, c.precision, c.graph), set()).add(c.format)
        export_cache: dict = {}
        export_root = Path(export_root)
        last_model, reference_state = None, None
        for cell in cells:
            key = cell.key(device_id)
            if key in done:
                run.skipped.append(key)
                prog.skip(cell.label())
                continue
            if cooldown_s and last_model is not None and cell.model != last_model:
                target.cooldown(reference_state, cooldown_s)
            group = (cell.model, cell.resolution, cell.precision, cell.graph)
            if group not in export_cache:  # the export is not part of the cell's time (nor of the ETA)
                prog.exporting(_group_label(cell))
            try:
                export = _ensure_export(cell, sorted(formats_by_group[group]), export_root, export_fn, export_cache)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # recorded as this cell's error by _measure_cell
                export = exc
            prog.start(cell.label())
            rec = _measure_cell(cell, key, target, description, host, export, warmup, repeats, min_time, run.sgemm,
                                sampling, (sustained, sustained_minute_s) if sustained else None)
            if profile and rec.status != "error":
                rec.extra["profile"] = _profile(target, cell, export)
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
            left = len(cells) - len(run) - len(run.skipped)
            exc.args = (f"{exc}; {len(run) + len(run.skipped)} finished cell(s) are kept in {run.path}: rerun the "
                        f"same command with --resume to measure the {left} cell(s) left",)
        raise
    finally:
        if own_target:
            target.close()
    return run


def _group_label(cell: Cell) -> str:
    h, w = cell.resolution
    tags = [t for t in (cell.precision if cell.precision != "fp32" else "",
                        cell.graph if cell.graph != "logits" else "") if t]
    return f"{cell.model} {h}x{w}" + (f" ({', '.join(tags)})" if tags else "")


def _fmt_ms(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _summary(d: dict) -> str:
    """The progress line of a finished cell (latency from the results table view)."""
    from ..results.table import row

    if d["status"] == "error":
        return f"ERROR {d['error']}"
    r = row(d)
    par = (f"rel_l2 {r['rel_l2']:.1e}" if r["rel_l2"] is not None else
           f"argmax {r['argmax_agree']}" if r["argmax_agree"] is not None else "parity not checked")
    tag = "" if d["status"] == "ok" else " PARITY FAILED"
    if (d.get("parity") or {}).get("error"):  # e.g. output shape [1, 4, 64, 64] != reference shape [1, 5, 64, 64]
        par, tag = "PARITY FAILED", f" ({d['parity']['error']})"
    per_layer = (d.get("parity") or {}).get("per_layer") or {}
    if per_layer.get("sentence") or per_layer.get("error"):
        tag += f"; {per_layer.get('sentence') or per_layer.get('error')}"
    if (d.get("device_state") or {}).get("throttled"):
        tag += " THROTTLED (the CPU frequency dropped during the cell)"
    if r["latency_stat"] == "mean":  # a tool's own summary without a median (benchmark_model)
        return f"mean {_fmt_ms(r['mean_ms'])} ms (min {_fmt_ms(r['min_ms'])}, max {_fmt_ms(r['max_ms'])}, " \
               f"n={r['count']}, {d.get('harness')} summary), {par}{tag}"
    return (f"median {_fmt_ms(r['latency_ms'])} ms (p10 {_fmt_ms(r['p10_ms'])}, p90 {_fmt_ms(r['p90_ms'])}, "
            f"n={r['count']}), {par}{tag}")


STATS_KEYS = ("median", "p10", "p90", "mean", "stdev", "min", "max", "count")


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


def _measure_cell(cell, key, target, description, host, export, warmup, repeats, min_time,
                  sgemm, sampling=None, sustained=None) -> LatencyRecord:
    """Measure one cell whose export is ``export`` ((folder, manifest), or the exception the export raised)."""
    from .env import package_versions

    base = dict(id=key, model=cell.model, resolution=list(cell.resolution), format=cell.format, runtime=cell.runtime,
                precision=cell.precision, graph=cell.graph, threads=cell.threads, device=description,
                emulated=bool(getattr(target, "emulated", False)), warmup=warmup, host=host,
                timestamp=_now(), schema_version=SCHEMA_VERSION)
    extra = {"sgemm": sgemm} if sgemm else {}
    try:
        if isinstance(export, BaseException):
            raise export
        folder, manifest = export
        target.prepare(folder, cell.format)
        before = target.state()
        if sustained is not None:
            from .sustained import run_sustained

            cr, extra["sustained"] = run_sustained(target, cell, folder, manifest, warmup, *sustained)
        elif sampling is not None:
            cr = target.run_cell(cell, folder, manifest, warmup, repeats, min_time, sampling=sampling)
        else:
            cr = target.run_cell(cell, folder, manifest, warmup, repeats, min_time)
        after = target.state()
        stats, stats_source = _cell_stats(cr)
    except (KeyboardInterrupt, TargetLostError):
        raise
    except Exception as exc:  # one broken cell (export, load or run) must not stop a suite
        msg = str(exc) if isinstance(exc, MobilesegError) else f"{type(exc).__name__}: {exc}"
        gmacs, params = model_complexity(cell.model, cell.resolution)
        return LatencyRecord(**base, status="error", error=msg.splitlines()[0] if msg else type(exc).__name__,
                             versions=package_versions(), gflops=gmacs, params=params, extra=extra)
    if cr.output is None:  # timings-only harness (official benchmark binaries)
        parity = {"checked": False, "reason": cr.parity_note or f"the {cr.harness} harness returns no output"}
    else:
        parity = _parity(cr.output, folder, cell, manifest)
        if parity.get("ok") is False:  # where it diverged (mobileseg.numerics): a summary, never a crash
            from ..numerics.bench import diverging_layer

            parity["per_layer"] = diverging_layer(folder, cell, manifest, target)
    gmacs, params = _complexity_of(manifest, cell)
    versions = package_versions()
    versions.update({k: v for k, v in (manifest.get("versions") or {}).items() if k not in versions})
    extra["stats_source"] = stats_source
    extra.update(cell_extras(cr, repeats, min_time))
    if manifest.get("int8"):
        from .int8 import record_fields

        extra.update(record_fields(manifest, cell.format, cr.output, folder))
    return LatencyRecord(
        **base, runtime_version=cr.runtime_version, runtime_settings=cr.runtime_settings, affinity=list(cr.affinity),
        device_state={"before": before, "after": after,
                      "throttled": _throttled(before, after, description.get("pinned_cpu"), cr.affinity)},
        harness=cr.harness, stats_ms=stats, samples_ms=[round(v, 6) for v in cr.samples_ms],
        overhead_ms=cr.overhead_ms, parity=parity, gflops=gmacs, params=params, versions=versions,
        artifact=_artifact(folder, manifest, cell.format),
        status="ok" if parity.get("ok", True) or parity.get("checked") is False else "parity_failed",
        extra=extra)


def cell_extras(cr, repeats, min_time) -> dict:
    """The per-cell fields beside the timings: ``load_ms``, ``first_run_ms``, ``memory`` (with its definition) and
    ``sampling`` (the rule that stopped the loop), each only when the harness measured it."""
    out = {k: getattr(cr, k, None) for k in ("load_ms", "first_run_ms", "memory")}
    out["sampling"] = getattr(cr, "sampling", None) or {"rule": "repeats" if repeats is not None else "min-time",
                                                         "repeats": repeats, "min_time_s": min_time}
    return {k: v for k, v in out.items() if v is not None}


def _profile(target, cell, export) -> dict:
    """The cell's per-op profile (host cells; ``{"unavailable": why}`` where there is no profiler)."""
    if getattr(target, "kind", "") != "local":
        folder, manifest = export
        text = target.op_profile_text(cell, folder, manifest) if hasattr(target, "op_profile_text") else None
        if isinstance(text, dict):  # the device Python harness's per-op times
            from .profile import from_device

            return from_device(text)
        if text is not None:
            from .profile import parse_benchmark_model

            return parse_benchmark_model(text) or {"unavailable": "benchmark_model printed no op-profiling table"}
        return {"unavailable": "on a device, per-op profiles come from the device Python harness (onnxruntime, "
                               "ncnn) or benchmark_model (--tflite-benchmark); the native harness takes none"}
    import numpy as np

    from .profile import profile_local

    folder, manifest = export
    x = np.ascontiguousarray(np.load(Path(folder) / "reference" / "input.npy"), dtype=np.float32)
    try:
        return profile_local(cell.runtime, folder, (manifest.get("formats") or {}).get(cell.format), x,
                             threads=cell.threads)
    except Exception as exc:  # a profiler failure must not lose the measured cell
        return {"unavailable": f"the profiler failed: {type(exc).__name__}: {exc}"}
