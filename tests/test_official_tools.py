"""Parsing and driving the official benchmark binaries (TFLite benchmark_model, onnxruntime_perf_test).

The fixtures under tests/fixtures/official_tools are written in the tools' documented output formats.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mobileseg.device import official_tools as ot

FIX = Path(__file__).parent / "fixtures" / "official_tools"


def test_parse_benchmark_model():
    r = ot.parse_benchmark_model((FIX / "benchmark_model_arm64_t1.txt").read_text())
    assert r["tool"] == "benchmark_model" and r["samples_ms"] == []  # the tool prints no per-run times
    s = r["stats_ms"]
    assert s["count"] == 20 and s["median"] is None
    assert s["mean"] == pytest.approx(47.7024) and s["min"] == pytest.approx(46.873)
    assert s["max"] == pytest.approx(49.811) and s["stdev"] == pytest.approx(0.702)
    assert r["warmup"] == {"count": 2, "first_ms": pytest.approx(58.211), "mean_ms": pytest.approx(53.0575)}
    assert r["init_ms"] == pytest.approx(41.562) and r["threads"] == 1
    assert r["settings"]["use_xnnpack"] == "1"


def test_parse_perf_test_with_per_run_file():
    r = ot.parse_perf_test(
        (FIX / "onnxruntime_perf_test_stdout.txt").read_text(), (FIX / "onnxruntime_perf_test_results.csv").read_text()
    )
    assert len(r["samples_ms"]) == 10 and r["samples_ms"][0] == pytest.approx(61.01)
    s = r["stats_ms"]
    assert s["count"] == 10 and s["min"] == pytest.approx(61.01) and s["max"] == pytest.approx(63.89)
    assert s["mean"] == pytest.approx(61.955)  # the per-run samples agree with the tool's own average
    assert r["tool_mean_ms"] == pytest.approx(61.955)
    assert r["tool_percentiles_ms"]["p50"] == pytest.approx(61.88)
    assert r["warmup"]["first_ms"] == 71 and r["init_ms"] == pytest.approx(81.2)


def test_parse_perf_test_stdout_only_and_old_format():
    new = ot.parse_perf_test((FIX / "onnxruntime_perf_test_stdout.txt").read_text())
    assert new["samples_ms"] == [] and new["stats_ms"]["median"] == pytest.approx(61.88)
    assert new["stats_ms"]["p90"] == pytest.approx(63.89) and new["stats_ms"]["count"] == 10
    old = ot.parse_perf_test((FIX / "onnxruntime_perf_test_stdout_old.txt").read_text())
    s = old["stats_ms"]
    assert s["count"] == 100 and s["mean"] == pytest.approx(42.315)
    assert s["median"] == pytest.approx(42.2) and s["min"] == pytest.approx(41.1) and s["max"] == pytest.approx(45.2)


@pytest.mark.parametrize("parse", [ot.parse_benchmark_model, ot.parse_perf_test])
def test_unreadable_output_is_one_clear_error(parse):
    with pytest.raises(ot.OfficialToolError, match="printed no timings.*Segmentation fault"):
        parse("STARTING!\nSegmentation fault\n")


class ScriptedDevice:
    """Answers the tool's command with a captured output and serves its result file; files are a local folder."""

    def __init__(self, stdout: str, result_file: str | None = None):
        self.stdout, self.result_file = stdout, result_file
        self.commands: list[str] = []

    def shell(self, cmd, timeout=None):
        self.commands.append(cmd)
        if "sha256sum" in cmd:
            path = cmd.split()[1]
            import hashlib

            p = Path(path.strip("'"))
            return (0, hashlib.sha256(p.read_bytes()).hexdigest() + "  x\n") if p.is_file() else (1, "")
        if ot.TFLITE_TOOL in cmd or ot.ORT_TOOL + "-" in cmd:
            return 0, self.stdout
        return 0, ""

    def push(self, local, remote):
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, remote)

    def pull(self, remote, local):
        Path(local).write_text(self.result_file)


class Cell:
    threads = 2
    precision = "fp32"


def _artifact(tmp_path, name):
    """What AdbTarget hands a driver once it has pushed the model (here the 'device' is a local folder)."""
    rdir = tmp_path / "device" / "m_32x32"
    rdir.mkdir(parents=True)
    (rdir / name).write_bytes(b"model bytes")
    return {"dir": str(rdir), "model": str(rdir / name), "tools": ["taskset"]}


