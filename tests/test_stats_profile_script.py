"""device_scripts/profile_ops.py run on the host (as the device runs it) gives the same schema as the host profiler."""

import subprocess
import sys

import pytest

from mobileseg.bench.profile import from_device
from mobileseg.resources import project_path


def test_device_profiler_script_on_a_tiny_ncnn_model(tmp_path):
    pytest.importorskip("ncnn")
    from test_native import make_tiny_export

    folder, _ = make_tiny_export(tmp_path / "tiny")
    out = tmp_path / "ops.json"
    subprocess.run(
        [
            sys.executable,
            str(project_path("device_scripts", "profile_ops.py")),
            "--runtime",
            "ncnn",
            "--model",
            str(folder / "model.ncnn.param"),
            "--weights",
            str(folder / "model.ncnn.bin"),
            "--input",
            str(folder / "reference" / "input.npy"),
            "--out",
            str(out),
            "--runs",
            "3",
        ],
        check=True,
        timeout=120,
    )
    import json

    prof = from_device(json.loads(out.read_text()))
    assert prof["runs"] == 3 and prof["ops"] and prof["extract_overhead_ms"] >= 0
    assert {o["type"] for o in prof["ops"]} >= {"Convolution", "Interp"}
    assert abs(sum(o["share"] for o in prof["ops"]) - 1) < 1e-3
    assert all(len(o) == 5 for o in prof["ops"])  # name, type, module, median_ms, share


def test_host_profile_of_the_same_model_through_the_ncnn_adapter(tmp_path):
    """``bench --profile`` on the host: the ncnn adapter's ``op_profile``, read by the device script's reader."""
    pytest.importorskip("ncnn")
    import json

    import numpy as np
    from test_native import make_tiny_export

    from mobileseg.bench.profile import profile_local

    folder, _ = make_tiny_export(tmp_path / "tiny")
    entry = json.loads((folder / "manifest.json").read_text())["formats"]["ncnn"]
    x = np.load(folder / "reference" / "input.npy")
    prof = profile_local("ncnn", folder, entry, x, runs=3)
    assert prof["source"] == "ncnn-layer-extract" and prof["runs"] == 3
    assert {o["type"] for o in prof["ops"]} >= {"Convolution", "Interp"}
    assert prof["extract_overhead_ms"] >= 0 and prof["whole_inference_ms"] > 0
    assert abs(sum(o["share"] for o in prof["ops"]) - 1) < 1e-3
