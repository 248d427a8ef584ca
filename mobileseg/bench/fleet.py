"""Several ADB devices at once (``--device adb:S1,S2`` / ``adb:all``): the same plan on each, in parallel.

One worker thread per device runs the bench loop (:func:`mobileseg.bench.runner.measure`) on its own target, with
the run's one plan and settings: that device's cells stay sequential and pinned to its own big core, and its records
go to its own results file (``<out>/<device id>-t<threads>.jsonl``). The host only waits on sockets while the
devices compute, so threads are enough; exports (host work, shared export folder) are done once, under the model
source's lock, whichever worker needs one first.

One :class:`SharedProgress` prints every worker's lines with the device's name and the overall count: the cells
each device can run (its runtimes are checked before any cell starts), not the plan times the devices. A device lost
mid-suite ends only its own worker (its finished cells are in its file); the others finish, and
:func:`run_on_devices` then raises :class:`DevicesLostError` naming the lost device(s) and saying that ``--resume``
completes them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TargetLostError
from .progress import Progress, _fmt_s
from .runner import BenchRun, measure, plan, results_file_for, runnable
from .settings import BenchSettings


class DevicesLostError(TargetLostError):
    """One or more devices were lost during a several-device run (the others finished)."""

    exit_code = 3


class SharedProgress:
    """The one progress display of a several-device run: a line per event, ``[done/total] <device>: ...``."""

    def __init__(self, total: int, stream=None, enabled: bool = True, clock=time.monotonic):
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.clock = clock
        self.lock = threading.Lock()
        self.views: list[DeviceProgress] = []
        self.t0 = clock()

    def done(self) -> int:
        return sum(v.done for v in self.views)

    def view(self, name: str, total: int) -> "DeviceProgress":
        v = DeviceProgress(self, name, total)
        self.views.append(v)
        return v

    def emit(self, text: str) -> None:
        if self.enabled:
            import sys

            with self.lock:
                print(text, file=self.stream if self.stream is not None else sys.stderr, flush=True)

    def elapsed(self) -> str:
        return _fmt_s(self.clock() - self.t0)


class DeviceProgress(Progress):
    """One device's share of a :class:`SharedProgress` (the interface the runner drives; ETA per device)."""

    def __init__(self, shared: SharedProgress, name: str, total: int):
        super().__init__(total, stream=shared.stream, enabled=shared.enabled, clock=shared.clock)
        self.shared = shared
        self.name = name

    def _prefix(self) -> str:
        width = len(str(self.shared.total))
        return f"[{self.shared.done():>{width}}/{self.shared.total}] {self.name}:"

    def _emit(self, text: str) -> None:
        self.shared.emit(text)

    def note(self, text: str) -> None:
        self._emit(f"{self._prefix()} {text}")

    def close(self) -> None:
        self._emit(f"{self._prefix()} finished its {self.total} cell(s) in {_fmt_s(self.clock() - self.t0)}")


@dataclass
class DeviceOutcome:
    """What one worker did: its records (``run``), or why it stopped (``lost`` / ``error``)."""

    name: str
    serial: str
    results: Path | None = None
    run: BenchRun | None = None
    lost: TargetLostError | None = None
    error: BaseException | None = None
    seconds: float = 0.0
    measured: int = field(default=0)

    @property
    def ok(self) -> bool:
        return self.lost is None and self.error is None

    def summary(self) -> str:
        where = f" -> {self.results}" if self.results else ""
        if self.lost is not None:
            return f"{self.name} ({self.serial}): LOST after {self.measured} cell(s) in {_fmt_s(self.seconds)}{where}"
        if self.error is not None:
            return f"{self.name} ({self.serial}): FAILED ({self.error}){where}"
        bad = sum(r["status"] != "ok" for r in self.run)
        tail = f", {bad} not ok" if bad else ""
        return (
            f"{self.name} ({self.serial}): {len(self.run)} cell(s) measured, {len(self.run.skipped)} skipped"
            f"{tail} in {_fmt_s(self.seconds)}{where}"
        )


def open_and_run(settings: BenchSettings, stream=None) -> list[DeviceOutcome]:
    """Open every device ``settings.device`` names and run the plan on each (the command's several-device path)."""
    import sys

    from ..device.selection import open_devices
    from .targets.adb import AdbTarget, official_tool_drivers

    official_tool_drivers(settings.tflite_benchmark, settings.ort_perf_test)  # a bad path fails before connecting
    devices, notes = open_devices(settings.device, transport=settings.adb_transport, servers=list(settings.adb_servers))
    for n in notes:
        print(f"mobileseg: {n}", file=sys.stderr)

    def target(dev):  # each device gets its own drivers (they remember what they pushed there)
        return AdbTarget.on_device(
            dev,
            cpu=settings.cpu,
            harness=settings.harness,
            tool_drivers=official_tool_drivers(settings.tflite_benchmark, settings.ort_perf_test),
        )

    print(f"mobileseg: {len(devices)} device(s) in parallel: {', '.join(d.serial for d in devices)}", file=sys.stderr)
    return run_on_devices(target, devices, settings, stream=stream)


