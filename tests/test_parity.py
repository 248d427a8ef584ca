"""One parity rule for export and bench (mobileseg.parity.check): an artifact export passed is not failed by bench."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mobileseg import parity
from mobileseg.bench import run_bench
from mobileseg.bench.targets import CellRun, Target


def class_maps(agree_share: float, seed: int = 0):
    """A reference class map (1 x 64 x 64, 5 classes) and an artifact's map that agrees on ``agree_share``."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 5, size=(1, 64, 64)).astype(np.int64)
    out = ref.copy()
    flat = out.reshape(-1)
    flip = rng.choice(flat.size, size=round((1 - agree_share) * flat.size), replace=False)
    flat[flip] = (flat[flip] + 1) % 5
    return out, ref


class FakeSession:
    settings = {"threads": 1}

    def __init__(self, out):
        self.out = out

    def run(self, x):
        return self.out

    def close(self):
        pass


class FakeRuntime:
    name = "onnxruntime"

    def __init__(self, out):
        self.out = out

    def load(self, *a, **k):
        return FakeSession(self.out)

    def version(self):
        return "0"


def export_verdict(monkeypatch, tmp_path, out, ref, precision):
    """What the export stage decides for an artifact whose runtime returns ``out`` (its own parity step)."""
    from mobileseg import runtimes
    from mobileseg.export import api
    from mobileseg.export.reference import Reference

    monkeypatch.setattr(runtimes, "runtime_for_format", lambda fmt: FakeRuntime(out))
    reference = Reference(None, {}, np.zeros((1, 3, 64, 64), np.float32), ref, np.zeros((1, 5, 64, 64)), {})
    fig = api.check_artifact(
        "onnx", {"files": []}, {"output": {"shape": list(ref.shape)}}, str(tmp_path), reference, precision, "argmax"
    )
    return fig["ok"]


class ClassMapTarget(Target):
    kind = "fake"

    def __init__(self, out):
        self.out = out

    def describe(self):
        return {"kind": "fake", "model": "fake"}

    def device_id(self):
        return "fake0"

    def run_cell(self, cell, export_dir, manifest, warmup, repeats, min_time):
        return CellRun(samples_ms=[1.0, 1.1, 1.2], output=self.out)


def bench_status(tmp_path, out, ref, precision):
    def export(model, res, formats, precision, graph, out):
        os.makedirs(os.path.join(out, "reference"), exist_ok=True)
        np.save(os.path.join(out, "reference", "input.npy"), np.zeros((1, 3, 64, 64), np.float32))
        np.save(os.path.join(out, "reference", "output.npy"), ref)
        man = {
            "model": model,
            "resolution": list(res),
            "graph": graph,
            "precision": precision,
            "num_classes": 5,
            "formats": {f: {"ok": True, "files": [{"path": f"model.{f}"}]} for f in formats},
        }
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(man, f)
        return man

    run = run_bench(
        models=["topformer-t"],
        resolutions=["64"],
        runtimes=["onnxruntime"],
        precisions=[precision],
        graphs=["argmax"],
        target=ClassMapTarget(out),
        export_fn=export,
        export_root=tmp_path / f"export-{precision}",
        results_file=tmp_path / f"r-{precision}.jsonl",
        progress=False,
        measure_reference=False,
    )
    return run[0]["status"]


@pytest.mark.parametrize(
    "precision, agree, passes", [("fp16", 0.985, True), ("fp32", 0.985, False), ("fp32", 0.9995, True)]
)
def test_export_and_bench_judge_an_argmax_artifact_alike(monkeypatch, tmp_path, precision, agree, passes):
    out, ref = class_maps(agree)
    assert export_verdict(monkeypatch, tmp_path, out, ref, precision) is passes
    assert bench_status(tmp_path, out, ref, precision) == ("ok" if passes else "parity_failed")


def test_limits_live_in_one_module():
    assert parity.check(*class_maps(0.985), "fp16", "argmax")["limit_argmax_agree"] == 0.98
    assert parity.check(np.ones((1, 2, 4, 4)), np.ones((1, 2, 4, 4)), "fp16")["limit_rel_l2"] == 2e-2
    bad = parity.check(np.zeros(3), np.zeros((1, 64, 64)), "fp32", "argmax")
    assert bad["ok"] is False and "shape" in bad["error"]
