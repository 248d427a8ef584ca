"""AdbTarget with a scripted device (no daemon): harness choice, official-binary routing, thermal flags, device loss.

The device answers the probe and state scripts with canned /proc and /sys text; a fake harness driver returns fixed
timings. The real transport and harnesses run in test_adb_protocol.py, test_emulator.py and test_native_emulator.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mobileseg.bench import run_bench
from mobileseg.results.record import validate_record
from mobileseg.results.store import ResultStore
from mobileseg.bench.targets import TargetLostError
from mobileseg.bench.targets import adb as adb_target
from mobileseg.bench.targets.adb import AdbTarget
from mobileseg.device import marks
from mobileseg.device.harness_driver import HarnessDriver
from mobileseg.device.python_harness import PythonHarnessDriver
from mobileseg.device.official_tools import OfficialToolError

BIG, LITTLE = 2419200, 1804800
PROBE = f"""@getprop
[ro.product.model]: [Test Phone]
[ro.soc.model]: [SM8250]
[ro.product.cpu.abi]: [arm64-v8a]
[ro.build.version.release]: [13]
@uname
aarch64
5.4.0
@cpus
0 {LITTLE} schedutil
1 {LITTLE} schedutil
2 {BIG} performance
3 {BIG} performance
@cpuinfo
processor : 0
CPU part : 0xd0b
@dtmodel

@osrelease
@df
/dev/block/dm-5 100000000 5000000 95000000 5% /data
@python
/usr/bin/python3 3.11.2 numpy ncnn onnxruntime ai_edge_litert
@tools
taskset
sha256sum
"""


def state_text(freqs: dict, temp_c: float = 40.0) -> str:
    lines = ["@freqs"] + [f"{cpu} {khz}" for cpu, khz in sorted(freqs.items())]
    lines += ["@thermal", f"thermal_zone0|cpu-thermal|{int(temp_c * 1000)}", "@end"]
    return "\n".join(lines) + "\n"


NOMINAL = {0: LITTLE, 1: LITTLE, 2: BIG, 3: BIG}


class ScriptedDevice:
    """Answers the probe once and then one state per state query (from ``states``); records pushes."""

    serial = "scripted:5555"

    def __init__(self, states=(), python=True):
        self.states = list(states)
        self.python = python
        self.pushed: list[str] = []
        self.commands: list[str] = []
        self.closed = False

    def shell(self, cmd, timeout=None):
        self.commands.append(cmd)
        if "@getprop" in cmd:
            text = (
                PROBE
                if self.python
                else PROBE.replace("/usr/bin/python3 3.11.2 numpy ncnn onnxruntime ai_edge_litert\n", "")
            )
            return 0, text + state_text(NOMINAL)
        if "@freqs" in cmd:
            return 0, state_text(self.states.pop(0) if self.states else NOMINAL)
        return 0, ""

    def push(self, local, remote, timeout=None, local_sha256=None):
        self.pushed.append(remote)
        return True

    def pull(self, remote, local, timeout=None):
        raise AssertionError("the fake driver pulls nothing")

    def close(self):
        self.closed = True


class FakeDriver(HarnessDriver):
    """Returns the cell's reference output (found through the export root) and fixed samples."""

    name = "device-python"

    def __init__(self, export_root: Path):
        self.export_root = export_root
        self.runs = []

    def supports(self, runtime, description):
        return None

    def prepare(self, device):
        pass

    def run(self, device, cell, artifact, *, mask, warmup, repeats, min_time, timeout):
        self.runs.append((cell, mask))
        ref = np.load(self.export_root / Path(artifact["dir"]).name / "reference" / "output.npy")
        return (
            [1.0, 2.0, 3.0],
            ref,
            {
                "runtime_version": "1.0",
                "affinity": [int(mask, 16).bit_length() - 1],
                "settings": {"threads": cell.threads},
            },
        )


