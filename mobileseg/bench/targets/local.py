"""The host as a bench target: runtime adapters run in this process, pinned to one CPU.

Pinning: ``os.sched_setaffinity`` on Linux applies to one thread, so every thread already running in the process
(torch, BLAS and runtime pools started before the run) is pinned too, via ``/proc/self/task``; threads created later
inherit the pin from their creator. The affinity actually in force after each cell is what the record keeps.
"""

from __future__ import annotations

import glob
import os
import platform
import time
from pathlib import Path

from ... import manifest as _manifest
from .. import env
from ..overhead import measure_overhead, timed_cell
from . import CellRun, Target, TargetError


def _tasks() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def _set_affinity_all(cpus) -> None:
    for tid in _tasks():
        try:
            os.sched_setaffinity(tid, cpus)
        except (ProcessLookupError, PermissionError):  # thread ended meanwhile / not ours to move
            pass


def _affinity_all() -> list[int]:
    cpus: set[int] = set()
    for tid in _tasks():
        try:
            cpus |= os.sched_getaffinity(tid)
        except (ProcessLookupError, PermissionError):
            pass
    return sorted(cpus)


def _cpu_list(cpus) -> str:
    return ", ".join(str(c) for c in sorted(cpus))


class LocalTarget(Target):
    """This machine. ``cpu``: the CPU to pin to (default: the last one this process may use); ``pin=False`` leaves
    the affinity alone (for platforms without ``sched_setaffinity``)."""

    kind = "local"
    emulated = False

    def __init__(self, cpu: int | None = None, pin: bool = True, overhead_repeats: int = 2000, **_ignored) -> None:
        self.pin = pin and hasattr(os, "sched_setaffinity")
        self.overhead_repeats = overhead_repeats
        self._saved = None
        if self.pin:
            allowed = sorted(os.sched_getaffinity(0))
            if cpu is None:
                cpu = allowed[-1]
            try:
                cpu = int(cpu)
            except (TypeError, ValueError):
                raise TargetError(f"--cpu must be a CPU index such as {allowed[-1]}, not {cpu!r}") from None
            if cpu not in allowed:
                exists = cpu >= 0 and os.path.exists(f"/sys/devices/system/cpu/cpu{cpu}")
                why = "is not available to this process" if exists else "does not exist on this host"
                raise TargetError(f"CPU {cpu} {why}; pass --cpu with one of: {_cpu_list(allowed)}")
            self._saved = {tid: os.sched_getaffinity(tid) for tid in _tasks()}
            _set_affinity_all({cpu})
        elif cpu is not None:
            raise TargetError("pinning to a CPU needs os.sched_setaffinity (Linux); drop --cpu on this platform")
        self.cpu = cpu
        self._description = None

    # -- identity and state ------------------------------------------------------------------------------------
    def describe(self) -> dict:
        if self._description is None:
            host = env.describe_host()
            freq = env.cpu_freq_mhz(self.cpu)
            self._description = {
                "kind": "local",
                "serial": None,
                "model": env.host_device_id(),
                "soc": None,
                "abi": platform.machine(),
                "cpu": host["cpu_model"],
                "cores": host["cores"],
                "clusters": None,
                "big_core_mask": None,
                "governor": freq.get("governor"),
                "freqs_khz": self.state()["freqs_khz"],
                "emulated": False,
                "pinned_cpu": self.cpu,
                "os": f"{host['os']} {host['kernel']}",
            }
        return self._description

    def device_id(self) -> str:
        return env.host_device_id()

    def state(self) -> dict:
        temps = {}
        for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
            try:
                kind = Path(zone, "type").read_text().strip()
                temps[f"{Path(zone).name}:{kind}"] = int(Path(zone, "temp").read_text().strip()) / 1000.0
            except (OSError, ValueError):
                continue
        freqs = {}
        for cpu in range(os.cpu_count() or 1):
            f = env.cpu_freq_mhz(cpu).get("cur")
            if f is not None:
                freqs[str(cpu)] = int(f * 1000)
        return {"temps_c": temps, "freqs_khz": freqs}

    def check_runtime(self, runtime: str) -> None:
        from ...runtimes import get_runtime

        get_runtime(runtime).check()  # MissingDependencyError naming the extra (or the driver) when absent

    # -- measuring ---------------------------------------------------------------------------------------------
    def run_cell(self, cell, export_dir, manifest, warmup, repeats, min_time, sampling=None) -> CellRun:
        import numpy as np

        from ...runtimes import get_runtime
        from ..memory import PeakMemory

        rt = get_runtime(cell.runtime)
        fmt_entry = (manifest.get("formats") or {}).get(cell.format)
        if self.pin:
            _set_affinity_all({self.cpu})
        x = np.ascontiguousarray(np.load(Path(export_dir) / _manifest.REFERENCE_INPUT), dtype=np.float32)
        mem = PeakMemory()
        mem.start()
        t0 = time.perf_counter_ns()
        sess = rt.load(export_dir, fmt_entry, threads=cell.threads, precision=cell.precision)
        load_ms = (time.perf_counter_ns() - t0) / 1e6
        mem.loaded()
        try:
            if self.pin:  # a runtime may have started (or re-pinned) worker threads while loading
                _set_affinity_all({self.cpu})
            samples, out, first_ms = timed_cell(sess.run, x, warmup, repeats, min_time, sampling)
            out = np.array(out, copy=True)
            memory = mem.result()
            settings = dict(getattr(sess, "settings", {}) or {})
            affinity = _affinity_all() if self.pin else sorted(getattr(os, "sched_getaffinity", lambda _: [])(0))
        finally:
            sess.close()
        overhead = measure_overhead(self.overhead_repeats)
        return CellRun(
            samples_ms=samples,
            output=out,
            runtime_version=rt.version(),
            runtime_settings=settings,
            affinity=affinity,
            harness="python-inproc",
            overhead_ms=overhead,
            load_ms=round(load_ms, 3),
            first_run_ms=round(first_ms, 3),
            memory=memory,
            sampling=sampling.record() if sampling is not None else None,
        )

    def reference_rate(self, note=None) -> dict:
        from ..overhead import measure_sgemm

        if note:
            note("measuring this core's single-thread SGEMM rate (reference for achieved GFLOP/s)")
        rate = measure_sgemm()
        if note:
            note(f"SGEMM {rate['n']}^3 fp32, 1 thread: {rate['gflop_s']:.1f} GFLOP/s ({rate['best']})")
        return rate

    def profile(self, cell, export_dir, manifest) -> dict:
        """ONNX Runtime's profiler or ncnn layer by layer, in this process (:func:`~mobileseg.bench.profile.profile_local`)."""
        import numpy as np

        from ..profile import profile_local

        x = np.ascontiguousarray(np.load(Path(export_dir) / _manifest.REFERENCE_INPUT), dtype=np.float32)
        try:
            return profile_local(
                cell.runtime, export_dir, (manifest.get("formats") or {}).get(cell.format), x, threads=cell.threads
            )
        except Exception as exc:  # a profiler failure must not lose the measured cell
            return {"unavailable": f"the profiler failed: {type(exc).__name__}: {exc}"}

    def cooldown(self, reference_state, timeout_s) -> dict:
        """Wait (up to ``timeout_s``) until the hottest thermal zone is within 2 C of ``reference_state``'s."""
        ref = max((reference_state or {}).get("temps_c", {}).values(), default=None)
        if ref is None:
            return {
                "limit_s": float(timeout_s),
                "waited_s": 0.0,
                "reached": None,
                "why": "this host reports no thermal zone",
            }
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        now = ref
        while time.monotonic() < deadline:
            now = max(self.state()["temps_c"].values(), default=None)
            if now is None or now <= ref + 2.0:
                break
            time.sleep(1.0)
        return {
            "limit_s": float(timeout_s),
            "waited_s": round(time.monotonic() - t0, 3),
            "start_c": ref,
            "end_c": now,
            "reached": now is None or now <= ref + 2.0,
        }

    def close(self) -> None:
        if self._saved:
            for tid, cpus in self._saved.items():
                try:
                    os.sched_setaffinity(tid, cpus)
                except (ProcessLookupError, PermissionError, OSError):
                    pass
            # Threads created while pinned inherit the pin: give them the main thread's original set.
            main = self._saved.get(os.getpid()) or next(iter(self._saved.values()))
            for tid in _tasks():
                if tid not in self._saved:
                    try:
                        os.sched_setaffinity(tid, main)
                    except (ProcessLookupError, PermissionError, OSError):
                        pass
            self._saved = None
