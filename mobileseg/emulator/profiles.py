"""What an emulated device looks like: the ``debian`` ARM Linux board and the ``android`` stock-Android phone.

A profile is data only; :mod:`.device_files` writes it into the rootfs, :mod:`.build` builds the rootfs it needs
and :mod:`.adbd` serves it.

- ``debian``: an arm64 Debian with Python and the runtimes' aarch64 wheels (the Python harness runs on it). Its CPU
  count equals the host's (``taskset`` is carried out by the host kernel): n-1 little cores and 1 big one.
- ``android``: what a stock phone offers to ``adb shell``: no Python, a POSIX ``/system/bin/sh`` with toybox-like
  applets (Debian's static arm64 busybox), ``getprop`` and a Snapdragon 865 (SM8250, the paper's device) CPU
  topology of 4 little + 3 mid + 1 prime core. Only the native harness can measure on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import MobilesegError

DEFAULT = "debian"
A55, A76, A77 = "0xd05", "0xd0b", "0xd0d"  # "CPU part" ids in /proc/cpuinfo


@dataclass(frozen=True)
class Cluster:
    """CPUs sharing one cpufreq policy."""

    count: int
    max_khz: int
    part: str
    min_khz: int = 300000


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    props: dict
    shell: str  # the shell `adb shell` runs
    path: str  # PATH of that shell
    python: bool  # whether the rootfs has python3 and the runtimes
    clusters: tuple | None = None  # None: sized to the host (n-1 little + 1 big)
    governor: str = "schedutil"
    thermal: tuple = field(default=())  # (type, millidegrees C) per zone, in zone order
    hardware: str = ""  # /proc/cpuinfo "Hardware"

    def topology(self, host_cpus: int) -> tuple:
        if self.clusters is not None:
            return self.clusters
        if host_cpus <= 1:
            return (Cluster(1, 2419200, A76),)
        return (Cluster(host_cpus - 1, 1804800, A55), Cluster(1, 2419200, A76))

    def cpu_count(self, host_cpus: int) -> int:
        return sum(c.count for c in self.topology(host_cpus))


_EMULATED = {"ro.kernel.qemu": "1", "ro.mobileseg.emulated": "1"}  # every record taken on it is marked emulated

PROFILES = {
    "debian": Profile(
        name="debian",
        summary="arm64 Debian with Python and the runtimes (ncnn, onnxruntime, LiteRT): the Python harness",
        props={
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
            **_EMULATED,
        },
        shell="/bin/sh",
        path="/system/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        python=True,
        thermal=(("cpu-1-0-usr", 41000), ("cpu-0-0-usr", 39500), ("battery", 30000)),
        hardware="qemu-aarch64 (mobileseg emulated ARM64)",
    ),
    "android": Profile(
        name="android",
        summary="stock-Android phone (SM8250, 4+3+1 cores), no Python, busybox /system/bin/sh: the native harness",
        props={
            "ro.product.model": "mobileseg emulated Android phone",
            "ro.product.name": "mobileseg_emu_phone",
            "ro.product.device": "emu_phone",
            "ro.product.manufacturer": "mobileseg",
            "ro.product.brand": "mobileseg",
            "ro.product.board": "kona",
            "ro.board.platform": "kona",
            "ro.hardware": "qcom",
            "ro.soc.manufacturer": "QTI",
            "ro.soc.model": "SM8250",
            "ro.product.cpu.abi": "arm64-v8a",
            "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
            "ro.build.version.release": "13",
            "ro.build.version.sdk": "33",
            "ro.build.fingerprint": "mobileseg/emu_phone/emu_phone:13/TQ3A/1:user/release-keys",
            "ro.debuggable": "0",
            "ro.secure": "1",
            "ro.adb.secure": "1",
            **_EMULATED,
        },
        shell="/system/bin/sh",
        path="/product/bin:/apex/com.android.runtime/bin:/system/bin:/system/xbin:/odm/bin:/vendor/bin:/vendor/xbin",
        python=False,
        clusters=(Cluster(4, 1804800, A55), Cluster(3, 2419200, A77, 710400), Cluster(1, 2841600, A77, 844800)),
        thermal=(
            ("aoss0-usr", 36800),
            ("cpu-0-0-usr", 38900),
            ("cpu-0-1-usr", 39100),
            ("cpu-1-0-usr", 41300),
            ("cpu-1-2-usr", 42100),
            ("gpuss-0-usr", 37500),
            ("xo-therm", 33000),
            ("battery", 30200),
        ),
        hardware="Qualcomm Technologies, Inc KONA",
    ),
}


def get(name: str | None) -> Profile:
    """The profile called ``name`` (default ``debian``); an unknown name is one sentence listing the known ones."""
    key = (name or DEFAULT).strip().lower()
    if key not in PROFILES:
        import difflib

        near = difflib.get_close_matches(key, PROFILES, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise MobilesegError(f"unknown emulator profile '{name}'{hint}: use one of {', '.join(sorted(PROFILES))}")
    return PROFILES[key]
