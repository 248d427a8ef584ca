"""What a device is and what state it is in, from one shell round trip each.

``probe(dev)``: model, SoC (named as users know it, with the raw id), board, ABI, Android release (getprop), CPUs grouped into clusters by
``cpuinfo_max_freq`` (little/mid/big/prime), the core pinned to and why, the big-core mask, governor and current frequencies, thermal zones, free storage under
/data/local/tmp, whether Python (and which runtimes) are available. On ARM Linux without getprop the same facts come
from /proc and /sys (``/proc/device-tree/model``, ``uname -m``, ``/etc/os-release``).

``state(dev)``: temperatures and current frequencies now (before/after each cell).
"""

from __future__ import annotations

import re

from .. import formats
from .soc_names import soc_name

WORKDIR = "/data/local/tmp/mobileseg"

_STATE_SCRIPT = r"""
echo @freqs
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  f=$(cat $c/cpufreq/scaling_cur_freq 2>/dev/null) && echo "${c##*/cpu} $f"
done
echo @thermal
for z in /sys/class/thermal/thermal_zone*; do
  t=$(cat $z/temp 2>/dev/null) && echo "${z##*/}|$(cat $z/type 2>/dev/null)|$t"
done
echo @end
"""

_PROBE_SCRIPT = (
    r"""
echo @getprop
getprop 2>/dev/null
echo @uname
uname -m; uname -r
echo @cpus
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  echo "${c##*/cpu} $(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null || echo -) $(cat $c/cpufreq/scaling_governor 2>/dev/null || echo -)"
done
echo @cpuinfo
grep -E '^(Hardware|CPU part|model name|processor|Features)' /proc/cpuinfo 2>/dev/null
echo @dtmodel
cat /proc/device-tree/model 2>/dev/null | tr -d '\0'; echo
echo @osrelease
grep -E '^PRETTY_NAME=' /etc/os-release 2>/dev/null
echo @df
mkdir -p WORKDIR 2>/dev/null; df -k WORKDIR 2>/dev/null | tail -n 1
echo @python
for p in python3 python; do
  if command -v $p >/dev/null 2>&1; then
    $p -c 'import sys, importlib.util as u; print(sys.executable, sys.version.split()[0], *[m for m in (DEVICE_MODULES) if u.find_spec(m)])' 2>/dev/null && break
  fi
done
echo @tools
for t in taskset sha256sum toybox; do command -v $t >/dev/null 2>&1 && echo $t; done
""".replace("DEVICE_MODULES", ", ".join(f'"{m}"' for m in ("numpy",) + formats.device_modules()))
    + _STATE_SCRIPT
)
# (double quotes: the module list sits inside the single-quoted python3 -c '...' above)

CPU_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0d": "Cortex-A77",
    "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2",
    "0xd4d": "Cortex-A715",
    "0xd4e": "Cortex-X3",
    "0xd80": "Cortex-A520",
    "0xd81": "Cortex-A720",
    "0xd82": "Cortex-X4",
}


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("@") and re.fullmatch(r"@\w+", line.strip()):
            cur = line.strip()[1:]
            out.setdefault(cur, [])
        elif cur is not None:
            out[cur].append(line.rstrip())
    return out


def parse_state(sections: dict) -> dict:
    freqs, temps = {}, {}
    for line in sections.get("freqs", []):
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            freqs[parts[0]] = int(parts[1])
    for line in sections.get("thermal", []):
        parts = line.split("|")
        if len(parts) == 3 and re.fullmatch(r"-?\d+", parts[2].strip() or "x"):
            v = int(parts[2])
            temps[f"{parts[0]}:{parts[1]}"] = v / 1000.0 if abs(v) > 200 else float(v)  # millidegrees or degrees
    return {"temps_c": temps, "freqs_khz": freqs}


def cpu_zone(temps: dict) -> str | None:
    """The thermal zone that best stands for the CPU (first whose type names a CPU, else the first)."""
    for name in temps:
        kind = name.split(":", 1)[-1].lower()
        if any(k in kind for k in ("cpu", "soc", "tsens", "cluster", "big", "x86_pkg")):
            return name
    return next(iter(temps), None)


def _clusters(by_khz: dict[int, list[int]]):
    """(clusters, big cores, pinned CPU, why) from CPUs grouped by cpuinfo_max_freq (0: unknown).

    Clusters are named little < mid < big by frequency; a fastest cluster of one CPU is the ``prime`` core
    (Snapdragon 865: 4 little, 3 mid, 1 prime). Single-thread cells pin to the prime core, else to the last CPU of
    the fastest cluster; multi-thread cells use the big cores: every CPU outside the slowest cluster.
    """
    ordered = sorted(by_khz.items())
    out = []
    for i, (khz, cpus) in enumerate(ordered):
        if len(ordered) == 1:
            kind = "all"
        elif i == 0:
            kind = "little"
        elif i < len(ordered) - 1:
            kind = "mid"
        else:
            kind = "prime" if len(cpus) == 1 else "big"
        out.append({"cpus": cpus, "max_khz": khz or None, "kind": kind})
    if not out:
        return [], [], 0, "no CPU list: CPU 0"
    big = [c for cl in out[1:] for c in cl["cpus"]] or out[0]["cpus"]
    top = out[-1]
    if not top["max_khz"]:
        return out, big, top["cpus"][-1], "no cpuinfo_max_freq: the last CPU"
    if len(top["cpus"]) == 1 and len(out) > 1:
        why = f"the prime core: the only CPU of the fastest cluster ({top['max_khz'] / 1e6:.2f} GHz)"
    else:
        why = f"the last CPU of the fastest cluster ({top['max_khz'] / 1e6:.2f} GHz)"
    return out, big, top["cpus"][-1], why


