"""Several devices at once with fake targets: per-device files, one progress display, a lost device stops only its
own worker, ``--resume`` completes it. The same on two emulated devices through the adb server is in
test_adb_server_emulator.py."""

from __future__ import annotations

import io
import threading

import pytest
from test_bench_runner import FakeTarget, fake_export

from mobileseg.bench.fleet import DevicesLostError, SharedProgress, run_on_devices
from mobileseg.results.store import ResultStore


class NamedTarget(FakeTarget):
    def __init__(self, name, **kw):
        super().__init__(**kw)
        self.name = name

    def describe(self):
        return {"kind": "fake", "serial": self.name, "model": "fake", "emulated": False}

    def device_id(self):
        return f"fake-{self.name}"

    def close(self):
        self.closed = True


class Dev:
    """What selection.open_devices returns, as far as the fleet looks at it."""

    def __init__(self, serial):
        self.serial = serial
        self.closed = False

    def close(self):
        self.closed = True


def fleet(tmp_path, devices, factory, stream=None, calls=None, **kw):
    kw.setdefault("models", ["topformer-t"])
    kw.setdefault("resolutions", [64])
    kw.setdefault("runtimes", ["onnxruntime", "ncnn", "litert"])
    return run_on_devices(
        factory,
        devices,
        threads=1,
        out_dir=tmp_path / "results",
        progress=stream is not None,
        stream=stream,
        export_fn=fake_export(calls if calls is not None else []),
        export_root=tmp_path / "export",
        warmup=0,
        repeats=3,
        measure_reference=False,
        **kw,
    )


def test_every_device_measures_the_plan_into_its_own_file(tmp_path):
    calls, targets = [], {}
    stream = io.StringIO()

    def factory(dev):
        targets[dev.serial] = NamedTarget(dev.serial)
        return targets[dev.serial]

    outcomes = fleet(tmp_path, [Dev("A"), Dev("B")], factory, stream=stream, calls=calls)
    assert [o.ok for o in outcomes] == [True, True]
    for serial in ("A", "B"):
        recs = ResultStore(tmp_path / "results" / f"fake-{serial}-t1.jsonl").read()
        assert [r["runtime"] for r in recs] == ["onnxruntime", "ncnn", "litert"]
        assert {r["device"]["serial"] for r in recs} == {serial}
        assert targets[serial].closed
    assert len(calls) == 1  # one export for both devices
    lines = stream.getvalue().splitlines()
    assert sum("fake-A: running" in ln for ln in lines) == 3 and sum("fake-B: running" in ln for ln in lines) == 3
    assert any(ln.startswith("[6/6] ") for ln in lines)  # one count over both devices
    assert "3 cell(s) measured, 0 skipped" in outcomes[0].summary()


def test_the_workers_run_at_the_same_time(tmp_path):
    """Each device's first cell waits until the other device has started its own: only parallel workers pass."""
    both = threading.Barrier(2, timeout=60)  # hang guard

    class Waits(NamedTarget):
        def run_cell(self, *a, **k):
            if not self.ran:
                both.wait()
            return super().run_cell(*a, **k)

    outcomes = fleet(tmp_path, [Dev("A"), Dev("B")], lambda d: Waits(d.serial))
    assert all(o.ok for o in outcomes)


def test_a_lost_device_stops_only_its_worker_and_resume_completes_it(tmp_path):
    devices = [Dev("A"), Dev("B")]
    with pytest.raises(DevicesLostError) as info:
        fleet(tmp_path, devices, lambda d: NamedTarget(d.serial, lose_at=1 if d.serial == "B" else None))
    err = info.value
    msg = str(err)
    assert msg.startswith("device lost: B (fake-B)") and "--resume" in msg and "the other device(s) finished: A" in msg
    assert "1 finished cell(s) of B are kept in" in msg and err.exit_code == 3
    a, b = err.outcomes
    assert a.ok and len(a.run) == 3 and b.lost is not None and b.measured == 1
    assert len(ResultStore(tmp_path / "results" / "fake-A-t1.jsonl").read()) == 3
    assert len(ResultStore(tmp_path / "results" / "fake-B-t1.jsonl").read()) == 1
    # --resume: A has nothing left, B measures its two cells
    again = fleet(tmp_path, [Dev("A"), Dev("B")], lambda d: NamedTarget(d.serial), resume=True)
    assert [(len(o.run), len(o.run.skipped)) for o in again] == [(0, 3), (2, 1)]
    assert len(ResultStore(tmp_path / "results" / "fake-B-t1.jsonl").read()) == 3


