"""The one table view of measurement records: a flat row per record, used by every reader.

``mobileseg results`` (table and CSV), the report, the bench command's summary and the runner's progress line all
read latency, rates and parity through :func:`row` / :func:`latency`, so a rule holds for all of them at once:

* latency: the median of the samples; for an official tool that printed only a summary without a median
  (``stats_source`` "tool-summary", e.g. TFLite's benchmark_model) the tool's mean stands in, and
  ``latency_stat`` says "mean";
* rate: MACs at that resolution over that latency (GMAC/s), and its share of the core's SGEMM rate when measured;
* numerics only (:func:`numerics_only`): timings of an emulated device or a software Vulkan driver are no device's
  speed; the report shows their parity and never puts them on a latency axis;
* GPU cells of the local host (:func:`gpu_label`): the device column adds the Vulkan GPU, labelled a desktop GPU, and
  has no share of the CPU core's SGEMM rate.
"""

from __future__ import annotations

COLUMNS = [
    "id",
    "model",
    "height",
    "width",
    "resolution",
    "format",
    "runtime",
    "runtime_version",
    "precision",
    "graph",
    "threads",
    "affinity",
    "device",
    "device_kind",
    "device_serial",
    "device_model",
    "device_soc",
    "device_cpu",
    "emulated",
    "numerics_only",
    "harness",
    "warmup",
    "latency_ms",
    "latency_stat",
    "median_ms",
    "p10_ms",
    "p90_ms",
    "mean_ms",
    "stdev_ms",
    "min_ms",
    "max_ms",
    "count",
    "stats_source",
    "overhead_ms",
    "gmacs",
    "params",
    "params_m",
    "gmac_per_s",
    "sgemm_gflop_s",
    "share_of_sgemm",
    "parity_checked",
    "parity_ok",
    "max_abs",
    "rel_l2",
    "argmax_agree",
    "status",
    "error",
    "cpu_model",
    "timestamp",
    "schema_version",
    "file",
    "median_ci_low_ms",
    "median_ci_high_ms",
    "ci_halfwidth_pct",
    "load_ms",
    "first_run_ms",
    "peak_rss_growth_mb",
    "peak_rss_mb",
    "pss_mb",
]

FLOAT_COLUMNS = [
    "latency_ms",
    "median_ms",
    "p10_ms",
    "p90_ms",
    "mean_ms",
    "stdev_ms",
    "min_ms",
    "max_ms",
    "overhead_ms",
    "gmacs",
    "params_m",
    "gmac_per_s",
    "sgemm_gflop_s",
    "share_of_sgemm",
    "max_abs",
    "rel_l2",
    "argmax_agree",
    "median_ci_low_ms",
    "median_ci_high_ms",
    "ci_halfwidth_pct",
    "load_ms",
    "first_run_ms",
    "peak_rss_growth_mb",
    "peak_rss_mb",
    "pss_mb",
]


def latency(stats: dict | None) -> tuple[float | None, str | None]:
    """``(milliseconds, "median" | "mean")`` of a record's ``stats_ms``; ``(None, None)`` when it has neither."""
    stats = stats or {}
    if stats.get("median") is not None:
        return stats["median"], "median"
    if stats.get("mean") is not None:
        return stats["mean"], "mean"
    return None, None


def device_label(dev: dict | None) -> str:
    """A short human name for a record's ``device``: phone model (or SoC) for ADB devices, the host's name locally."""
    dev = dev or {}
    if dev.get("kind", "local") == "local":
        name = dev.get("model") or "host"
    else:
        name = dev.get("model") or dev.get("soc") or dev.get("serial") or "adb"
    if dev.get("emulated"):
        name += " (emulated)"
    return str(name)


def gpu_label(rec: dict) -> str | None:
    """``"NVIDIA H200 (desktop GPU)"`` for a Vulkan cell on a hardware GPU of the local host, so that its timings
    are never read as the host CPU's nor as a phone's GPU; None otherwise (CPU cells, software Vulkan, ADB devices,
    whose label already names the phone)."""
    st = rec.get("runtime_settings") or {}
    if (
        not st.get("vulkan")
        or st.get("vulkan_software")
        or not st.get("vulkan_device")
        or (rec.get("device") or {}).get("kind", "local") != "local"
    ):
        return None
    return f"{st['vulkan_device']} (desktop GPU)"


def numerics_only(rec: dict) -> bool:
    """Whether a record's timings say nothing about a device's speed: taken on an emulated device (qemu), or by a
    software Vulkan driver (lavapipe, SwiftShader: ``runtime_settings.vulkan_software``). Its numbers still count."""
    dev = rec.get("device") or {}
    return bool(
        rec.get("emulated", dev.get("emulated", False)) or (rec.get("runtime_settings") or {}).get("vulkan_software")
    )


