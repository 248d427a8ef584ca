"""The emulated ARM64 device end to end: adbd serving the arm64 rootfs under proot + qemu-aarch64 (cortex-a76).

Needs ``mobileseg emulator build`` first (CI builds it); skipped with the reason otherwise. Timings under qemu are
meaningless: only the numbers computed by the ARM kernels (parity) and the plumbing are checked.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("adb_shell")

from mobileseg.emulator import build, control  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.emulator]


def _skip_reason() -> str | None:
    missing = [t for t in ("proot", "qemu-aarch64-static") if not shutil.which(t)]
    if missing:
        return f"{', '.join(missing)} not installed (sudo apt-get install proot qemu-user-static)"
    if not build.is_built():
        return "the emulated device is not built: run `mobileseg emulator build` first"
    return None


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    from mobileseg.device.adb import load_signer

    path = tmp_path_factory.mktemp("adbhome") / "adbkey"
    load_signer(path)
    keys = path.parent / "adb_keys"
    keys.write_text(open(str(path) + ".pub").read())
    return path


@pytest.fixture(scope="module")
def emulator(key):
    why = _skip_reason()
    if why:
        pytest.skip(why)
    proc, port = control.launch(adb_keys=key.parent / "adb_keys", refuse_new_keys=True,
                                rootfs=str(build.rootfs_dir()))
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
    torch.onnx.export(model, (torch.from_numpy(x),), str(folder / "model.onnx"), input_names=["input"],
                      output_names=["output"], opset_version=17, dynamo=False)
    (folder / "reference").mkdir(exist_ok=True)
    np.save(folder / "reference" / "input.npy", x)
    np.save(folder / "reference" / "output.npy", ref)
    data = (folder / "model.onnx").read_bytes()
    man = {"schema_version": 1, "model": model_name, "resolution": [h, w], "num_classes": int(ref.shape[1]),
           "graph": "logits", "precision": "fp32",
           "input": {"name": "input", "shape": list(x.shape), "dtype": "float32", "layout": "NCHW"},
           "output": {"name": "output", "shape": list(ref.shape), "dtype": "float32"},
           "formats": {"onnx": {"files": [{"path": "model.onnx", "bytes": len(data),
                                           "sha256": hashlib.sha256(data).hexdigest()}],
                                "input_name": "input", "output_name": "output", "ok": True}}}
    (folder / "manifest.json").write_text(json.dumps(man))
    return folder


def test_runtimes_import_under_qemu(emulator, key):
    from mobileseg.device.adb import AdbDevice

    with AdbDevice.open(f"adb:127.0.0.1:{emulator}", key_path=key) as dev:
        rc, out = dev.shell("uname -m; python3 -c 'import numpy, ncnn, onnxruntime; "
                            "from ai_edge_litert.interpreter import Interpreter; "
                            "print(numpy.__version__, ncnn.__version__, onnxruntime.__version__)'", timeout=300)
        assert rc == 0, out
        lines = out.split()
        assert lines[0] == "aarch64"
        assert len(lines) == 4
        assert dev.shell("exit 9")[0] == 9
        assert "emulated" in dev.getprop("ro.product.model")


def test_probe_reports_an_emulated_arm64_device(emulator, key):
    from mobileseg.device.adb_target import AdbTarget

    with AdbTarget.open(f"adb:127.0.0.1:{emulator}", key_path=key) as t:
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
    from mobileseg.device.adb_target import AdbTarget
    from mobileseg.parity import compare

    folder = _onnx_export(tmp_path / "export" / "topformer-t_64x64", "topformer-t", 64, 64)
    man = json.loads((folder / "manifest.json").read_text())
    cell = Cell("topformer-t", (64, 64), "onnxruntime")
    with AdbTarget.open(f"adb:127.0.0.1:{emulator}", key_path=key) as t:
        t.prepare(folder, "onnx")
        run = t.run_cell(cell, folder, man, warmup=0, repeats=2, min_time=None)
    assert len(run.samples_ms) == 2 and all(s > 0 for s in run.samples_ms)
    assert run.harness == "device-python" and run.affinity == [int(t.describe()["pinned_cpu"])]
    p = compare(run.output, np.load(folder / "reference" / "output.npy"))
    assert p["ok"], p


def _bench(argv):
    from mobileseg.cli import main

    return main(["bench", *argv])


def test_bench_three_runtimes_on_the_emulated_device(emulator, key, tmp_path, monkeypatch):
    pytest.importorskip("mobileseg.export.api", reason="the export stage (mobileseg.export.api) is not installed")
    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    from mobileseg.export.api import export_model

    out = tmp_path / "results"
    export_model("topformer-t", resolution=(64, 64), formats=("onnx", "ncnn", "tflite"),
                 out=str(tmp_path / "export" / "topformer-t_64x64"))  # host-side parity is checked by the export
    rc = _bench(["--device", f"adb:127.0.0.1:{emulator}", "--threads", "1", "-m", "topformer-t", "--res", "64x64",
                 "--runtimes", "ncnn", "onnxruntime", "litert", "--warmup", "1", "--repeats", "3", "--out", str(out),
                 "--export-dir", str(tmp_path / "export"), "--quiet"])
    assert rc == 0
    recs = [json.loads(l) for f in out.glob("*.jsonl") for l in f.read_text().splitlines() if l.strip()]
    assert sorted(r["runtime"] for r in recs) == ["litert", "ncnn", "onnxruntime"]
    for r in recs:
        assert r["emulated"] is True and r["device"]["emulated"] is True
        assert r["harness"] == "device-python"
        assert r["status"] == "ok", (r["runtime"], r.get("error"), r["parity"])
        assert r["parity"]["rel_l2"] is not None and r["parity"]["rel_l2"] <= r["parity"]["limit_rel_l2"]
        assert len(r["samples_ms"]) == 3


def test_device_lost_mid_suite_keeps_finished_cells_and_resume_completes(key, tmp_path, monkeypatch, capsys):
    why = _skip_reason()
    if why:
        pytest.skip(why)
    from mobileseg.device import adb_target

    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    export = tmp_path / "export"
    for h in (64, 128):
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
    args = ["--threads", "1", "-m", "topformer-t", "--res", "64x64", "128x128", "--runtimes", "onnxruntime",
            "--warmup", "0", "--repeats", "1", "--out", str(out), "--export-dir", str(export), "--quiet"]
    try:
        rc = _bench(["--device", f"adb:127.0.0.1:{port}", *args])
    finally:
        control.terminate(proc)
    err = capsys.readouterr().err
    assert rc == 2 and "lost" in err and "--resume" in err
    files = list(out.glob("*.jsonl"))
    first = [json.loads(l) for l in files[0].read_text().splitlines() if l.strip()]
    assert [r["resolution"] for r in first] == [[64, 64]] and first[0]["status"] == "ok"

    monkeypatch.setattr(adb_target.AdbTarget, "run_cell", real_run_cell)
    proc2, port2 = control.launch(adb_keys=key.parent / "adb_keys", refuse_new_keys=True,
                                  rootfs=str(build.rootfs_dir()))
    try:
        rc = _bench(["--device", f"adb:127.0.0.1:{port2}", "--resume", *args])
    finally:
        control.terminate(proc2)
    assert rc == 0
    recs = [json.loads(l) for l in files[0].read_text().splitlines() if l.strip()]
    assert sorted(tuple(r["resolution"]) for r in recs) == [(64, 64), (128, 128)]
    assert all(r["status"] == "ok" and r["emulated"] for r in recs)
