"""Description of the host a measurement ran on: CPU model, cores, frequency, kernel, Python and package versions."""

from __future__ import annotations

import os
import platform
import re
from functools import lru_cache
from pathlib import Path

# Distribution names whose versions go into every record (absent ones are simply left out).
_PACKAGES = {
    "mobileseg": "mobileseg",
    "numpy": "numpy",
    "torch": "torch",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "ncnn": "ncnn",
    "pnnx": "pnnx",
    "ai-edge-litert": "ai_edge_litert",
    "litert-torch": "litert_torch",
    "tflite-runtime": "tflite_runtime",
    "onnxsim": "onnxsim",
    "pandas": "pandas",
}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.M)
        if m:
            return m.group(1).strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_slug(model: str | None = None) -> str:
    """A short file-name-safe name of the CPU, e.g. ``amd-epyc`` or ``intel-xeon-platinum-8375c``."""
    text = (model or cpu_model()).lower()
    text = re.sub(r"\(r\)|\(tm\)|cpu|processor|@.*$|\d+-core", " ", text)
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return slug[:40].rstrip("-") or "cpu"


def short_id(*parts) -> str:
    """Six hex digits of a hash of ``parts``: a stable tag that tells two machines with the same name apart."""
    import hashlib

    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:6]


def machine_id() -> str | None:
    """The OS's machine id (systemd / D-Bus), which differs between machines and stays across reboots."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        v = _read(path)
        if v:
            return v
    return None


def host_device_id() -> str:
    """Name of this host in cell keys and result files: ``host-<full CPU model>-<short id>``.

    The CPU model alone is not enough (two EPYC servers would share one results file); the short id hashes the
    machine id with the CPU model and core count, so it is stable on one machine and differs between two.
    """
    model = cpu_model()
    return f"host-{cpu_slug(model)}-{short_id(machine_id() or '', model, os.cpu_count())}"


def cpu_freq_mhz(cpu: int | None = None) -> dict:
    """Current/max frequency of ``cpu`` (MHz) from cpufreq, else the cpuinfo 'cpu MHz' figure; {} if unreadable."""
    cpu = 0 if cpu is None else cpu
    base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
    out = {}
    for name, key in (("scaling_cur_freq", "cur"), ("cpuinfo_max_freq", "max"), ("cpuinfo_min_freq", "min")):
        v = _read(f"{base}/{name}")
        if v and v.isdigit():
            out[key] = int(v) / 1000.0
    gov = _read(f"{base}/scaling_governor")
    if gov:
        out["governor"] = gov
    if "cur" not in out:
        mhz = re.findall(r"^cpu MHz\s*:\s*([\d.]+)$", _read("/proc/cpuinfo") or "", re.M)
        if mhz:
            out["cur"] = float(mhz[min(cpu, len(mhz) - 1)])
            out["source"] = "/proc/cpuinfo"
    return out


def package_versions() -> dict:
    from importlib import metadata

    import sys

    versions = {"python": platform.python_version()}
    for dist in _PACKAGES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            mod = sys.modules.get(_PACKAGES[dist])
            if mod is not None and getattr(mod, "__version__", None):
                versions[dist] = str(mod.__version__)
    return versions


@lru_cache(maxsize=1)
def describe_host() -> dict:
    """``record["host"]``: what machine ran the harness (the device itself for local runs)."""
    freq = cpu_freq_mhz()
    flags = re.search(r"^flags\s*:\s*(.+)$", _read("/proc/cpuinfo") or "", re.M)
    isa = sorted(
        f
        for f in (flags.group(1).split() if flags else [])
        if f in {"avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "neon", "asimd"}
    )
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "freq_mhz": freq.get("cur"),
        "freq_max_mhz": freq.get("max"),
        "governor": freq.get("governor"),
        "isa": isa,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "os": platform.system(),
        "python": platform.python_version(),
        "hostname_hash": _host_hash(),
    }


def _host_hash() -> str:
    # A short stable id to tell machines apart in merged results without publishing the host name.
    import hashlib

    return hashlib.sha256(platform.node().encode()).hexdigest()[:8]