def row(rec: dict) -> dict:
    """One flat row (:data:`COLUMNS`) of a record dict as stored."""
    s = rec.get("stats_ms") or {}
    p = rec.get("parity") or {}
    dev = rec.get("device") or {}
    res = rec.get("resolution")
    h, w = (list(res) + [None, None])[:2] if isinstance(res, (list, tuple)) else (None, None)
    lat, stat = latency(s)
    gmacs = rec.get("gflops")
    rate = gmacs / (lat / 1e3) if (lat and gmacs) else None
    sgemm = rec.get("sgemm") or {}
    params = rec.get("params")
    gpu = gpu_label(rec)
    label = device_label(dev) + (f" / {gpu}" if gpu else "")
    rid = rec.get("id") or "|".join(
        str(x)
        for x in (
            label,
            rec.get("model"),
            f"{h}x{w}",
            rec.get("format"),
            rec.get("runtime"),
            rec.get("precision"),
            rec.get("graph"),
            rec.get("threads"),
        )
    )
    checked = p.get("checked", True) is not False
    return {
        "id": rid,
        "model": rec.get("model"),
        "height": h,
        "width": w,
        "resolution": f"{h}x{w}",
        "format": rec.get("format"),
        "runtime": rec.get("runtime"),
        "runtime_version": rec.get("runtime_version") or "",
        "precision": rec.get("precision") or "fp32",
        "graph": rec.get("graph") or "logits",
        "threads": rec.get("threads"),
        "affinity": " ".join(str(c) for c in rec.get("affinity") or []),
        "device": label,
        "device_kind": dev.get("kind", "local"),
        "device_serial": dev.get("serial") or "",
        "device_model": dev.get("model") or "",
        "device_soc": dev.get("soc") or "",
        "device_cpu": dev.get("cpu") or "",
        "emulated": bool(rec.get("emulated", dev.get("emulated", False))),
        "numerics_only": numerics_only(rec),
        "harness": rec.get("harness") or "",
        "warmup": rec.get("warmup"),
        "latency_ms": lat,
        "latency_stat": stat,
        "median_ms": s.get("median"),
        "p10_ms": s.get("p10"),
        "p90_ms": s.get("p90"),
        "mean_ms": s.get("mean"),
        "stdev_ms": s.get("stdev"),
        "min_ms": s.get("min"),
        "max_ms": s.get("max"),
        "count": s.get("count"),
        "stats_source": rec.get("stats_source") or ("samples" if rec.get("samples_ms") else None),
        "overhead_ms": rec.get("overhead_ms"),
        "gmacs": gmacs,
        "params": params,
        "params_m": params / 1e6 if isinstance(params, (int, float)) else None,
        "gmac_per_s": rate,
        "sgemm_gflop_s": sgemm.get("gflop_s"),
        # the CPU core's SGEMM rate says nothing of a desktop GPU's cell
        "share_of_sgemm": rate * 1e9 / sgemm["macs_per_s"] if (rate and sgemm.get("macs_per_s") and not gpu) else None,
        "parity_checked": checked,
        "parity_ok": p.get("ok") if checked else None,
        "max_abs": p.get("max_abs"),
        "rel_l2": p.get("rel_l2"),
        "argmax_agree": p.get("argmax_agree"),
        "status": rec.get("status", "ok"),
        "error": rec.get("error") or "",
        "cpu_model": (rec.get("host") or {}).get("cpu_model"),
        "timestamp": str(rec.get("timestamp") or ""),
        "schema_version": rec.get("schema_version"),
        "file": rec.get("_file"),
        **_cell_figures(rec, s),
    }


def _cell_figures(rec: dict, s: dict) -> dict:
    """The median's 95% interval (and its relative half-width in percent), load and first-run time, peak memory."""
    mem = rec.get("memory") or {}
    if "median_ci_low" not in s and len(rec.get("samples_ms") or []) >= 6:  # records written before the interval
        from .stats import median_ci

        s = {**s, **median_ci(rec["samples_ms"])}
    hw = s.get("median_ci_halfwidth_rel")
    return {
        "median_ci_low_ms": s.get("median_ci_low"),
        "median_ci_high_ms": s.get("median_ci_high"),
        "ci_halfwidth_pct": None if hw is None else 100 * hw,
        "load_ms": rec.get("load_ms"),
        "first_run_ms": rec.get("first_run_ms"),
        "peak_rss_growth_mb": mem.get("peak_rss_growth_mb"),
        "peak_rss_mb": mem.get("peak_rss_mb"),
        "pss_mb": mem.get("pss_mb"),
    }


def frame(records):
    """A pandas DataFrame of :func:`row` for each record (pandas: the ``report`` extra)."""
    from ..errors import require

    pd = require("pandas", "report", "tables of results")
    df = pd.DataFrame([row(r) for r in records], columns=COLUMNS)
    # missing figures are NaN, not None, so arithmetic and plots treat them alike
    df[FLOAT_COLUMNS] = df[FLOAT_COLUMNS].astype(float)
    return df


def latency_text(r: dict) -> str:
    """A row's latency for a table: ``12.34``, or ``47.70 (mean)`` for a tool summary without a median."""
    lat = r.get("latency_ms")
    if lat is None or lat != lat:  # None or NaN
        return ""
    return f"{lat:.2f}" + (" (mean)" if r.get("latency_stat") == "mean" else "")
