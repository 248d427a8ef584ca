"""int8 on the ARM kernels: ``mobileseg bench --device adb --precisions int8`` on the emulated ARM64 device, every
int8 runtime the device runs (Python harness on the debian profile, the native ncnn harness on the stock-Android
profile), each record holding its int8 output against the same artifact's int8 output on this x86 host."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("adb_shell")

from emulated_devices import launch, native_harness  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.emulator]
# ARM and x86 int8 kernels round differently (measured at 128 px, synthetic calibration: ncnn rel L2 7.2e-3,
# onnxruntime 4.5e-3, LiteRT 0; argmax agreement 1.0): the limits leave room for 64 px and random weights
MAX_REL_L2, MIN_ARGMAX_AGREE = 0.05, 0.95


@pytest.fixture(scope="module")
def export_root(tmp_path_factory):
    return tmp_path_factory.mktemp("int8-export")


def _bench(port, harness, runtimes, out, export_root):
    from mobileseg.cli import main

    rc = main(
        [
            "bench",
            "--device",
            f"adb:127.0.0.1:{port}",
            "--adb-transport",
            "direct",
            "--models",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            *runtimes,
            "--precisions",
            "int8",
            "--repeats",
            "3",
            "--harness",
            harness,
            "--results-file",
            str(out),
            "--export-dir",
            str(export_root),
            "--quiet",
        ]
    )
    assert rc == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize(
    "profile, harness, runtimes",
    [
        ("debian", "python", ["ncnn", "onnxruntime", "litert"]),
        ("android", "native", ["ncnn"]),
    ],
)
def test_int8_cells_on_arm_agree_with_the_host_int8_output(
    key, tmp_path, export_root, profile, harness, runtimes, monkeypatch
):
    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))  # the direct transport signs with its adbkey
    if harness == "native":
        native_harness()
    from mobileseg.emulator import control

    proc, port = launch(key, profile)
    try:
        recs = _bench(port, harness, runtimes, tmp_path / "r.jsonl", export_root)
    finally:
        control.terminate(proc)
    assert sorted(r["runtime"] for r in recs) == sorted(runtimes)
    for r in recs:
        assert r["status"] == "ok" and r["precision"] == "int8", r.get("error")
        assert r["harness"] == ("native-ncnn" if harness == "native" else "device-python")
        agree = r["host_int8_agreement"]
        assert agree["host_runtime"] == r["runtime"], agree
        assert agree["rel_l2"] <= MAX_REL_L2 and agree["argmax_agree"] >= MIN_ARGMAX_AGREE, (r["runtime"], agree)
        assert r["int8"]["scheme"] and "synthetic" in json.dumps(r["int8"]), r["int8"]
        assert r["parity"]["sqnr_db"] >= r["parity"]["limit_sqnr_db"], r["parity"]
