"""The files that make the arm64 rootfs look like a phone to the probe and to the runtimes.

- ``/proc/cpuinfo`` in ARM format: onnxruntime and LiteRT crash on import under qemu when they read the host's x86
  cpuinfo (DESIGN.md section 5). The features are those of a Cortex-A76 (asimdhp, asimddp), matching ``-cpu
  cortex-a76``.
- ``/sys/devices/system/cpu`` with cpufreq entries and ``/sys/class/thermal`` zones, so that the probe finds clusters,
  a big core, a governor and temperatures. The number of CPUs equals the host's: ``taskset`` is executed by the host
  kernel, which refuses CPUs it does not have. The last CPU is the "big" one.
- ``getprop`` (``/system/bin`` and ``/usr/bin``) reporting an emulated product, and ``/data/local/tmp``.

The values are fixed (an emulator has no thermals to speak of); every record taken on it is marked emulated.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

LITTLE_KHZ = 1804800
BIG_KHZ = 2419200
PROPS = {
    "ro.product.model": "mobileseg emulated ARM64",
    "ro.product.name": "mobileseg_emu_arm64",
    "ro.product.device": "emu_arm64",
    "ro.product.manufacturer": "mobileseg",
    "ro.product.brand": "mobileseg",
    "ro.board.platform": "qemu-cortex-a76",
    "ro.hardware": "qemu",
    "ro.soc.manufacturer": "QEMU",
    "ro.soc.model": "qemu-aarch64 cortex-a76 (user-mode emulation)",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a",
    "ro.build.version.release": "emulated",
    "ro.build.version.sdk": "0",
    "ro.kernel.qemu": "1",
    "ro.mobileseg.emulated": "1",
}
CPU_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"


def cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def cpuinfo_text(ncpu: int) -> str:
    blocks = []
    for i in range(ncpu):
        big = i == ncpu - 1 and ncpu > 1
        part = "0xd0b" if big or ncpu == 1 else "0xd05"  # Cortex-A76 / Cortex-A55
        blocks.append(f"processor\t: {i}\nBogoMIPS\t: 38.40\nFeatures\t: {CPU_FEATURES}\n"
                      f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: {part}\n"
                      f"CPU revision\t: 0\n")
    return "\n".join(blocks) + "\nHardware\t: qemu-aarch64 (mobileseg emulated ARM64)\n"


def getprop_script() -> str:
    lines = "\n".join(f"[{k}]: [{v}]" for k, v in sorted(PROPS.items()))
    return ("#!/bin/sh\n# getprop of the mobileseg emulated device (written by mobileseg.emulator.device_files)\n"
            f"props='{lines}'\n"
            'if [ $# -eq 0 ]; then printf "%s\\n" "$props"; exit 0; fi\n'
            'v=$(printf "%s\\n" "$props" | grep -F "[$1]: [" | head -n 1 | sed "s/^[^:]*: \\[//; s/\\]$//")\n'
            'if [ -z "$v" ] && [ $# -gt 1 ]; then v="$2"; fi\n'
            'printf "%s\\n" "$v"\n')


def fingerprint() -> str:
    """Changes when the files written here change (part of the build recipe hash)."""
    return hashlib.sha256((Path(__file__).read_text()).encode()).hexdigest()[:12]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_text(text)
    path.chmod(mode)


def install(rootfs: Path, ncpu: int | None = None) -> None:
    """Write the emulated device's files into ``rootfs`` (idempotent; run at build and again at start)."""
    rootfs = Path(rootfs)
    n = ncpu or cpu_count()
    _write(rootfs / "proc/cpuinfo", cpuinfo_text(n))
    for where in ("system/bin/getprop", "usr/bin/getprop"):
        _write(rootfs / where, getprop_script(), 0o755)
    cpu = rootfs / "sys/devices/system/cpu"
    span = f"0-{n - 1}" if n > 1 else "0"
    for name in ("possible", "present", "online"):
        _write(cpu / name, span + "\n")
    _write(cpu / "kernel_max", f"{max(n - 1, 0)}\n")
    for i in range(n):
        big = i == n - 1
        khz = BIG_KHZ if big else LITTLE_KHZ
        d = cpu / f"cpu{i}" / "cpufreq"
        for name, value in (("cpuinfo_max_freq", khz), ("cpuinfo_min_freq", 300000), ("scaling_max_freq", khz),
                            ("scaling_cur_freq", khz), ("cpuinfo_cur_freq", khz),
                            ("scaling_governor", "schedutil"), ("related_cpus", i)):
            _write(d / name, f"{value}\n")
        _write(cpu / f"cpu{i}" / "online", "1\n")
    thermal = rootfs / "sys/class/thermal"
    for z, (kind, milli) in enumerate((("cpu-1-0-usr", 41000), ("cpu-0-0-usr", 39500), ("battery", 30000))):
        _write(thermal / f"thermal_zone{z}" / "type", kind + "\n")
        _write(thermal / f"thermal_zone{z}" / "temp", f"{milli}\n")
    for d in ("data/local/tmp", "sdcard", "dev", "tmp"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