def fake_export(model, res, formats, precision, graph, out):
    h, w = res
    os.makedirs(os.path.join(out, "reference"), exist_ok=True)
    rng = np.random.default_rng(h)
    np.save(os.path.join(out, "reference", "input.npy"), rng.standard_normal((1, 3, h, w), dtype=np.float32))
    ref = rng.standard_normal((1, 5, h // 8, w // 8)).astype(np.float32)
    np.save(os.path.join(out, "reference", "output.npy"), ref)
    files = {"onnx": "model.onnx", "tflite": "model.tflite", "ncnn": "model.ncnn.param"}
    for f in formats:
        Path(out, files[f]).write_bytes(b"model")
    man = {
        "schema_version": 1,
        "model": model,
        "resolution": [h, w],
        "num_classes": 5,
        "graph": graph,
        "precision": precision,
        "formats": {
            f: {"ok": True, "files": [{"path": files[f], "sha256": hashlib.sha256(b"model").hexdigest()}]}
            for f in formats
        },
    }
    Path(out, "manifest.json").write_text(json.dumps(man))
    return man


def bench(tmp_path, target, **kw):
    kw.setdefault("models", ["topformer-t"])
    kw.setdefault("resolutions", [64])
    kw.setdefault("runtimes", ["onnxruntime", "ncnn"])
    return run_bench(
        target=target,
        export_fn=fake_export,
        export_root=tmp_path / "export",
        results_file=tmp_path / "r.jsonl",
        warmup=0,
        repeats=3,
        measure_reference=False,
        progress=False,
        **kw,
    )


def test_probe_picks_the_last_big_core_and_python_harness():
    t = AdbTarget(ScriptedDevice())
    d = t.describe()
    assert d["pinned_cpu"] == 3 and d["pin_mask"] == "0x8" and d["big_core_mask"] == "0xc"
    assert isinstance(t.driver, PythonHarnessDriver) and d["harness"] == "device-python"


def test_harness_option_overrides_the_device_python(monkeypatch):
    from mobileseg.device import native

    t = AdbTarget(ScriptedDevice(), harness="native")
    assert isinstance(t.driver, native.NativeHarnessDriver) and t.describe()["harness"] == "native-ncnn"
    with pytest.raises(Exception, match="unknown harness 'gpu'"):
        AdbTarget(ScriptedDevice(), harness="gpu")
    # a device without Python falls back to the native harness under auto
    assert isinstance(AdbTarget(ScriptedDevice(python=False)).driver, native.NativeHarnessDriver)


@pytest.mark.parametrize("target_kind", ["adb", "local"])
def test_a_cell_whose_frequency_dropped_is_flagged_throttled(tmp_path, monkeypatch, target_kind):
    """Fake probe sequence: cell 1 sees the pinned CPU drop from its before to its after state; cell 2 sees a drop
    on a CPU it did not run on (not throttled)."""
    dropped_pinned = {**NOMINAL, 3: LITTLE}
    dropped_other = {**NOMINAL, 0: 300000}
    # state() is called once before and once after each cell
    sequence = [NOMINAL, dropped_pinned, NOMINAL, dropped_other]
    if target_kind == "adb":
        dev = ScriptedDevice(states=sequence)
        target = AdbTarget(dev)
        target.driver = FakeDriver(tmp_path / "export")
    else:
        from mobileseg.bench.targets import CellRun, local

        queue = list(sequence)
        current = {}

        def fake_freq(cpu=None):  # what cpufreq says now (kHz -> MHz); advances at each full state() read
            if cpu == 0:
                current.clear()
                current.update(queue.pop(0) if queue else NOMINAL)
            return {"cur": current.get(cpu, BIG) / 1000.0}

        monkeypatch.setattr(local.env, "cpu_freq_mhz", fake_freq)
        monkeypatch.setattr(local.os, "cpu_count", lambda: 4)
        target = local.LocalTarget(pin=False)
        target.cpu = 3
        target._description = {"kind": "local", "model": "host-test", "pinned_cpu": 3, "emulated": False}

        def run_cell(self, cell, export_dir, manifest, warmup, repeats, min_time):
            ref = np.load(Path(export_dir) / "reference" / "output.npy")
            return CellRun(samples_ms=[1.0, 2.0], output=ref, runtime_version="1", affinity=[3])

        monkeypatch.setattr(local.LocalTarget, "run_cell", run_cell)
    recs = bench(tmp_path, target)
    assert [r["device_state"]["throttled"] for r in recs] == [True, False]
    first = recs[0]["device_state"]
    assert first["before"]["freqs_khz"]["3"] == BIG and first["after"]["freqs_khz"]["3"] == LITTLE
    for r in recs:
        assert validate_record(r) == [] and r["status"] == "ok"


def _tool(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"#!/bin/sh\n")
    return p


def test_official_binaries_take_their_runtimes_and_push_once(tmp_path):
    dev = ScriptedDevice()
    tools = adb_target.official_tool_drivers(
        tflite_benchmark=_tool(tmp_path, "benchmark_model"), ort_perf_test=_tool(tmp_path, "onnxruntime_perf_test")
    )
    t = AdbTarget(dev, tool_drivers=tools)
    assert t.driver_for("litert").name == "benchmark_model"
    assert t.driver_for("onnxruntime").name == "onnxruntime_perf_test"
    assert t.driver_for("ncnn") is t.driver and t.driver.name == "device-python"
    assert t.describe()["official_tools"] == {"litert": "benchmark_model", "onnxruntime": "onnxruntime_perf_test"}
    t.check_runtime("litert")
    folder = tmp_path / "export" / "m_64x64"
    fake_export("m", (64, 64), ["onnx", "tflite", "ncnn"], "fp32", "logits", str(folder))
    for fmt in ("tflite", "onnx", "ncnn", "tflite"):
        t.prepare(folder, fmt)
    bins = [p for p in dev.pushed if "/bin/" in p]
    assert len(bins) == 2 and any("benchmark_model-" in p for p in bins) and any("perf_test-" in p for p in bins)
    inputs = [p for p in dev.pushed if p.endswith("reference/input.npy")]
    assert len(inputs) == 1  # only the harness cell (ncnn) needs the input; the binaries generate their own


def test_a_missing_official_binary_fails_before_connecting(tmp_path, monkeypatch):
    def no_connect(*a, **k):
        raise AssertionError("connected before checking the binary")

    from mobileseg.device import selection

    monkeypatch.setattr(selection, "open_devices", no_connect)
    with pytest.raises(OfficialToolError, match="--tflite-benchmark .*no such file"):
        AdbTarget.open("adb:127.0.0.1:5555", tflite_benchmark=tmp_path / "nope")


def test_timings_only_cells_are_recorded_with_the_tools_summary(tmp_path):
    """A CellRun with output=None: parity not checked, stats from the tool's summary (no samples)."""
    from test_official_tools import FIX

    from mobileseg.device import official_tools as ot

    class ToolOnDevice(ScriptedDevice):
        def shell(self, cmd, timeout=None):
            if ot.TFLITE_TOOL + "-" in cmd:
                self.commands.append(cmd)
                return 0, (FIX / "benchmark_model_arm64_t1.txt").read_text()
            return super().shell(cmd, timeout)

    dev = ToolOnDevice()
    t = AdbTarget(dev, tool_drivers=adb_target.official_tool_drivers(_tool(tmp_path, "benchmark_model")))
    recs = bench(tmp_path, t, runtimes=["litert"])
    (r,) = recs
    assert validate_record(r) == [], validate_record(r)
    assert r["status"] == "ok" and r["harness"] == "benchmark_model"
    assert r["parity"] == {"checked": False, "reason": "benchmark_model reports timings only"}
    assert r["samples_ms"] == [] and r["stats_source"] == "tool-summary"
    assert r["stats_ms"]["count"] == 20 and r["stats_ms"]["mean"] == pytest.approx(47.7024)
    assert r["affinity"] == [3] and r["runtime_settings"]["device_pin_mask"] == "0x8"
    cmd = next(c for c in dev.commands if "--graph=" in c)
    assert "taskset 0x8 " in cmd and "--num_threads=1" in cmd
    assert ResultStore(tmp_path / "r.jsonl").read() == recs


def test_native_harness_does_not_swallow_a_lost_device(tmp_path):
    """The native driver used to turn every failed pull into 'the harness failed' (one error record per cell)."""
    from mobileseg.device.adb_direct import DeviceLostError
    from mobileseg.device.native import NativeHarness

    class Gone(ScriptedDevice):
        def pull(self, remote, local, timeout=None):
            raise DeviceLostError("the ADB device scripted:5555 was lost (ConnectionResetError)")

    h = NativeHarness(binary=_tool(tmp_path, "harness"))
    h.remote_binary = "/data/local/tmp/mobileseg/bin/h"
    with pytest.raises(TargetLostError, match="was lost"):
        h.execute(
            Gone(),
            "/data/local/tmp/mobileseg/m",
            "m.param",
            "m.bin",
            "in.npy",
            threads=1,
            warmup=0,
            repeats=1,
            min_time=None,
        )


class SharedStorageDevice(ScriptedDevice):
    """A device whose storage another device overwrote: the mark file holds the other's mark."""

    def shell(self, cmd, timeout=None):
        if marks.MARK_LINE in cmd:
            self.commands.append(cmd)
            return 0, f"{marks.MARK_LINE}0123456789abcdef\n"
        return super().shell(cmd, timeout)


def test_each_cell_reads_back_its_devices_mark_and_another_mark_fails_the_cell(tmp_path):
    dev = ScriptedDevice()
    target = AdbTarget(dev)
    mark = target.describe()["mark"]
    assert len(mark) == 16 and any(f"echo {mark} > {marks.MARK_FILE}" in c for c in dev.commands)
    assert AdbTarget(ScriptedDevice()).describe()["mark"] != mark  # a fresh mark per target
    shared = SharedStorageDevice()
    target = AdbTarget(shared)
    target.driver = FakeDriver(tmp_path / "export")
    recs = bench(tmp_path, target, runtimes=["onnxruntime"])
    (rec,) = recs
    assert rec["status"] == "error" and "read the mark 0123456789abcdef instead of this device's" in rec["error"]
    assert "its storage is shared with another device" in rec["error"]


def test_the_python_harness_names_its_files_per_run_and_removes_them(tmp_path):
    class Device(ScriptedDevice):
        def pull(self, remote, local, timeout=None):
            local = Path(local)
            if remote.endswith(".json"):
                local.write_text(json.dumps({"ok": True, "samples_ms": [1.0], "device_mark": "m"}))
            else:
                np.save(local, np.zeros(2, np.float32))
            self.pulled.append(remote)
            return local

    class Cell:
        runtime, threads, precision = "onnxruntime", 1, "fp32"

        def label(self):
            return "cell"

    dev = Device()
    dev.pulled = []
    art = {"dir": "/data/local/tmp/mobileseg/x", "model": "m.onnx", "input": "in.npy"}
    driver = PythonHarnessDriver()
    for _ in range(2):
        _samples, _out, info = driver.run(dev, Cell(), art, mask=None, warmup=0, repeats=1, min_time=None, timeout=9)
        assert info["device_mark"] == "m"
    runs = [c for c in dev.commands if "harness.py" in c]
    assert len(runs) == 2 and all(f"--mark-file {marks.MARK_FILE}" in c for c in runs)
    names = [p for p in dev.pulled if p.endswith(".json")]
    assert len(set(names)) == 2 and all(n.startswith(art["dir"] + "/timings_onnxruntime_t1_") for n in names)
    removed = [c for c in dev.commands if c.startswith("rm -f ")]
    assert [all(p in r for p in dev.pulled[2 * i : 2 * i + 2]) for i, r in enumerate(removed)] == [True, True]


def test_a_runtime_left_out_on_a_phone_says_the_real_reason(tmp_path, capsys):
    from mobileseg.device.native import NativeHarnessDriver

    why = NativeHarnessDriver().supports("litert", {"python": None, "abi": "arm64-v8a"})
    assert why == (
        "the device has no Python and the native harness runs ncnn only: time litert with its official "
        "binary (--tflite-benchmark PATH|auto)"
    )
    assert "--ort-perf-test PATH" in NativeHarnessDriver().supports("onnxruntime", {"python": None})

    class PhoneDriver(FakeDriver):
        def supports(self, runtime, description):
            return None if runtime == "ncnn" else NativeHarnessDriver().supports(runtime, {"python": None})

    target = AdbTarget(ScriptedDevice())
    target.driver = PhoneDriver(tmp_path / "export")
    run_bench(
        target=target,
        export_fn=fake_export,
        export_root=tmp_path / "export",
        results_file=tmp_path / "r.jsonl",
        warmup=0,
        repeats=3,
        measure_reference=False,
        progress=True,
        models=["topformer-t"],
        resolutions=[64],
        runtimes=None,
    )
    err = capsys.readouterr().err
    assert (
        "runtime 'onnxruntime' is left out: the device has no Python and the native harness runs ncnn only: "
        "time onnxruntime with its official binary (--ort-perf-test PATH)" in err
    )
    assert "is not installed" not in err
