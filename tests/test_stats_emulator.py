"""On the emulated ARM64 devices: load/first-run time and memory from both device harnesses, --target-ci on the
device, and --sustained detecting the throttling the android profile's thermal model (--thermal-sim) causes.

Timings under qemu are no phone's speed; what is checked is that the figures are measured and reported, and that the
sustained mode sees a slowdown that the emulator really imposes.
"""

from __future__ import annotations

import pytest

pytest.importorskip("adb_shell")

from emulated_devices import launch, native_harness  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.emulator]

# Heats ~2 C per second of full load from the prime zone's 41-42 C; past 46 C the clock (and the speed) falls 15%
# per degree down to 30%. Minutes shortened to MINUTE_S seconds (MOBILESEG_SUSTAINED_MINUTE_S's job in a real run).
THERMAL = "rise=2,tau=200,trip=46,drop=0.15,floor=0.3,period=0.004"
MINUTE_S = 3.0


@pytest.fixture(scope="module")
def harness_binary():
    return native_harness()


@pytest.fixture(scope="module")
def android(key, harness_binary):
    from mobileseg.emulator import control

    proc, port = launch(key, "android", ["--host-proc"])
    yield port
    control.terminate(proc)


@pytest.fixture
def cool_android(key, harness_binary):
    """A phone of its own for the throttling test, launched at idle temperature.

    A device shared with the other tests starts the sustained run already hot (the target-CI test loads it for up to a
    minute and the model cools with tau = 200 s), so its clock sits at the floor from the start and cannot fall further:
    that failed in a CI run.
    """
    from mobileseg.emulator import control

    proc, port = launch(key, "android", ["--thermal-sim", THERMAL, "--host-proc"])
    yield port
    control.terminate(proc)


@pytest.fixture(scope="module")
def debian(key):
    from mobileseg.emulator import control

    proc, port = launch(key, "debian", ["--host-proc"])
    yield port
    control.terminate(proc)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from test_native import make_tiny_export

    small = make_tiny_export(tmp_path_factory.mktemp("e") / "tiny_seg_32x40")
    big = make_tiny_export(tmp_path_factory.mktemp("e") / "tiny_seg_160x200", 160, 200)
    return small, big


def _check_figures(cr):
    mem = cr.memory
    assert cr.load_ms > 0 and cr.first_run_ms > 0, (cr.load_ms, cr.first_run_ms)
    assert "VmHWM" in mem["source"] and mem["definition"] and mem["peak_rss_growth_mb"] >= 0, mem
    assert mem["peak_rss_mb"] > 0 and "pss_mb" in mem


def _open(port, key, harness):
    from mobileseg.bench.targets.adb import AdbTarget

    return AdbTarget.open(f"adb:127.0.0.1:{port}", key_path=key, adb_transport="direct", harness=harness)


@pytest.mark.parametrize("harness", ["native"])
def test_native_harness_reports_load_first_run_memory_and_target_ci(android, key, exports, harness):
    from mobileseg.bench.sampling import SamplingRule
    from mobileseg.bench.suite import Cell

    (folder, man), _ = exports
    cell = Cell("tiny-seg", (32, 40), "ncnn")
    with _open(android, key, harness) as t:
        t.prepare(folder, "ncnn")
        cr = t.run_cell(cell, folder, man, warmup=1, repeats=4, min_time=None)
        _check_figures(cr)
        rule = SamplingRule(target_ci=50.0, max_time=60.0)
        cr = t.run_cell(cell, folder, man, warmup=1, repeats=None, min_time=None, sampling=rule)
    assert cr.sampling["rule"] == "target-ci" and cr.sampling["reached"] is True
    assert len(cr.samples_ms) >= 10 and cr.sampling["halfwidth_pct"] <= 50


def test_device_python_harness_reports_load_first_run_memory(debian, key, exports):
    from mobileseg.bench.suite import Cell

    (folder, man), _ = exports
    with _open(debian, key, "python") as t:
        t.prepare(folder, "ncnn")
        cr = t.run_cell(Cell("tiny-seg", (32, 40), "ncnn"), folder, man, warmup=1, repeats=4, min_time=None)
    _check_figures(cr)
    assert cr.harness == "device-python"


def test_sustained_detects_the_simulated_throttling(cool_android, key, exports):
    from mobileseg.bench.suite import Cell
    from mobileseg.bench.sustained import run_sustained

    _, (folder, man) = exports
    with _open(cool_android, key, "native") as t:
        t.prepare(folder, "ncnn")
        _cr, info = run_sustained(
            t, Cell("tiny-seg", (160, 200), "ncnn"), folder, man, warmup=1, minutes=5, minute_s=MINUTE_S
        )
    m, start = info["per_minute"], info["start"]
    # against the state before minute 1: the model can trip within the first (shortened) minute
    assert m[-1]["temp_c"] > start["temp_c"] + 2, (start, m)  # the CPU zone heated
    assert m[-1]["freq_khz"] < start["freq_khz"], (start, m)  # the prime core's clock fell
    assert info["slowdown_minute"] is not None, [x["median_ms"] for x in m]
    assert m[info["slowdown_minute"] - 1]["median_ms"] > 1.1 * m[0]["median_ms"]


def test_device_python_harness_profile(debian, key, exports):
    from mobileseg.bench.suite import Cell

    (folder, man), _ = exports
    with _open(debian, key, "python") as t:
        t.prepare(folder, "ncnn")
        prof = t.profile(Cell("tiny-seg", (32, 40), "ncnn"), folder, man)
    assert prof["source"] == "ncnn-layer-extract" and prof["runs"] == 10
    assert {o["type"] for o in prof["ops"]} >= {"Convolution", "ConvolutionDepthWise"}
    assert abs(sum(o["share"] for o in prof["ops"]) - 1) < 1e-3
