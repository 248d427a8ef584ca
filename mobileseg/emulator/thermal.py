"""A thermal and frequency model for an emulated device, so that throttling can be tested (``--thermal-sim``).

A phone under sustained load heats up, and past a trip temperature its governor lowers the clock, so each inference
takes longer. The emulated device has no thermals of its own; with ``adbd --thermal-sim SPEC`` the daemon runs this
model beside its shell commands:

* load ``u`` (0..1): the CPU time its shell commands' process groups used over the last tick, per second;
* temperature of the CPU zones: ``dT/dt = rise * u - (T - T0) / tau`` (T0: the profile's idle value);
* frequency of every cpufreq policy: its maximum times ``r = max(floor, 1 - drop * (T - trip))`` above ``trip``;
* the slowdown a lower clock causes: the shell commands run in a CPU cgroup of their own (cgroup v1
  ``cpu.cfs_quota_us``, or v2 ``cpu.max``) whose quota is ``r`` of every 10 ms, so they run at ``r`` of their speed
  (a kernel bandwidth limit: exact, and blind to ptrace). Where no cgroup can be made, the busy process groups are
  stopped (SIGSTOP) for ``1 - r`` of every ``period`` instead; under proot's ptrace that is approximate.

The zones and policies live in a folder of this daemon only (bound over ``/sys/class/thermal`` and
``/sys/devices/system/cpu/cpufreq`` with proot ``-b``), so devices sharing one rootfs do not see each other's heat.
SPEC: ``rise=0.08,tau=300,trip=45,drop=0.05,floor=0.4,period=0.01`` (C/s at full load, s, C, 1/C, ratio, s; any
subset; ``default`` for all defaults). Records taken on an emulated device stay numerics only: this model exists
to test the sustained mode's detection, not to predict a phone.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from ..errors import MobilesegError

DEFAULTS = {"rise": 0.08, "tau": 300.0, "trip": 45.0, "drop": 0.05, "floor": 0.4, "period": 0.01}


def parse_spec(spec: str) -> dict:
    out = dict(DEFAULTS)
    for part in (spec or "").replace(";", ",").split(","):
        part = part.strip()
        if not part or part == "default":
            continue
        key, _, value = part.partition("=")
        if key not in DEFAULTS:
            raise MobilesegError(f"unknown thermal-sim setting '{key}': use {', '.join(DEFAULTS)}")
        try:
            out[key] = float(value)
        except ValueError:
            raise MobilesegError(f"thermal-sim {key} must be a number, not {value!r}") from None
    if out["tau"] <= 0 or out["period"] <= 0 or not 0 < out["floor"] <= 1:
        raise MobilesegError("thermal-sim needs tau > 0, period > 0 and 0 < floor <= 1")
    return out


class ThermalSim:
    def __init__(self, rootfs: Path, spec: str):
        self.p = parse_spec(spec)
        self.dir = Path(tempfile.mkdtemp(prefix="mobileseg-thermal-"))
        src_thermal = Path(rootfs) / "sys/class/thermal"
        src_freq = Path(rootfs) / "sys/devices/system/cpu/cpufreq"
        shutil.copytree(src_thermal, self.dir / "thermal", symlinks=True)
        shutil.copytree(src_freq, self.dir / "cpufreq", symlinks=True)
        self.zones = []  # (temp file, idle C) of the CPU zones
        for z in sorted((self.dir / "thermal").glob("thermal_zone*")):
            kind = (z / "type").read_text().strip().lower()
            if "cpu" in kind:
                self.zones.append((z / "temp", int((z / "temp").read_text()) / 1000.0))
        self.policies = []  # (folder, max kHz, available steps)
        for pol in sorted((self.dir / "cpufreq").glob("policy*")):
            fmax = int((pol / "cpuinfo_max_freq").read_text())
            steps = sorted(int(s) for s in (pol / "scaling_available_frequencies").read_text().split())
            self.policies.append((pol, fmax, steps))
        self.t0 = max((t for _, t in self.zones), default=40.0)
        self.temp = self.t0
        self.ratio = 1.0
        self.groups: set[int] = set()
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="thermal-sim", daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")
        self.cgroup = _make_cgroup()  # None: fall back to SIGSTOP/SIGCONT
        self._quota = None

    def preexec(self) -> None:
        """Run in each shell command's child before exec: join the throttling cgroup (inherited by its children)."""
        if self.cgroup is not None:
            try:
                (self.cgroup / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                pass

    def binds(self) -> list[tuple[str, str]]:
        return [
            (str(self.dir / "thermal"), "/sys/class/thermal"),
            (str(self.dir / "cpufreq"), "/sys/devices/system/cpu/cpufreq"),
        ]

    def track(self, pgid: int) -> None:
        self.groups.add(pgid)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._signal(signal.SIGCONT)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.cgroup is not None:
            _set_quota(self.cgroup, 1.0)
            try:
                self.cgroup.rmdir()
            except OSError:  # still has processes: the kernel frees it when they end (or it is reused by name)
                pass

    # -- the model ---------------------------------------------------------------------------------------------
    def _group_cpu_s(self) -> float:
        """CPU seconds used so far by every live process of the tracked groups (dead ones keep their last value)."""
        live = set()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) in self.groups:  # pgrp
                self._cpu[int(pid)] = (int(fields[11]) + int(fields[12])) / self._tick
                live.add(int(fields[2]))
        # remove only groups that ended (a group tracked meanwhile by the daemon's thread must stay)
        self.groups -= {g for g in list(self.groups) if g not in live and not _alive(g)}
        return sum(self._cpu.values())

    def step(self, u: float, dt: float) -> None:
        """Advance the temperature by ``dt`` seconds at load ``u`` and write zones and frequencies."""
        p = self.p
        self.temp += dt * (p["rise"] * u - (self.temp - self.t0) / p["tau"])
        self.ratio = 1.0 if self.temp <= p["trip"] else max(p["floor"], 1.0 - p["drop"] * (self.temp - p["trip"]))
        for path, idle in self.zones:
            _write(path, f"{int(1000 * (idle + self.temp - self.t0))}\n")
        for pol, fmax, steps in self.policies:
            want = fmax * self.ratio
            cur = max([s for s in steps if s <= want] or [steps[0]])
            for name in ("scaling_cur_freq", "cpuinfo_cur_freq"):
                _write(pol / name, f"{cur}\n")
        if self.cgroup is not None and self._quota != round(self.ratio, 3):
            self._quota = round(self.ratio, 3)
            _set_quota(self.cgroup, self.ratio)

    def _signal(self, sig) -> None:
        for g in list(self.groups):
            try:
                os.killpg(g, sig)
            except (ProcessLookupError, PermissionError):
                self.groups.discard(g)

    def _loop(self) -> None:
        last_t, last_cpu = time.monotonic(), self._group_cpu_s()
        period = self.p["period"]
        while not self._stop.is_set():
            if self.ratio < 1.0 and self.groups and self.cgroup is None:
                self._signal(signal.SIGSTOP)
                time.sleep((1.0 - self.ratio) * period)
                self._signal(signal.SIGCONT)
                time.sleep(self.ratio * period)
            else:
                time.sleep(period)
            now = time.monotonic()
            if now - last_t >= 0.1:  # the model itself ticks at 10 Hz
                cpu = self._group_cpu_s()
                self.step(min(1.0, max(0.0, (cpu - last_cpu) / (now - last_t))), now - last_t)
                last_t, last_cpu = now, cpu


CG_PERIOD_US = 10000


def _make_cgroup() -> Path | None:
    """A CPU cgroup for this daemon's shell commands (v1 cpu controller, else v2), or None where not allowed."""
    name = f"mobileseg-thermal-{os.getpid()}"
    for base, files in (
        (Path("/sys/fs/cgroup/cpu"), ("cpu.cfs_quota_us", "cpu.cfs_period_us")),
        (Path("/sys/fs/cgroup"), ("cpu.max",)),
    ):
        try:
            d = base / name
            d.mkdir(exist_ok=True)
            if all((d / f).exists() for f in files):
                _set_quota(d, 1.0)
                return d
            d.rmdir()
        except OSError:
            continue
    return None


def _set_quota(d: Path, ratio: float) -> None:
    quota = -1 if ratio >= 1.0 else max(1000, int(ratio * CG_PERIOD_US))
    try:
        if (d / "cpu.cfs_quota_us").exists():
            (d / "cpu.cfs_period_us").write_text(str(CG_PERIOD_US))
            (d / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (d / "cpu.max").write_text(f"{'max' if quota < 0 else quota} {CG_PERIOD_US}")
    except OSError:
        pass


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
