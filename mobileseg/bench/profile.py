"""``--profile``: a per-op profile of one cell in one schema, whatever the runtime.

Schema (the record's ``profile``)::

    {"source": "onnxruntime-profiler" | "ncnn-layer-extract" | "benchmark_model-op-profiling", "runs": N,
     "total_ms": sum of the ops' medians, "ops": [{"name", "type", "module", "median_ms", "share"}, ...]}

``median_ms`` is the op's median time per inference over the ``runs`` profiled inferences; ``share`` that median
over ``total_ms``; ``module`` the PyTorch module path the op came from where its name says so (ONNX node names from
the torch exporter are module scopes, ``/backbone/tpm/stem/stem.0/c/Conv`` -> ``backbone.tpm.stem.stem.0.c``; ncnn
layer names from pnnx are not, so None there). The profile is taken in its own pass after the timed samples, since
a profiler slows every call: the cell's latency never comes from it.

The host's profilers are methods of the runtime adapters (``op_profile``, :mod:`mobileseg.runtimes`), which return
raw times as the device's ``profile_ops.py`` does; :func:`from_device` reads both.

* ONNX Runtime: the session's own profiler (``enable_profiling``), its ``Node`` events' ``dur`` per run.
* ncnn (Python): the ncnn wheel is built without per-layer benchmarking (NCNN_BENCHMARK), so each layer is timed by
  extracting its output blobs in order from one extractor kept out of light mode: blobs already computed are reused,
  so each extract computes exactly the layers not yet run. The cost of one extract call itself (timed on a blob
  already computed) is subtracted from each layer and recorded (``extract_overhead_ms``). Layer by layer, ncnn
  keeps every blob and cannot fuse its memory reuse, so the layers add up to more than one whole inference
  (``whole_inference_ms``, timed beside it; TopFormer-T at 64 px on the project host: 2.0 ms against 0.79 ms):
  read the shares, not the sum.
* LiteRT: ``benchmark_model --enable_op_profiling=true`` prints its operator-wise table (:func:`parse_benchmark_model`).
"""

from __future__ import annotations

import re

DEFAULT_RUNS = 10


def module_of(name: str) -> str | None:
    """The module path in a torch-exported ONNX node name (``/a/b.0/c/Conv`` -> ``a.b.0.c``), else None."""
    if not name or not name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p]
    return ".".join(parts[:-1]) or None


def summarize_ops(times: dict, types: dict, source: str, runs: int, modules: dict | None = None) -> dict:
    """The profile schema from per-op lists of per-run milliseconds (``times[name] = [ms, ...]``)."""
    import statistics

    ops = []
    for name, ms in times.items():
        ops.append(
            {
                "name": name,
                "type": types.get(name),
                "module": (modules or {}).get(name, module_of(name)),
                "median_ms": statistics.median(ms) if ms else 0.0,
            }
        )
    total = sum(o["median_ms"] for o in ops)
    for o in ops:
        o["share"] = o["median_ms"] / total if total else 0.0
        o["median_ms"] = round(o["median_ms"], 6)
        o["share"] = round(o["share"], 6)
    ops.sort(key=lambda o: -o["median_ms"])
    return {"source": source, "runs": int(runs), "total_ms": round(total, 6), "ops": ops}


def parse_onnxruntime(events, runs: int) -> dict:
    """ONNX Runtime's profile JSON (a list of trace events) -> the schema; the first ``model_run`` is dropped."""
    runs_at = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    keep_from = runs_at[-runs] if len(runs_at) >= runs else (runs_at[0] if runs_at else 0)
    times, types = {}, {}
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time") or e.get("ts", 0) < keep_from:
            continue
        name = e["name"][: -len("_kernel_time")]
        times.setdefault(name, []).append(e.get("dur", 0) / 1000.0)
        types[name] = (e.get("args") or {}).get("op_name")
    return summarize_ops(times, types, "onnxruntime-profiler", runs)


_BM_ROW = re.compile(
    r"^\s*(?P<type>[A-Z_0-9]+|TfLite\w+|[\w:]+)\s+(?P<start>[\d.]+)\s+(?P<first>[\d.]+)\s+"
    r"(?P<avg>[\d.]+)\s+(?P<pct>[\d.]+)%\s+(?P<cdf>[\d.]+)%\s+(?P<mem>[\d.]+)\s+(?P<times>\d+)\s+"
    r"\[(?P<name>.*)\]"
)


def parse_benchmark_model(text: str) -> dict | None:
    """The "Operator-wise Profiling Info for Regular Benchmark Runs" table of ``benchmark_model
    --enable_op_profiling=true`` (its "Run Order" section) -> the schema; None when the output has no such table.
    benchmark_model prints each op's average, not its median: ``median_ms`` then holds that average (``stat``
    says so)."""
    m = re.search(r"Operator-wise Profiling Info for Regular Benchmark Runs:(.*?)(?:={5,}\s*Top by|\Z)", text, re.S)
    if not m:
        return None
    times, types = {}, {}
    for line in m.group(1).splitlines():
        r = _BM_ROW.match(line)
        if r:
            name = r.group("name").strip() or f"{r.group('type')}@{r.group('start')}"
            times[name] = [float(r.group("avg"))]
            types[name] = r.group("type")
    if not times:
        return None
    runs = re.search(r"count=(\d+)", text)
    out = summarize_ops(times, types, "benchmark_model-op-profiling", int(runs.group(1)) if runs else 1)
    out["stat"] = "mean (benchmark_model prints averages)"
    return out


def profile_local(runtime: str, export_dir, fmt_entry: dict, x, runs: int = DEFAULT_RUNS, threads: int = 1) -> dict:
    """The per-op profile of one host cell (its adapter's ``op_profile``), or ``{"unavailable": why}`` for a runtime
    without a profiler here."""
    from ..runtimes import get_runtime
    from ..runtimes.base import CapabilityError

    try:
        raw = get_runtime(runtime).op_profile(export_dir, fmt_entry, x, runs, threads)
    except CapabilityError as exc:
        return {"unavailable": str(exc)}
    return from_device(raw)


def from_device(raw: dict) -> dict:
    """The schema from raw per-op times: ``device_scripts/profile_ops.py``'s output on a device, a runtime adapter's
    ``op_profile`` on the host (:class:`mobileseg.runtimes.base.Runtime`); one reader for both."""
    runs = int(raw.get("runs") or 1)
    if raw.get("source") == "onnxruntime-profiler":
        return parse_onnxruntime(raw.get("events") or [], runs)
    cost = float(raw.get("extract_overhead_ms") or 0.0)
    times = {k: [max(0.0, v - cost) for v in ms] for k, ms in (raw.get("times") or {}).items()}
    out = summarize_ops(times, raw.get("types") or {}, "ncnn-layer-extract", runs)
    out["extract_overhead_ms"] = round(cost, 6)  # subtracted from every layer
    if raw.get("whole_inference_ms") is not None:  # the host's: the sum of layers exceeds it
        out["whole_inference_ms"] = round(float(raw["whole_inference_ms"]), 6)
    return out


def read_device_profile(parser: str, raw) -> dict:
    """The schema from a device driver's ``op_profile`` pass: ``(parser, raw)`` (see
    :class:`mobileseg.device.harness_driver.HarnessDriver`)."""
    if parser == "profile_ops":
        return from_device(raw)
    return parse_benchmark_model(raw) or {"unavailable": "benchmark_model printed no op-profiling table"}
