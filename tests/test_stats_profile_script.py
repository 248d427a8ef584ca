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
