"""Per-layer numerics from the emulated ARM64 device: the Python harness (ncnn, onnxruntime) and the native ncnn
harness return every intermediate tensor as one file, and a fault injected into the pushed artifact is named there.

Slow: each capture runs the model once under qemu (about half a minute for TopFormer-T at 64 px).
"""

from __future__ import annotations

import pytest

pytest.importorskip("adb_shell")

from emulated_devices import launch  # noqa: E402

from mobileseg.numerics.analyze import per_layer  # noqa: E402
from mobileseg.bench.suite import Cell  # noqa: E402
from mobileseg.numerics.device_capture import NoIntermediatesError  # noqa: E402
from mobileseg.numerics.inject import perturb  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.emulator]
FAULT = "backbone.tpm.layer5.conv.4.c"


@pytest.fixture(scope="module")
def emulator(key):
    from mobileseg.emulator import control

    proc, port = launch(key)
    yield port
    control.terminate(proc)


@pytest.fixture(scope="module")
def faulty_export(tmp_path_factory):
    pytest.importorskip("pnnx")
    pytest.importorskip("onnxruntime")
    from mobileseg.export import export_model

    out = tmp_path_factory.mktemp("numerics-device") / "topformer-t_64x64"
    assert export_model("topformer-t", resolution=64, formats=["torch", "onnx", "ncnn"], out=str(out)).ok
    for fmt in ("onnx", "ncnn"):
        perturb(str(out), fmt, FAULT, "noise")
    return out


def _target(port, key, harness):
    from mobileseg.bench.targets.adb import AdbTarget

    return AdbTarget.open(f"adb:127.0.0.1:{port}", key_path=key, adb_transport="direct", harness=harness)


@pytest.mark.parametrize(
    "harness,runtime,fmt", [("python", "ncnn", "ncnn"), ("python", "onnxruntime", "onnx"), ("native", "ncnn", "ncnn")]
)
def test_the_device_returns_intermediates_and_names_the_injected_layer(
    emulator, key, faulty_export, harness, runtime, fmt
):
    if harness == "native":
        from mobileseg.device import native_build

        try:
            native_build.build_harness(jobs=2)
        except native_build.ToolchainError as exc:
            pytest.skip(str(exc))
    with _target(emulator, key, harness) as t:
        tensors, label = t.intermediates(str(faulty_export), Cell("faulty", (64, 64), runtime))
    assert label == f"adb:127.0.0.1:{emulator}"
    rep = per_layer(str(faulty_export), fmt, runtime=runtime, tensors=tensors, device=label)
    assert rep["summary"]["unmatched"] == 0  # at 64 px onnxsim removes the dead q/k convolutions: "removed"
    assert rep["summary"]["removed"] == (8 if fmt == "onnx" else 0)
    first = rep["first_diverging"]
    assert first and (first["module"] == FAULT or FAULT in first["fused"]), first
    assert first["previous_rel_l2"] < 1e-5 < first["rel_l2"]


def test_the_native_harness_cannot_return_onnx_tensors(emulator, key, faulty_export):
    with _target(emulator, key, "native") as t, pytest.raises(NoIntermediatesError, match="runs ncnn only"):
        t.intermediates(str(faulty_export), Cell("faulty", (64, 64), "onnxruntime"))
