"""The files that make an arm64 rootfs look like a phone (or an ARM board) to the probe and to the runtimes.

What is written comes from the :mod:`.profiles` entry:

- ``/proc/cpuinfo`` in ARM format: onnxruntime and LiteRT crash on import under qemu when they read the host's x86
  cpuinfo (docs/adb.md). The features are those of a Cortex-A76 (asimdhp, asimddp), matching ``-cpu cortex-a76``; the "CPU part"
  of each core is the profile's.
- ``/sys/devices/system/cpu`` laid out as on Android kernels: one ``cpufreq/policyN`` folder per cluster (N = its
  first CPU) with frequencies and a governor, and ``cpuK/cpufreq`` a symlink to its policy. ``/sys/class/thermal``
  zones carry the profile's type names.
- ``getprop`` (``/system/bin``; also ``/usr/bin`` when the rootfs has one) answering the profile's properties, and
  with no argument listing them all as ``[key]: [value]`` like Android's.
- ``/data/local/tmp``, writable, and a ``/proc/mounts`` naming ``/`` and ``/data`` (for ``df``).
- When the profile has more CPUs than the host (the android phone's 8 on a 2-CPU machine), a ``/system/bin/taskset``
  in front of busybox's: affinity is carried out by the host kernel, which refuses CPUs it does not have, so emulated
  CPU i runs on host CPU ``i % host CPUs``. Records therefore list host CPU ids as ``affinity`` on that profile.
  busybox's sh runs its own applets before searching PATH, so the daemon defines a ``taskset`` shell function
  (:func:`shell_prelude`) in front of every command; functions come before applets.

The values are fixed (an emulator has no thermals to speak of); every record taken on it is marked emulated.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from .profiles import Profile, get as get_profile

CPU_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
PROPS = get_profile("debian").props  # the default profile's properties (kept for callers of the old module)


def cpu_count() -> int:
    """CPUs this process may run on (the host's)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _cpus(profile: Profile, host_cpus: int):
    """(cpu id, cluster, policy id) for every emulated CPU, little cluster first."""
    out, first = [], 0
    for cl in profile.topology(host_cpus):
        out += [(first + k, cl, first) for k in range(cl.count)]
        first += cl.count
    return out


def cpuinfo_text(profile: Profile, host_cpus: int) -> str:
    blocks = [
        f"processor\t: {i}\nBogoMIPS\t: 38.40\nFeatures\t: {CPU_FEATURES}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: {cl.part}\nCPU revision\t: 0\n"
        for i, cl, _ in _cpus(profile, host_cpus)
    ]
    return "\n".join(blocks) + f"\nHardware\t: {profile.hardware}\n"


def getprop_script(profile: Profile) -> str:
    lines = "\n".join(f"[{k}]: [{v}]" for k, v in sorted(profile.props.items()))
    return (
        f"#!{profile.shell}\n# getprop of the mobileseg emulated device (written by mobileseg.emulator.device_files)\n"
        f"props='{lines}'\n"
        'if [ $# -eq 0 ]; then printf "%s\\n" "$props"; exit 0; fi\n'
        'v=$(printf "%s\\n" "$props" | grep -F "[$1]: [" | head -n 1 | sed "s/^[^:]*: \\[//; s/\\]$//")\n'
        'if [ -z "$v" ] && [ $# -gt 1 ]; then v="$2"; fi\n'
        'printf "%s\\n" "$v"\n'
    )


def taskset_script(profile: Profile, host_cpus: int) -> str:
    """busybox taskset with the emulated CPU ids folded onto the host's (MASK and -c LIST forms; -p PID queries)."""
    return f"""#!{profile.shell}
# taskset of the mobileseg emulated phone: its {profile.cpu_count(host_cpus)} CPUs exist in /sys only; the host kernel
# that carries out the affinity has {host_cpus}, so emulated CPU i runs on host CPU i % {host_cpus}.
n={host_cpus}
fold() {{
  case $1 in 0x*|0X*) m=$(( $1 ));; *) m=$(( 0x$1 ));; esac
  h=0; i=0
  while [ "$m" -ne 0 ]; do
    [ $(( m & 1 )) -eq 1 ] && h=$(( h | (1 << (i % n)) ))
    m=$(( m >> 1 )); i=$(( i + 1 ))
  done
  printf '%x' "$h"
}}
list_mask() {{
  m=0
  for part in $(echo "$1" | tr ',' ' '); do
    lo=${{part%-*}}; hi=${{part#*-}}
    while [ "$lo" -le "$hi" ]; do m=$(( m | (1 << lo) )); lo=$(( lo + 1 )); done
  done
  printf '%x' "$m"
}}
opts=; list=0; pid=0
while [ $# -gt 0 ]; do
  case $1 in
    --) shift; break;;
    -*[!acp]*) break;;
    -*) case $1 in *c*) list=1;; esac; case $1 in *p*) pid=1; opts="$opts -p";; esac
        case $1 in *a*) opts="$opts -a";; esac; shift;;
    *) break;;
  esac
done
if [ $pid -eq 1 ] && [ $# -eq 1 ]; then exec /system/bin/busybox taskset $opts "$@"; fi
[ $# -ge 2 ] || exec /system/bin/busybox taskset
mask=$1; shift
[ $list -eq 1 ] && mask=$(list_mask "$mask")
exec /system/bin/busybox taskset $opts "$(fold "$mask")" "$@"
"""


def shell_prelude(profile: Profile, host_cpus: int | None = None) -> str:
    """Shell text the daemon puts before each command: routes ``taskset`` to the folding script when there is one."""
    if profile.cpu_count(host_cpus or cpu_count()) <= (host_cpus or cpu_count()):
        return ""
    return 'taskset() { /system/bin/taskset "$@"; }\n'


def fingerprint() -> str:
    """Changes when the files written here or the profiles change (part of the build recipe hash)."""
    from . import profiles

    text = Path(__file__).read_text() + Path(profiles.__file__).read_text()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    path.write_text(text)
    path.chmod(mode)


def _symlink(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.symlink_to(target)


def _steps(cl) -> list[int]:
    """A plausible frequency table: five steps from the minimum to the maximum."""
    return sorted({cl.min_khz + (cl.max_khz - cl.min_khz) * k // 4 for k in range(5)})


def install(rootfs: Path, profile: Profile | str | None = None, ncpu: int | None = None) -> None:
    """Write the emulated device's files into ``rootfs`` (idempotent; run at build and again at start)."""
    rootfs = Path(rootfs)
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    host = ncpu or cpu_count()
    cpus = _cpus(prof, host)
    n = len(cpus)
    _write(rootfs / "proc/cpuinfo", cpuinfo_text(prof, host))
    # /proc is the rootfs' own (the host's would show x86); df needs a mount table to find /data's file system
    _write(rootfs / "proc/mounts", "/dev/root / ext4 rw,relatime 0 0\n/dev/block/dm-0 /data ext4 rw,relatime 0 0\n")
    getprops = ["system/bin/getprop"] + (["usr/bin/getprop"] if (rootfs / "usr/bin").is_dir() else [])
    for where in getprops:
        _write(rootfs / where, getprop_script(prof), 0o755)
    if n > host:
        _write(rootfs / "system/bin/taskset", taskset_script(prof, host), 0o755)
        _write(rootfs / "system/etc/mkshrc", shell_prelude(prof, host))  # $ENV of interactive shells
    cpu = rootfs / "sys/devices/system/cpu"
    span = f"0-{n - 1}" if n > 1 else "0"
    for name in ("possible", "present", "online"):
        _write(cpu / name, span + "\n")
    _write(cpu / "kernel_max", f"{max(n - 1, 0)}\n")
    policies = {}
    for i, cl, pol in cpus:
        policies.setdefault(pol, (cl, []))[1].append(i)
    for pol, (cl, members) in policies.items():
        d = cpu / "cpufreq" / f"policy{pol}"
        shutil.rmtree(d, ignore_errors=True)
        ids = " ".join(map(str, members))
        for name, value in (
            ("affected_cpus", ids),
            ("related_cpus", ids),
            ("cpuinfo_max_freq", cl.max_khz),
            ("cpuinfo_min_freq", cl.min_khz),
            ("cpuinfo_cur_freq", cl.max_khz),
            ("scaling_max_freq", cl.max_khz),
            ("scaling_min_freq", cl.min_khz),
            ("scaling_cur_freq", cl.max_khz),
            ("scaling_governor", prof.governor),
            ("scaling_available_governors", f"{prof.governor} performance powersave"),
            ("scaling_available_frequencies", " ".join(map(str, _steps(cl)))),
            ("scaling_driver", "qcom-cpufreq-hw" if prof.name == "android" else "cpufreq-dt"),
        ):
            _write(d / name, f"{value}\n")
    for i, _cl, pol in cpus:
        _symlink(cpu / f"cpu{i}" / "cpufreq", f"../cpufreq/policy{pol}")
        _write(cpu / f"cpu{i}" / "online", "1\n")
    for stale in cpu.glob("cpu[0-9]*"):  # CPUs of an earlier install with a larger topology
        if stale.name[3:].isdigit() and int(stale.name[3:]) >= n:
            shutil.rmtree(stale)
    thermal = rootfs / "sys/class/thermal"
    shutil.rmtree(thermal, ignore_errors=True)
    for z, (kind, milli) in enumerate(prof.thermal):
        _write(thermal / f"thermal_zone{z}" / "type", kind + "\n")
        _write(thermal / f"thermal_zone{z}" / "temp", f"{milli}\n")
    for d in ("data/local/tmp", "sdcard", "dev"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    (rootfs / "data/local/tmp").chmod(0o1777)
    if prof.python:  # a Debian userland expects a /tmp
        (rootfs / "tmp").mkdir(exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)
