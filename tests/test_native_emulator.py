"""The native ncnn harness end to end on the emulated ARM64 device (adbd + arm64 rootfs under qemu, cortex-a76).

Builds the static aarch64 harness (cached), then measures over ADB through AdbTarget with ``harness="native"``: the
harness is pushed once, run under taskset, and its output must match the PyTorch reference within fp32 limits.
Timings under qemu are meaningless; only the plumbing and the ARM kernels' numbers are checked.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("adb_shell")

from mobileseg.device import native_build  # noqa: E402
from mobileseg.parity import compare  # noqa: E402
from emulated_devices import launch, native_harness  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.emulator]


@pytest.fixture(scope="module")
def harness_binary():
    return native_harness()


@pytest.fixture(scope="module")
def emulator(key, harness_binary):
    from mobileseg.emulator import control

    proc, port = launch(key)
    yield port
    control.terminate(proc)


def test_native_harness_cell_over_adb(emulator, key, tmp_path):
    from test_native import make_tiny_export

    from mobileseg.bench.suite import Cell
    from mobileseg.bench.targets.adb import AdbTarget

    folder, man = make_tiny_export(tmp_path / "export" / "tiny_seg_32x40")
    cell = Cell("tiny-seg", (32, 40), "ncnn")
    with AdbTarget.open(f"adb:127.0.0.1:{emulator}", key_path=key, adb_transport="direct", harness="native") as t:
        assert t.describe()["harness"] == "native-ncnn"
        t.check_runtime("ncnn")
        t.prepare(folder, "ncnn")
        run = t.run_cell(cell, folder, man, warmup=1, repeats=3, min_time=None)
        pinned = int(t.describe()["pinned_cpu"])
        remote = t.driver.harness.remote_binary
        # A second cell reuses the harness already on the device (same sha256: not pushed again).
        t.driver.prepare(t.device)
        assert t.driver.harness.remote_binary == remote
        rc, out = t.device.shell(f"sha256sum {remote}")
        assert rc == 0 and out.split()[0] == native_build._sha256(t.driver.harness.binary)
    assert run.harness == "native-ncnn" and len(run.samples_ms) == 3 and all(s > 0 for s in run.samples_ms)
    assert run.affinity == [pinned]
    assert run.runtime_version == native_build.ncnn_version()
    assert run.runtime_settings["use_fp16_arithmetic"] is False
    p = compare(run.output, np.load(folder / "reference" / "output.npy"), "fp32")
    assert p["ok"] and p["rel_l2"] <= 1e-4, p


def test_bench_cli_harness_native_records_ncnn_cells_on_the_emulated_device(emulator, key, tmp_path, monkeypatch):
    """`mobileseg bench --harness native` on a device that has Python: the native harness is used anyway."""
    pytest.importorskip("mobileseg.export.api", reason="the export stage (mobileseg.export.api) is not installed")
    pytest.importorskip("pnnx", reason="the ncnn export needs pnnx: pip install 'mobileseg[ncnn]'")
    from mobileseg.results.record import validate_record
    from mobileseg.cli import main

    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    out = tmp_path / "results"
    rc = main(
        [
            "bench",
            "--device",
            f"adb:127.0.0.1:{emulator}",
            "--adb-transport",
            "direct",
            "--harness",
            "native",
            "--threads",
            "1",
            "-m",
            "topformer-t",
            "--res",
            "64x64",
            "--runtimes",
            "ncnn",
            "--warmup",
            "1",
            "--repeats",
            "2",
            "--out",
            str(out),
            "--export-dir",
            str(tmp_path / "export"),
            "--quiet",
        ]
    )
    assert rc == 0
    recs = [json.loads(line) for f in out.glob("*.jsonl") for line in f.read_text().splitlines() if line.strip()]
    assert len(recs) == 1
    r = recs[0]
    assert validate_record(r) == [], validate_record(r)
    assert r["device"]["python"]  # the device has Python: only --harness native chose the C++ harness
    assert r["harness"] == "native-ncnn" and r["runtime"] == "ncnn" and r["emulated"] is True
    assert r["status"] == "ok", (r.get("error"), r["parity"])
    assert len(r["samples_ms"]) == 2 and r["stats_ms"]["count"] == 2
    assert r["parity"]["rel_l2"] <= r["parity"]["limit_rel_l2"]
    assert r["runtime_settings"]["use_fp16_storage"] is False