def parse_probe(text: str) -> dict:
    s = _sections(text)
    props = {}
    for line in s.get("getprop", []):
        m = re.match(r"\[(.+?)\]: \[(.*)\]$", line)
        if m:
            props[m.group(1)] = m.group(2)
    uname = s.get("uname", []) + ["", ""]
    cpus = []
    governors = {}
    for line in s.get("cpus", []):
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            cpu = int(parts[0])
            cpus.append((cpu, int(parts[1]) if parts[1].isdigit() else None))
            governors[cpu] = None if parts[2] == "-" else parts[2]
    cpus.sort()
    clusters: dict[int, list[int]] = {}
    for cpu, khz in cpus:
        clusters.setdefault(khz or 0, []).append(cpu)
    cluster_list, big, big_cpu, pin_reason = _clusters(clusters)
    cpuinfo = s.get("cpuinfo", [])
    hardware = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("Hardware")), None)
    model_name = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("model name")), None)
    parts = [l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("CPU part")]
    features = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("Features")), "")
    cores_desc = sorted({CPU_PARTS.get(p, p) for p in parts})
    dt_model = " ".join(s.get("dtmodel", [])).strip() or None
    os_release = next((l.split("=", 1)[1].strip('"') for l in s.get("osrelease", []) if "=" in l), None)
    free = None
    df = " ".join(s.get("df", [])).split()
    if len(df) >= 4 and df[3].isdigit():
        free = int(df[3]) * 1024
    py = " ".join(s.get("python", [])).split()
    python = {"path": py[0], "version": py[1], "modules": py[2:]} if len(py) >= 2 else None
    abi = props.get("ro.product.cpu.abi") or {"aarch64": "arm64-v8a", "armv7l": "armeabi-v7a"}.get(uname[0], uname[0])
    emulated = props.get("ro.mobileseg.emulated") == "1" or props.get("ro.kernel.qemu") == "1"
    st = parse_state(s)
    soc_id = props.get("ro.soc.model") or props.get("ro.board.platform") or hardware or dt_model
    desc = {
        "kind": "adb",
        "model": props.get("ro.product.model") or dt_model or hardware or "unknown ARM device",
        "manufacturer": props.get("ro.product.manufacturer"),
        "serialno": props.get("ro.serialno") or props.get("ro.boot.serialno"),
        # as users know it (SM8250 -> Snapdragon 865); the id as reported stays in soc_id
        "soc": soc_name(props.get("ro.soc.model"), props.get("ro.board.platform"), hardware) or soc_id,
        "soc_id": soc_id,
        "soc_manufacturer": props.get("ro.soc.manufacturer"),
        "board": props.get("ro.product.board") or props.get("ro.board.platform") or dt_model,
        "abi": abi,
        "android_release": props.get("ro.build.version.release"),
        "android_sdk": props.get("ro.build.version.sdk"),
        "os": (f"Android {props['ro.build.version.release']}" if props.get("ro.build.version.release") else os_release)
        or f"Linux {uname[1]}",
        "kernel": uname[1] or None,
        "cpu": ", ".join(cores_desc) or model_name or hardware,
        "cpu_features": features.split(),
        "cores": len(cpus) or None,
        "clusters": cluster_list,
        "big_core_mask": hex(sum(1 << c for c in big)) if big else None,
        "pinned_cpu": big_cpu,
        "pin_mask": hex(1 << big_cpu),
        "pinned_reason": pin_reason,
        "governor": governors.get(big_cpu),
        "governors": {str(k): v for k, v in governors.items()},
        "freqs_khz": st["freqs_khz"],
        "thermal_zones": st["temps_c"],
        "storage_free_bytes": free,
        "python": python,
        "tools": s.get("tools", []),
        "getprop": bool(props),
        "emulated": emulated,
    }
    return desc


def probe(dev, timeout: float = 120.0) -> dict:
    """Describe the device (record["device"]); one shell round trip."""
    rc, out = dev.shell(_PROBE_SCRIPT.replace("WORKDIR", WORKDIR), timeout)
    desc = parse_probe(out)
    desc["serial"] = getattr(dev, "serial", None)
    return desc


def state(dev, timeout: float = 60.0) -> dict:
    """Temperatures (C) and current frequencies (kHz) now."""
    _rc, out = dev.shell(_STATE_SCRIPT, timeout)
    return parse_state(_sections(out))
