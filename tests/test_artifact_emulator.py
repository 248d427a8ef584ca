"""``mobileseg bench --artifact`` over ADB on the emulated ARM64 device: files from torch.onnx.export,
litert_torch.convert and pnnx, run by the device's Python harness (ncnn, onnxruntime, LiteRT) and, on the android
profile, the native ncnn harness; each against the torch module's output. Timings under qemu mean nothing: the
numbers of the ARM kernels are what is checked. One tiny model (32x32), one timed call per cell.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("adb_shell")

import artifact_fixtures as af  # noqa: E402
from emulated_devices import skip_reason  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.emulator]
PORTS = (5660, 5661)  # this suite's own ports, apart from the other emulator tests'


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    for mod in ("onnx", "litert_torch", "pnnx"):
        pytest.importorskip(mod)
    d = tmp_path_factory.mktemp("foreign")
    x = np.random.default_rng(3).standard_normal((1, 3, af.SIZE, af.SIZE)).astype(np.float32)
    np.save(d / "x.npy", x)
    np.save(d / "ref.npy", af.torch_output(False, x))
    return {
        "onnx": af.write_onnx(d),
        "tflite": af.write_tflite(d),
        "nhwc": af.write_tflite(d, "nhwc.tflite", True),
        "ncnn": af.write_ncnn(d),
        "x": d / "x.npy",
        "ref": d / "ref.npy",
    }


def _launch(key, profile, port):
    why = skip_reason(profile or "debian")
    if why:
        pytest.skip(why)
    from mobileseg.emulator import build, control

    try:
        return control.launch(
            port=port,
            adb_keys=key.parent / "adb_keys",
            refuse_new_keys=True,
            rootfs=str(build.rootfs_dir(profile)),
            profile=profile,
        )
    except Exception as exc:  # the port is taken (another run of this suite)
        pytest.skip(f"cannot start the emulated device on port {port}: {exc}")


def _bench(port, tmp_path, *argv) -> tuple[int, list[dict]]:
    from mobileseg.cli import main

    out = tmp_path / "runs"
    rc = main(
        [
            "bench",
            "--device",
            f"adb:127.0.0.1:{port}",
            "--adb-transport",
            "direct",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--out",
            str(out),
            "--export-dir",
            str(tmp_path / "export"),
            "--quiet",
            *map(str, argv),
        ]
    )
    return rc, [json.loads(line) for p in sorted(out.glob("*.jsonl")) for line in p.read_text().splitlines()]


def test_foreign_files_on_the_device_python_harness(files, key, tmp_path, monkeypatch):
    from mobileseg.emulator import control
    from mobileseg.results.record import validate_record

    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))  # the direct transport signs with its adbkey
    proc, port = _launch(key, None, PORTS[0])
    try:
        rc, recs = _bench(
            port,
            tmp_path,
            "--harness",
            "python",
            "--artifact",
            files["onnx"],
            files["tflite"],
            files["nhwc"],
            files["ncnn"],
            "--input",
            files["x"],
            "--reference",
            files["ref"],
        )
    finally:
        control.terminate(proc)
    assert rc == 0, [r.get("error") for r in recs]
    assert [r["runtime"] for r in recs] == ["onnxruntime", "litert", "litert", "ncnn"]
    for r in recs:
        assert not validate_record(r) and r["emulated"] and r["harness"] == "device-python"
        assert r["parity"]["ok"] and r["parity"]["rel_l2"] < 1e-4, r["parity"]
        assert r["model_source"] == "artifact" and r["device"]["abi"].startswith(("arm64", "aarch64"))
    assert recs[2]["artifact"]["input"]["layout"] == "NHWC"


def test_foreign_ncnn_on_the_native_harness(files, key, tmp_path, monkeypatch):
    from mobileseg.device import native_build

    if native_build.harness_path() is None:
        pytest.skip("the native ncnn harness is not built: run `mobileseg harness build`")
    from mobileseg.emulator import control

    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    proc, port = _launch(key, "android", PORTS[1])
    try:
        rc, recs = _bench(
            port,
            tmp_path,
            "--harness",
            "native",
            "--artifact",
            files["ncnn"],
            "--input",
            files["x"],
            "--reference",
            files["ref"],
        )
    finally:
        control.terminate(proc)
    assert rc == 0 and len(recs) == 1, recs
    assert recs[0]["harness"] == "native-ncnn" and recs[0]["parity"]["ok"], recs[0]["parity"]