def test_a_device_that_cannot_be_probed_does_not_stop_the_others(tmp_path):
    def factory(dev):
        if dev.serial == "B":
            raise RuntimeError("probe failed")
        return NamedTarget(dev.serial)

    devs = [Dev("A"), Dev("B")]
    a, b = fleet(tmp_path, devs, factory)
    assert a.ok and len(a.run) == 3 and "FAILED (probe failed)" in b.summary() and devs[1].closed


def test_two_devices_with_the_same_id_get_their_own_files(tmp_path):
    """Two emulated devices have the same model, SoC and cores and no serial number: the fleet tells them apart."""

    class Twin(NamedTarget):
        by_serial = False

        def device_id(self):
            return f"twin-{self.name}" if self.by_serial else "twin"

        def distinguish(self):
            self.by_serial = True

    outcomes = fleet(tmp_path, [Dev("A"), Dev("B")], lambda d: Twin(d.serial))
    assert sorted(o.results.name for o in outcomes) == ["twin-A-t1.jsonl", "twin-B-t1.jsonl"]
    assert all(len(ResultStore(o.results).read()) == 3 for o in outcomes)


def test_one_results_file_for_several_devices_is_refused(tmp_path):
    from mobileseg.errors import MobilesegError

    with pytest.raises(MobilesegError, match="several devices each write their own"):
        fleet(tmp_path, [Dev("A"), Dev("B")], lambda d: NamedTarget(d.serial), results_file=tmp_path / "one.jsonl")


def test_shared_progress_counts_every_device():
    stream = io.StringIO()
    shared = SharedProgress(4, stream=stream)
    a, b = shared.view("dev-a", 2), shared.view("dev-b", 2)
    a.start("cell 1")
    b.skip("cell 1")
    a.finish("median 1 ms")
    assert stream.getvalue().splitlines() == [
        "[0/4] dev-a: running cell 1 (elapsed 0s)",
        "[1/4] dev-b: skip cell 1: done earlier (--resume)",
        "[2/4] dev-a: cell 1: median 1 ms (0s)",
    ]


def test_progress_counts_only_the_cells_each_device_can_run(tmp_path):
    """Default runtimes on two devices without Python (native harness: ncnn only): each measures one cell, and the
    display counts those two, not the plan times the devices (it said [0/8] and "finished its 4 cell(s)")."""
    from mobileseg.errors import MissingDependencyError

    class NcnnOnly(NamedTarget):
        def check_runtime(self, runtime):
            if runtime != "ncnn":
                raise MissingDependencyError(f"the native harness runs ncnn only, not '{runtime}'")

    stream = io.StringIO()
    outcomes = fleet(tmp_path, [Dev("A"), Dev("B")], lambda d: NcnnOnly(d.serial), stream=stream, runtimes=None)
    assert [len(o.run) for o in outcomes] == [1, 1]
    lines = stream.getvalue().splitlines()
    counts = {ln.split("]", 1)[0] + "]" for ln in lines if ln.startswith("[")}
    assert counts <= {"[0/2]", "[1/2]", "[2/2]"}, counts
    assert sum("finished its 1 cell(s)" in ln for ln in lines) == 2
    assert sum("runtime 'onnxruntime' is left out: the native harness runs ncnn only" in ln for ln in lines) == 2
