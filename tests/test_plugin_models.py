"""Models mobileseg does not define: ``--model pkg.mod:fn --input-shape`` (export and bench) and the
``mobileseg.models`` entry-point group, with a small package this test writes into a temporary folder (a module
plus a ``.dist-info`` with ``entry_points.txt``, found through ``sys.path`` / ``PYTHONPATH``; nothing is installed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

NETS = '''
import torch
from torch import nn

from mobileseg.registry import ModelSpec


def build(num_classes=4):
    """A user's segmentation net: conv + BatchNorm (to be folded) + ReLU + classifier, logits at 1/2."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, num_classes, 1))


def build_plugin(num_classes=6, **kw):
    torch.manual_seed(0)
    return build(num_classes)


build_plugin.spec = ModelSpec(name="tiny-plug", family="tinyplug", default_resolution=(64, 64), output_stride=2,
                              num_classes=6, paper="a test plugin")


def not_a_module():
    return 42


def broken():
    raise RuntimeError("no weights here")
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugins")
    (d / "tinypkg").mkdir()
    (d / "tinypkg" / "__init__.py").write_text("")
    (d / "tinypkg" / "nets.py").write_text(NETS)
    info = d / "tinyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent("""\
        [mobileseg.models]
        tiny-plug = tinypkg.nets:build_plugin
        broken-plug = tinypkg.missing:nothing
    """)
    )
    return d


@pytest.fixture
def on_path(plugin_dir, monkeypatch):
    from mobileseg.models import external

    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.setattr(external, "_loaded_entry_points", False)
    monkeypatch.setattr(external, "_SPECS", {})
    from mobileseg import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return plugin_dir


def _cli(plugin_dir, *argv, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(plugin_dir)]))
    return subprocess.run(
        [sys.executable, "-m", "mobileseg", *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_factory_export_folds_bn_converts_and_checks_parity(on_path, tmp_path):
    pytest.importorskip("onnxruntime")
    from mobileseg.export import export_model

    res = export_model(
        "tinypkg.nets:build", input_shape="1x3x64x64", formats=["onnx", "torch"], out=str(tmp_path / "out")
    )
    man = res.manifest
    assert res.ok, res.failures()
    assert man["model"] == "tinypkg.nets:build" and man["resolution"] == [64, 64]
    assert man["output"]["shape"] == [1, 4, 32, 32] and man["output"]["stride"] == 2
    assert man["fold"]["batchnorm_before"] == 1 and man["fold"]["batchnorm_after"] == 0
    onnx = man["formats"]["onnx"]
    assert onnx["parity"]["ok"] and onnx["parity"]["rel_l2"] < 1e-5
    assert "BatchNormalization" not in onnx["op_histogram"]
    from mobileseg.manifest import export_dir_name

    assert export_dir_name("tinypkg.nets:build", (64, 64)) == "tinypkg.nets-build_64x64"


def test_factory_errors_are_one_sentence(on_path):
    from mobileseg.errors import MobilesegError
    from mobileseg.registry import create_model

    cases = [
        ("tinypkg.nets:nope", "has no 'nope'"),
        ("tinypkg.nope:build", "cannot import 'tinypkg.nope'"),
        ("tinypkg.nets:not_a_module", "not a torch nn.Module"),
        ("tinypkg.nets:broken", "no weights here"),
    ]
    for name, want in cases:
        with pytest.raises(MobilesegError, match=want):
            create_model(name)
    from mobileseg.export import export_model

    with pytest.raises(MobilesegError, match="takes --res"):
        export_model("topformer-t", input_shape="1x3x64x64")
    with pytest.raises(MobilesegError, match="N x C x H x W"):
        export_model("tinypkg.nets:build", input_shape="64x64")
    with pytest.raises(MobilesegError, match="disagree"):
        export_model("tinypkg.nets:build", resolution=128, input_shape="1x3x64x64")


def test_entry_point_found_by_create_model_and_list(on_path):
    import mobileseg

    with pytest.warns(UserWarning, match="broken-plug"):  # a plugin that fails to load is left out, with a warning
        names = mobileseg.list_models("tiny*")
    assert names == ["tiny-plug"]
    m = mobileseg.create_model("tiny-plug")
    assert m.spec.family == "tinyplug" and m.spec.num_classes == 6
    assert mobileseg.create_model("tiny-plug", num_classes=3)[-1].out_channels == 3


@pytest.mark.slow
def test_cli_models_export_and_bench_end_to_end(plugin_dir, tmp_path):
    """In fresh processes, as a user runs it: the entry point in `mobileseg models`, then export and bench of a
    factory given as pkg.mod:fn."""
    pytest.importorskip("onnxruntime")
    r = _cli(plugin_dir, "models", "tiny*", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [s["name"] for s in json.loads(r.stdout)] == ["tiny-plug"]
    r = _cli(
        plugin_dir,
        "export",
        "--model",
        "tinypkg.nets:build",
        "--input-shape",
        "1x3x64x64",
        "--formats",
        "onnx",
        "ncnn",
        "--quiet",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    man = json.loads((tmp_path / "export" / "tinypkg.nets-build_64x64" / "manifest.json").read_text())
    assert all(e["ok"] for e in man["formats"].values())
    r = _cli(
        plugin_dir,
        "bench",
        "--models",
        "tinypkg.nets:build",
        "--res",
        "64",
        "--runtimes",
        "onnxruntime",
        "--warmup",
        "1",
        "--repeats",
        "2",
        "--no-sgemm",
        "--quiet",
        "--out",
        "runs",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (rec,) = [json.loads(line) for p in (tmp_path / "runs").glob("*.jsonl") for line in p.read_text().splitlines()]
    assert rec["model"] == "tinypkg.nets:build" and rec["status"] == "ok" and rec["parity"]["ok"]
