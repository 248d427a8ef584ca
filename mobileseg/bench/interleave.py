"""``mobileseg compare --run A B``: two export folders timed alternately on one pinned host core.

Both sessions are loaded and warmed up first; then the calls alternate A B, B A, A B ... (each pair in the other
order than the last, so a drift or a periodic disturbance costs A and B alike, and neither always runs right after
the other's cache footprint). Each side becomes one record (contract 4, ``harness: python-inproc``,
``interleaved_with`` naming the other export), which :mod:`mobileseg.results.compare` then compares. Parity is not
checked here (``mobileseg bench`` does that); timings only.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import formats
from .. import manifest as _manifest
from ..errors import MobilesegError
from ..results.paths import writable_folder
from ..results.record import SCHEMA_VERSION, LatencyRecord, cell_key
from ..results.stats import median_ci, summarize


def _pick_runtime(mans, runtime: str | None) -> str:
    if runtime:
        key = formats.runtime_key(runtime)
        if key is None:
            import difflib

            close = difflib.get_close_matches(runtime, list(formats.RUNTIMES), n=1)
            raise MobilesegError(
                f"unknown runtime '{runtime}'"
                + (f": did you mean {close[0]}?" if close else f": use one of {', '.join(formats.RUNTIMES)}")
            )
        return key
    common = set.intersection(*(_manifest.ok_formats(m) for m in mans))
    for rt in ("onnxruntime", "ncnn", "litert", "torch"):
        if formats.runtime_format(rt) in common:
            return rt
    raise MobilesegError(
        "the two exports share no artifact format: export both with the same --formats, or pass --runtime"
    )


def run_interleaved(
    export_a,
    export_b,
    runtime: str | None = None,
    repeats: int = 40,
    warmup: int = 5,
    cpu: int | None = None,
    out_dir=None,
) -> tuple[dict, dict]:
    """Time two export folders alternately; returns their two records (dicts)."""
    import numpy as np

    from ..runtimes import get_runtime
    from .env import describe_host, host_device_id, package_versions
    from .targets.local import LocalTarget

    if int(repeats) < 2:
        raise MobilesegError(f"--repeats must be at least 2 for a comparison, not {repeats}")
    if int(warmup) < 0:
        raise MobilesegError(f"--warmup must be 0 or more, not {warmup}")
    loaded = []
    for p in (export_a, export_b):
        if not Path(p).is_dir():
            raise MobilesegError(
                f"with --run, A and B are export folders, and '{p}' is not a folder: export it with "
                "`mobileseg export` (or drop --run to compare two results files)"
            )
        loaded.append(_manifest.load(p))
    rt_name = _pick_runtime([m for _, m in loaded], runtime)
    fmt = formats.runtime_format(rt_name)
    for folder, man in loaded:
        if fmt not in _manifest.ok_formats(man):
            raise MobilesegError(
                f"the export {folder} has no {fmt} artifact for {rt_name}: export it with --formats {fmt}"
            )
    rt = get_runtime(rt_name)
    rt.check()
    target = LocalTarget(cpu=cpu)
    sessions, inputs = [], []
    try:
        for folder, man in loaded:
            sessions.append(
                rt.load(folder, _manifest.format_entry(man, fmt), threads=1, precision=man.get("precision") or "fp32")
            )
            inputs.append(np.ascontiguousarray(np.load(Path(folder) / _manifest.REFERENCE_INPUT), dtype=np.float32))
        from .targets.local import _set_affinity_all

        _set_affinity_all({target.cpu})  # runtime threads started while loading
        for _ in range(int(warmup)):
            for s, x in zip(sessions, inputs):
                s.run(x)
        samples = [[], []]
        clock = time.perf_counter_ns
        for i in range(int(repeats)):
            for side in (0, 1) if i % 2 == 0 else (1, 0):
                t0 = clock()
                sessions[side].run(inputs[side])
                samples[side].append((clock() - t0) / 1e6)
        state = target.state()
        affinity = [target.cpu]
        settings = [dict(getattr(s, "settings", {}) or {}) for s in sessions]
    finally:
        for s in sessions:
            s.close()
        target.close()
    device_id = host_device_id()
    recs = []
    for side, (folder, man) in enumerate(loaded):
        res = man.get("resolution") or [0, 0]
        model = man.get("model") or Path(folder).name
        stats = {**summarize(samples[side]), **median_ci(samples[side])}
        rec = LatencyRecord(
            id=cell_key(
                device_id, model, res, fmt, rt_name, man.get("precision") or "fp32", man.get("graph") or "logits", 1
            ),
            model=model,
            resolution=res,
            format=fmt,
            runtime=rt_name,
            precision=man.get("precision") or "fp32",
            graph=man.get("graph") or "logits",
            threads=1,
            runtime_version=rt.version(),
            runtime_settings=settings[side],
            affinity=affinity,
            device=target.describe(),
            device_state={"before": state, "after": state},
            harness="python-inproc",
            warmup=int(warmup),
            stats_ms=stats,
            samples_ms=[round(v, 6) for v in samples[side]],
            parity={"checked": False, "reason": "compare --run times only (mobileseg bench checks parity)"},
            versions=package_versions(),
            host=describe_host(),
            artifact={"export_dir": str(folder)},
            timestamp=_now(),
            schema_version=SCHEMA_VERSION,
            extra={
                "stats_source": "samples",
                "interleaved_with": str(loaded[1 - side][0]),
                "sampling": {"rule": "interleaved", "repeats": int(repeats), "order": "ABBA"},
            },
        )
        recs.append(rec)
    if out_dir is not None:
        from ..results.store import ResultStore

        writable_folder(Path(out_dir), "the comparison records", "choose a writable folder with --out")
        store = ResultStore(Path(out_dir) / "compare-run.jsonl")
        for r in recs:
            store.append(r)
    return recs[0].to_dict(), recs[1].to_dict()


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