def test_tflite_benchmark_run_is_pinned_and_says_parity_not_checked(tmp_path):
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF fake")
    artifact = _artifact(tmp_path, "model.tflite")
    dev = ScriptedDevice((FIX / "benchmark_model_arm64_t1.txt").read_text())
    drv = ot.OfficialToolDriver(ot.TFLITE_TOOL, binary, remote_root=str(tmp_path / "device"))
    samples, output, r = drv.run(dev, Cell(), artifact, mask="80", warmup=2, repeats=20, min_time=None)
    cmd = r["command"]
    assert cmd.startswith("taskset 80 ") and "--num_threads=2" in cmd and "--num_runs=20" in cmd
    assert "--warmup_runs=2" in cmd and artifact["model"] in cmd
    assert output is None and samples == []  # benchmark_model prints a summary only
    assert r["parity"] == {"checked": False, "reason": "benchmark_model reports timings only"}
    assert r["harness"] == "benchmark_model" and r["runtime"] == "litert" and r["affinity"] == [7]
    assert r["stats_ms"]["count"] == 20


def test_ort_perf_test_run_pulls_per_run_times(tmp_path):
    binary = tmp_path / "onnxruntime_perf_test"
    binary.write_bytes(b"\x7fELF fake")
    artifact = _artifact(tmp_path, "model.onnx")
    dev = ScriptedDevice(
        (FIX / "onnxruntime_perf_test_stdout.txt").read_text(), (FIX / "onnxruntime_perf_test_results.csv").read_text()
    )
    drv = ot.OfficialToolDriver(ot.ORT_TOOL, binary, remote_root=str(tmp_path / "device"))
    samples, output, r = drv.run(dev, Cell(), artifact, mask="30", warmup=1, repeats=10, min_time=None)
    cmd = r["command"]
    assert cmd.startswith("taskset 30 ") and " -x 2 " in cmd and " -m times -r 10 " in cmd and " -I " in cmd
    assert len(samples) == 10 and r["parity"]["checked"] is False and r["affinity"] == [4, 5]
    assert r["runtime"] == "onnxruntime" and r["harness"] == "onnxruntime_perf_test"


def test_missing_binary_names_the_flag(tmp_path):
    with pytest.raises(ot.OfficialToolError, match="--ort-perf-test"):
        ot.OfficialTool(ot.ORT_TOOL, tmp_path / "nope")
    with pytest.raises(ot.OfficialToolError, match="--tflite-benchmark"):
        ot.OfficialTool(ot.TFLITE_TOOL, tmp_path / "nope")


def test_driver_seam_for_adb_target(tmp_path):
    binary = tmp_path / "onnxruntime_perf_test"
    binary.write_bytes(b"\x7fELF fake")
    drv = ot.OfficialToolDriver(ot.ORT_TOOL, binary, remote_root=str(tmp_path / "device"))
    assert drv.name == "onnxruntime_perf_test"
    assert drv.supports("onnxruntime", {}) is None and "onnxruntime models only" in drv.supports("ncnn", {})
    dev = ScriptedDevice(
        (FIX / "onnxruntime_perf_test_stdout.txt").read_text(), (FIX / "onnxruntime_perf_test_results.csv").read_text()
    )
    artifact = {
        "dir": str(tmp_path / "device" / "m"),
        "model": str(tmp_path / "device" / "m" / "model.onnx"),
        "tools": ["taskset"],
    }
    samples, output, info = drv.run(dev, Cell(), artifact, mask="0x80", warmup=1, repeats=10, min_time=None)
    assert output is None and len(samples) == 10 and info["parity"]["checked"] is False
    assert info["command"].startswith("taskset 0x80 ") and info["settings"]["threads"] == 2


def test_tflite_benchmark_op_profile_pass_feeds_the_profile_schema(tmp_path):
    from mobileseg.bench.profile import parse_benchmark_model

    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF fake")
    artifact = _artifact(tmp_path, "model.tflite")
    text = (Path(__file__).parent / "fixtures" / "profiles" / "benchmark_model_op_profiling.txt").read_text()
    dev = ScriptedDevice(text)
    drv = ot.OfficialToolDriver(ot.TFLITE_TOOL, binary, remote_root=str(tmp_path / "device"))
    out = drv.op_profile_text(dev, Cell(), artifact, mask="80", runs=10)
    cmd = dev.commands[-1]
    assert "taskset 80 " in cmd and "--enable_op_profiling=true" in cmd and "--num_runs=10" in cmd
    prof = parse_benchmark_model(out)
    assert prof["source"] == "benchmark_model-op-profiling" and prof["ops"][0]["type"] == "TfLiteXNNPackDelegate"
    ort = ot.OfficialToolDriver(ot.ORT_TOOL, binary, remote_root=str(tmp_path / "device"))
    assert ort.op_profile_text(dev, Cell(), artifact, mask=None) is None
