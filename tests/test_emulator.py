"""The emulated ARM64 device end to end: adbd serving the arm64 rootfs under proot + qemu-aarch64 (cortex-a76).

Needs ``mobileseg emulator build`` first (CI builds it); skipped with the reason otherwise. Timings under qemu are
meaningless: only the numbers computed by the ARM kernels (parity) and the plumbing are checked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("adb_shell")

from mobileseg.results.record import validate_record  # noqa: E402
from mobileseg.emulator import build, control  # noqa: E402
from emulated_devices import skip_reason  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.emulator]


@pytest.fixture(scope="module")
def emulator(key):
    why = skip_reason()
    if why:
        pytest.skip(why)
    proc, port = control.launch(adb_keys=key.parent / "adb_keys", refuse_new_keys=True, rootfs=str(build.rootfs_dir()))
    yield port
    control.terminate(proc)


def _onnx_export(folder: Path, model_name: str, h: int, w: int) -> Path:
    """A contract-2 export folder holding only model.onnx (the ONNX exporter of torch; no converter packages)."""
    import torch

    import mobileseg

    folder.mkdir(parents=True, exist_ok=True)
    model = mobileseg.create_model(model_name).eval()
    gen = np.random.default_rng(0)
    x = gen.standard_normal((1, 3, h, w)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    torch.onnx.export(
        model,
        (torch.from_numpy(x),),
        str(folder / "model.onnx"),
        input_names=["input"],
        output_names=["output"],
        opset_version=17,
        dynamo=False,
    )
    (folder / "reference").mkdir(exist_ok=True)
    np.save(folder / "reference" / "input.npy", x)
    np.save(folder / "reference" / "output.npy", ref)
    data = (folder / "model.onnx").read_bytes()
    man = {
        "schema_version": 1,
        "model": model_name,
        "resolution": [h, w],
        "num_classes": int(ref.shape[1]),
        "graph": "logits",
        "precision": "fp32",
        "input": {"name": "input", "shape": list(x.shape), "dtype": "float32", "layout": "NCHW"},
        "output": {"name": "output", "shape": list(ref.shape), "dtype": "float32"},
        "formats": {
            "onnx": {
                "files": [{"path": "model.onnx", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}],
                "input_name": "input",
                "output_name": "output",
                "ok": True,
            }
        },
    }
    (folder / "manifest.json").write_text(json.dumps(man))
    return folder


def test_runtimes_import_under_qemu(emulator, key):
    from mobileseg.device.adb_direct import AdbDevice

    with AdbDevice.open(f"adb:127.0.0.1:{emulator}", key_path=key) as dev:
        rc, out = dev.shell(
            "uname -m; python3 -c 'import numpy, ncnn, onnxruntime; "
            "from ai_edge_litert.interpreter import Interpreter; "
            "print(numpy.__version__, ncnn.__version__, onnxruntime.__version__)'",
            timeout=300,
        )
        assert rc == 0, out
        lines = out.split()
        assert lines[0] == "aarch64"
        assert len(lines) == 4
        # the device runs the versions the host was tested with (lock file, else the host's own)
        want = dict(w.split("==") for w in build.runtime_wheels()[0])
        assert lines[1:] == [want["numpy"], want["ncnn"], want["onnxruntime"]]
        assert dev.shell("exit 9")[0] == 9
        assert "emulated" in dev.getprop("ro.product.model")


def test_probe_reports_an_emulated_arm64_device(emulator, key):
    from mobileseg.bench.targets.adb import AdbTarget

    with AdbTarget.open(f"adb:127.0.0.1:{emulator}", key_path=key, adb_transport="direct") as t:
        d = t.describe()
        assert t.emulated and d["emulated"] is True
        assert d["abi"] == "arm64-v8a"
        assert d["python"] and {"numpy", "ncnn", "onnxruntime", "ai_edge_litert"} <= set(d["python"]["modules"])
        assert d["clusters"] and d["big_core_mask"] and d["pin_mask"]
        assert int(d["pin_mask"], 16) & int(d["big_core_mask"], 16)
        assert d["governor"] and d["freqs_khz"] and d["storage_free_bytes"] > 0
        st = t.state()
        assert st["temps_c"] and st["freqs_khz"]
        assert "asimddp" in d["cpu_features"]


def test_harness_computes_the_reference_on_arm_kernels(emulator, key, tmp_path):
    from mobileseg.bench.suite import Cell
    from mobileseg.bench.targets.adb import AdbTarget
    from mobileseg.parity import compare

    folder = _onnx_export(tmp_path / "export" / "topformer-t_64x64", "topformer-t", 64, 64)
    man = json.loads((folder / "manifest.json").read_text())
    cell = Cell("topformer-t", (64, 64), "onnxruntime")
    with AdbTarget.open(f"adb:127.0.0.1:{emulator}", key_path=key, adb_transport="direct") as t:
        t.prepare(folder, "onnx")
        run = t.run_cell(cell, folder, man, warmup=0, repeats=2, min_time=None)
    assert len(run.samples_ms) == 2 and all(s > 0 for s in run.samples_ms)
    assert run.harness == "device-python" and run.affinity == [int(t.describe()["pinned_cpu"])]
    p = compare(run.output, np.load(folder / "reference" / "output.npy"))
    assert p["ok"], p


def _bench(argv):
    from mobileseg.cli import main

    return main(["bench", *argv])


def _records(out: Path) -> list[dict]:
    return [json.loads(l) for f in sorted(out.glob("*.jsonl")) for l in f.read_text().splitlines() if l.strip()]


@pytest.fixture(scope="module")
def export_root(tmp_path_factory):
    """topformer-t at 64x64 exported once to onnx, ncnn and tflite (the export stage checks host-side parity)."""
    pytest.importorskip("mobileseg.export.api", reason="the export stage (mobileseg.export.api) is not installed")
    from mobileseg.export.api import export_model

    root = tmp_path_factory.mktemp("export")
    export_model(
        "topformer-t", resolution=(64, 64), formats=("onnx", "ncnn", "tflite"), out=str(root / "topformer-t_64x64")
    )
    return root


def test_bench_three_runtimes_on_the_emulated_device(emulator, key, export_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    out = tmp_path / "results"
    rc = _bench(
        [
            "--device",
            f"adb:127.0.0.1:{emulator}",
            "--adb-transport",
            "direct",
            "--threads",
            "1",
            "-m",
            "topformer-t",
            "--res",
            "64x64",
            "--runtimes",
            "ncnn",
            "onnxruntime",
            "litert",
            "--warmup",
            "1",
            "--repeats",
            "3",
            "--out",
            str(out),
            "--export-dir",
            str(export_root),
            "--harness",
            "python",
            "--quiet",
        ]
    )
    assert rc == 0
    recs = _records(out)
    assert sorted(r["runtime"] for r in recs) == ["litert", "ncnn", "onnxruntime"]
    for r in recs:
        assert validate_record(r) == [], validate_record(r)
        assert r["emulated"] is True and r["device"]["emulated"] is True
        assert r["harness"] == "device-python"
        assert r["status"] == "ok", (r["runtime"], r.get("error"), r["parity"])
        host_pkg = {"ncnn": "ncnn", "onnxruntime": "onnxruntime", "litert": "ai-edge-litert"}[r["runtime"]]
        assert r["runtime_version"] == r["versions"][host_pkg]  # ARM against host: one version on both sides
        assert r["parity"]["rel_l2"] is not None and r["parity"]["rel_l2"] <= r["parity"]["limit_rel_l2"]
        assert len(r["samples_ms"]) == 3


# Stand-ins for the official binaries: shell scripts that print the tools' documented output (the fixtures of
# test_official_tools.py) for as many runs as asked, and log their arguments and CPU affinity on the device.
FIX = Path(__file__).parent / "fixtures" / "official_tools"
TOOL_LOG = "/data/local/tmp/mobileseg/fake_tools.log"
LOG_LINE = "echo \"{tool} $* | mask=$(taskset -p $$ | sed 's/.*: //')\" >> " + TOOL_LOG  # affinity it ran with


def _fake_benchmark_model(path: Path) -> Path:
    text = (FIX / "benchmark_model_arm64_t1.txt").read_text()
    head, rest = text.split("INFO: count=20 ")
    timed = "INFO: count=$runs " + rest.split("\n", 1)[0]
    tail = rest.split("\n", 1)[1]
    path.write_text(
        "#!/bin/sh\n" + LOG_LINE.format(tool="benchmark_model") + "\n"
        "runs=1\n"
        'for a in "$@"; do case "$a" in --num_runs=*) runs="${a#--num_runs=}";; esac; done\n'
        "cat <<'EOF'\n" + head + "EOF\n"
        f'echo "{timed}"\n'
        "cat <<'EOF'\n" + tail + "EOF\n"
    )
    return path


def _fake_perf_test(path: Path) -> Path:
    stdout = (FIX / "onnxruntime_perf_test_stdout.txt").read_text()
    path.write_text(
        "#!/bin/sh\n" + LOG_LINE.format(tool="onnxruntime_perf_test") + "\n"
        "runs=1; prev=; model=; result=\n"
        'for a in "$@"; do [ "$prev" = "-r" ] && runs=$a; prev=$a; model=$result; result=$a; done\n'
        "i=0\n"
        'while [ $i -lt $runs ]; do echo "$model,0.0$((40 + i)),61440000,12,$i" >> "$result"; '
        "i=$((i + 1)); done\n"
        "cat <<'EOF'\n" + stdout + "EOF\n"
    )
    return path


def test_official_binaries_time_litert_and_onnxruntime_cells(emulator, key, export_root, tmp_path, monkeypatch):
    from mobileseg.device.adb_direct import AdbDevice, sha256_file

    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    bm = _fake_benchmark_model(tmp_path / "benchmark_model")
    pt = _fake_perf_test(tmp_path / "onnxruntime_perf_test")
    with AdbDevice.open(f"adb:127.0.0.1:{emulator}", key_path=key) as dev:
        dev.shell(f"rm -f {TOOL_LOG}")
    out = tmp_path / "results"
    rc = _bench(
        [
            "--device",
            f"adb:127.0.0.1:{emulator}",
            "--adb-transport",
            "direct",
            "--threads",
            "1",
            "-m",
            "topformer-t",
            "--res",
            "64x64",
            "--runtimes",
            "litert",
            "onnxruntime",
            "ncnn",
            "--warmup",
            "1",
            "--repeats",
            "4",
            "--out",
            str(out),
            "--export-dir",
            str(export_root),
            "--tflite-benchmark",
            str(bm),
            "--ort-perf-test",
            str(pt),
            "--quiet",
        ]
    )
    assert rc == 0
    recs = {r["runtime"]: r for r in _records(out)}
    assert sorted(recs) == ["litert", "ncnn", "onnxruntime"]
    for r in recs.values():
        assert validate_record(r) == [], (r["runtime"], validate_record(r))
        assert r["status"] == "ok", (r["runtime"], r.get("error"))
    pinned = recs["ncnn"]["device"]["pinned_cpu"]
    # ncnn has no official binary here: the Python harness ran it, with parity checked on the ARM kernels
    assert recs["ncnn"]["harness"] == "device-python" and recs["ncnn"]["parity"]["rel_l2"] is not None

    lite = recs["litert"]
    assert lite["harness"] == "benchmark_model" and lite["parity"]["checked"] is False
    assert lite["samples_ms"] == [] and lite["stats_source"] == "tool-summary"
    assert lite["stats_ms"]["count"] == 4 and lite["stats_ms"]["median"] is None
    assert lite["stats_ms"]["mean"] == pytest.approx(47.7024) and lite["stats_ms"]["min"] == pytest.approx(46.873)
    assert lite["affinity"] == [pinned] and lite["runtime_settings"]["binary_sha256"] == sha256_file(bm)

    ort = recs["onnxruntime"]
    assert ort["harness"] == "onnxruntime_perf_test" and ort["parity"]["checked"] is False
    assert ort["samples_ms"] == pytest.approx([40.0, 41.0, 42.0, 43.0]) and ort["stats_source"] == "samples"
    assert ort["stats_ms"]["count"] == 4 and ort["stats_ms"]["median"] == pytest.approx(41.5)
    assert ort["affinity"] == [pinned]

    with AdbDevice.open(f"adb:127.0.0.1:{emulator}", key_path=key) as dev:
        rc, log = dev.shell(f"cat {TOOL_LOG}")
        assert rc == 0
        for tool, binary in (("benchmark_model", bm), ("onnxruntime_perf_test", pt)):
            remote = f"/data/local/tmp/mobileseg/bin/{tool}-{sha256_file(binary)[:12]}"
            assert dev.remote_sha256(remote) == sha256_file(binary)  # pushed and verified
    lines = [l for l in log.splitlines() if l.strip()]
    assert sorted(l.split()[0] for l in lines) == ["benchmark_model", "onnxruntime_perf_test"]
    by_tool = {l.split()[0]: l for l in lines}
    assert "--num_threads=1" in by_tool["benchmark_model"] and "--num_runs=4" in by_tool["benchmark_model"]
    assert " -x 1 " in by_tool["onnxruntime_perf_test"] and " -r 4 " in by_tool["onnxruntime_perf_test"]
    for line in lines:  # both ran under taskset on the pinned core, like the harness
        assert int(line.split("mask=")[1].strip(), 16) == 1 << pinned, line

    from mobileseg.cli import main

    assert main(["results", str(out), "--csv", str(tmp_path / "r.csv")]) == 0  # listing takes these records as is


def test_device_lost_mid_suite_keeps_finished_cells_and_resume_completes(key, tmp_path, monkeypatch, capsys):
    why = skip_reason()
    if why:
        pytest.skip(why)
    from mobileseg.bench.targets import adb as adb_target

    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    export = tmp_path / "export"
    for h in (64, 128, 256):
        _onnx_export(export / f"topformer-t_{h}x{h}", "topformer-t", h, h)
    out = tmp_path / "results"
    proc, port = control.launch(adb_keys=key.parent / "adb_keys", refuse_new_keys=True, rootfs=str(build.rootfs_dir()))
    real_run_cell = adb_target.AdbTarget.run_cell
    calls = []

    def run_then_pull_the_plug(self, cell, *a, **k):
        if calls:  # the second cell: the device disappears
            control.terminate(proc)
        calls.append(cell)
        return real_run_cell(self, cell, *a, **k)

    monkeypatch.setattr(adb_target.AdbTarget, "run_cell", run_then_pull_the_plug)
    args = [
        "--threads",
        "1",
        "-m",
        "topformer-t",
        "--res",
        "64x64",
        "128x128",
        "256x256",
        "--runtimes",
        "onnxruntime",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--out",
        str(out),
        "--export-dir",
        str(export),
        "--quiet",
    ]
    try:
        rc = _bench(["--device", f"adb:127.0.0.1:{port}", "--adb-transport", "direct", *args])
    finally:
        control.terminate(proc)
    err = capsys.readouterr().err
    assert rc == 2 and "was lost" in err and "--resume" in err and "2 cell(s) left" in err, err
    assert "Traceback" not in err
    assert len(calls) == 2  # the run stopped at the lost cell: the third one was not tried
    files = list(out.glob("*.jsonl"))
    first = [json.loads(l) for l in files[0].read_text().splitlines() if l.strip()]
    # only the finished cell is kept: neither the lost cell nor the one after it is recorded as an error
    assert [r["resolution"] for r in first] == [[64, 64]] and first[0]["status"] == "ok"

    monkeypatch.setattr(adb_target.AdbTarget, "run_cell", real_run_cell)
    proc2, port2 = control.launch(
        adb_keys=key.parent / "adb_keys", refuse_new_keys=True, rootfs=str(build.rootfs_dir())
    )
    try:
        rc = _bench(["--device", f"adb:127.0.0.1:{port2}", "--adb-transport", "direct", "--resume", *args])
    finally:
        control.terminate(proc2)
    assert rc == 0
    recs = [json.loads(l) for l in files[0].read_text().splitlines() if l.strip()]
    assert sorted(tuple(r["resolution"]) for r in recs) == [(64, 64), (128, 128), (256, 256)]
    assert all(r["status"] == "ok" and r["emulated"] and validate_record(r) == [] for r in recs)