def run_on_devices(
    targets_factory, devices: list, settings: BenchSettings | None = None, *, export_fn=None, stream=None, **options
) -> list[DeviceOutcome]:
    """Run the same plan on every device of ``devices`` in parallel; returns one :class:`DeviceOutcome` each.

    ``targets_factory(device) -> Target`` opens the bench target on one transport device (in that device's worker,
    so the probes run in parallel too). ``settings`` (or ``options``, :class:`BenchSettings`' fields) are the run's.
    Raises :class:`DevicesLostError` after every worker ended when a device was lost.
    """
    if settings is None:
        settings = BenchSettings.of(**options)
    settings.check_several_devices()
    p = plan(settings, export_fn)  # one plan: its sources (and their exports) are shared by the workers
    shared = SharedProgress(0, stream=stream, enabled=bool(settings.progress))
    outcomes = [
        DeviceOutcome(name=getattr(d, "serial", None) or f"device {i + 1}", serial=getattr(d, "serial", None) or "")
        for i, d in enumerate(devices)
    ]
    targets: dict = {}
    planned: dict = {}  # id(outcome) -> (pairs, runtimes left out) on that device

    def all_probed():  # one id, and so one results file, per device; the overall count of the cells that will run
        by_id: dict = {}
        for t in targets.values():
            by_id.setdefault(t.device_id(), []).append(t)
        for same in by_id.values():
            if len(same) > 1:
                for t in same:
                    t.distinguish()
        shared.total = sum(len(pairs) for pairs, _ in planned.values())

    probed = threading.Barrier(len(devices), action=all_probed)

    def work(dev, out: DeviceOutcome):
        t0 = time.monotonic()
        target = None
        try:
            try:
                target = targets[id(out)] = targets_factory(dev)
                planned[id(out)] = runnable(p, target)
            finally:
                probed.wait(timeout=600)  # hang guard; a failed probe still lets the others go on
            pairs, missing = planned[id(out)]
            out.name = target.device_id()
            out.results = results_file_for(target, p.settings.threads, settings.out_dir)
            out.run = measure(p, pairs, target, shared.view(out.name, len(pairs)), missing)
            out.measured = len(out.run)
        except TargetLostError as exc:
            out.lost = exc
            out.measured = _count(out.results)
            shared.emit(f"[{shared.done()}/{shared.total}] {out.name}: {exc}")
        except BaseException as exc:  # noqa: BLE001 - one device's failure must not stop the others
            out.error = exc
            shared.emit(f"[{shared.done()}/{shared.total}] {out.name}: {exc}")
        finally:
            out.seconds = time.monotonic() - t0
            if target is not None:
                target.close()
            else:
                _close(dev)

    workers = [
        threading.Thread(target=work, args=(d, o), name=f"bench-{o.serial}", daemon=True)
        for d, o in zip(devices, outcomes)
    ]
    for w in workers:
        w.start()
    for w in workers:
        while w.is_alive():
            w.join(0.5)
    if any(o.lost is not None for o in outcomes):
        raise _lost_error(outcomes)
    return outcomes


def _lost_error(outcomes: list[DeviceOutcome]) -> DevicesLostError:
    """One sentence naming the lost device(s), what of them is kept, and that ``--resume`` completes them."""
    lost = [o for o in outcomes if o.lost is not None]
    others = [o for o in outcomes if o.lost is None]
    names = ", ".join(f"{o.serial} ({o.name})" for o in lost)
    kept = "; ".join(f"{o.measured} finished cell(s) of {o.serial} are kept in {o.results}" for o in lost)
    rest = f"; the other device(s) finished: {', '.join(o.serial for o in others)}" if others else ""
    it = "it" if len(lost) == 1 else "them"
    err = DevicesLostError(
        f"{'device' if len(lost) == 1 else 'devices'} lost: {names}; {kept}: reconnect {it} and "
        f"rerun the same command with --resume to complete {it}{rest}"
    )
    err.outcomes = outcomes
    return err


def _count(path: Path | None) -> int:
    if path is None or not Path(path).exists():
        return 0
    from ..results.store import ResultStore

    return len(ResultStore(path).read())


def _close(dev) -> None:
    try:
        dev.close()
    except Exception:  # noqa: BLE001
        pass
