"""The runner with a fake export stage and a fake target: records, parity, resume, interruption, clear errors.

The real export stage and runtimes are exercised end to end in test_bench_e2e.py.
"""
import json
import os
import sys

import numpy as np
import pytest

from mobileseg.bench import run_bench
from mobileseg.bench.record import validate_record
from mobileseg.bench.store import ResultStore
from mobileseg.bench.targets import CellRun, Target, TargetLostError
from mobileseg.cli import main


def fake_export(calls):
    def export(model, res, formats, precision, graph, out):
        calls.append((model, tuple(res), tuple(formats)))
        h, w = res
        folder = out
        os.makedirs(os.path.join(folder, "reference"), exist_ok=True)
        rng = np.random.default_rng(h)
        np.save(os.path.join(folder, "reference", "input.npy"), rng.standard_normal((1, 3, h, w), dtype=np.float32))
        np.save(os.path.join(folder, "reference", "output.npy"),
                rng.standard_normal((1, 5, h // 8, w // 8)).astype(np.float32) * 4)
        man = {"schema_version": 1, "model": model, "resolution": [h, w], "num_classes": 5, "graph": graph,
               "precision": precision, "formats": {f: {"ok": True, "files": [{"path": f"model.{f}",
                                                                             "sha256": "ab" * 32}]}
                                                   for f in formats}}
        with open(os.path.join(folder, "manifest.json"), "w") as fh:
            json.dump(man, fh)
        return man
    return export


class FakeTarget(Target):
    """Returns the reference output (times a factor per runtime) and fixed samples; can fail on chosen cells."""
    kind = "fake"

    def __init__(self, scale=None, fail=(), lose_at=None, interrupt_at=None):
        self.scale = scale or {}
        self.fail, self.lose_at, self.interrupt_at = set(fail), lose_at, interrupt_at
        self.ran = []
        self.closed = False

    def describe(self):
        return {"kind": "fake", "serial": "fake0", "model": "fake", "emulated": False}

    def device_id(self):
        return "fake0"

    def run_cell(self, cell, export_dir, manifest, warmup, repeats, min_time):
        n = len(self.ran)
        if self.interrupt_at == n:
            raise KeyboardInterrupt
        if self.lose_at == n:
            raise TargetLostError("device fake0 went away")
        self.ran.append(cell)
        if cell.runtime in self.fail:
            raise RuntimeError(f"{cell.runtime} crashed")
        ref = np.load(os.path.join(export_dir, "reference", "output.npy"))
        samples = [float(k + 1) for k in range(repeats)]
        return CellRun(samples_ms=samples, output=ref * self.scale.get(cell.runtime, 1.0), runtime_version="1.0",
                       runtime_settings={"threads": cell.threads}, affinity=[1], overhead_ms=0.0001)


def bench(tmp_path, target, **kw):
    calls = kw.pop("calls", [])
    kw.setdefault("models", ["topformer-t"])
    kw.setdefault("resolutions", [64])
    kw.setdefault("runtimes", ["onnxruntime", "ncnn"])
    kw.setdefault("repeats", 4)
    kw.setdefault("progress", False)
    return run_bench(target=target, export_fn=fake_export(calls), export_root=tmp_path / "export",
                     results_file=tmp_path / "r.jsonl", warmup=0, measure_reference=False, **kw)


def test_records_are_valid_and_parity_is_recorded(tmp_path):
    calls = []
    recs = bench(tmp_path, FakeTarget(scale={"ncnn": 1.01}), calls=calls)
    assert len(calls) == 1 and set(calls[0][2]) == {"onnx", "ncnn"}   # one export serves both cells
    assert [r["runtime"] for r in recs] == ["onnxruntime", "ncnn"]
    stored = ResultStore(tmp_path / "r.jsonl").read()
    assert stored == recs
    for r in stored:
        assert validate_record(r) == [], validate_record(r)
        assert r["stats_ms"]["median"] == 2.5 and r["samples_ms"] == [1.0, 2.0, 3.0, 4.0]
        assert r["gflops"] > 0 and r["params"] > 0
    ort, ncnn = stored
    assert ort["status"] == "ok" and ort["parity"]["ok"] and ort["parity"]["rel_l2"] == 0.0
    # a 1% scale error is far beyond the fp32 limit: recorded, and the cell is marked parity_failed
    assert ncnn["status"] == "parity_failed" and ncnn["parity"]["rel_l2"] == pytest.approx(0.01, rel=1e-3)
    assert ort["id"] == "fake0|topformer-t|64x64|onnx|onnxruntime|fp32|logits|t1"


def test_resume_skips_finished_cells_and_reuses_the_export(tmp_path):
    calls = []
    first = bench(tmp_path, FakeTarget(fail={"ncnn"}), calls=calls)
    assert [r["status"] for r in first] == ["ok", "error"] and "ncnn crashed" in first[1]["error"]
    target = FakeTarget()
    again = bench(tmp_path, target, calls=calls, resume=True)
    # onnxruntime finished earlier: skipped; the failed ncnn cell is measured again
    assert [c.runtime for c in target.ran] == ["ncnn"]
    assert again.skipped == ["fake0|topformer-t|64x64|onnx|onnxruntime|fp32|logits|t1"]
    # the export stage is asked once per run for everything the folder should hold (its own cache decides reuse)
    assert len(calls) == 2 and set(calls[1][2]) == {"onnx", "ncnn"}
    assert len(ResultStore(tmp_path / "r.jsonl").read()) == 3


@pytest.mark.parametrize("how", ["interrupt", "lost"])
def test_interrupt_or_lost_device_keeps_finished_cells(tmp_path, how):
    target = FakeTarget(**({"interrupt_at": 1} if how == "interrupt" else {"lose_at": 1}))
    with pytest.raises(KeyboardInterrupt if how == "interrupt" else TargetLostError):
        bench(tmp_path, target, runtimes=["onnxruntime", "ncnn", "litert"])
    kept = ResultStore(tmp_path / "r.jsonl").read()
    assert [r["runtime"] for r in kept] == ["onnxruntime"]
    target = FakeTarget()
    bench(tmp_path, target, runtimes=["onnxruntime", "ncnn", "litert"], resume=True)
    assert [c.runtime for c in target.ran] == ["ncnn", "litert"]


def test_progress_shows_done_total_and_eta(tmp_path, capsys):
    bench(tmp_path, FakeTarget(), runtimes=["onnxruntime", "ncnn", "torch"], progress=True)
    err = capsys.readouterr().err
    assert "[0/3] running topformer-t 64x64 onnxruntime" in err
    assert "[2/3] running topformer-t 64x64 torch" in err and "ETA" in err
    assert "[3/3] finished" in err


def test_missing_runtime_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # import onnxruntime now fails
    rc = main(["bench", "--device", "local", "--models", "topformer-t", "--res", "64", "--runtimes", "onnxruntime",
               "--out", str(tmp_path), "--export-dir", str(tmp_path / "export"), "--no-sgemm"])
    err = capsys.readouterr().err
    assert rc == 2 and "onnxruntime" in err and "pip install 'mobileseg[onnx]'" in err and "Traceback" not in err
    assert not (tmp_path / "export").exists()  # nothing exported or timed


def test_cpu_that_does_not_exist_is_a_clear_error(tmp_path, capsys):
    before = os.sched_getaffinity(0)
    rc = main(["bench", "--device", "local", "--cpu", "4096", "--models", "topformer-t", "--res", "64",
               "--runtimes", "torch", "--out", str(tmp_path), "--no-sgemm"])
    err = capsys.readouterr().err
    assert rc == 2 and "CPU 4096 does not exist" in err and "--cpu" in err
    assert os.sched_getaffinity(0) == before   # nothing was pinned


def test_unknown_device_and_bad_repeats(tmp_path, capsys):
    assert main(["bench", "--device", "usb", "--out", str(tmp_path)]) == 2
    assert "unknown device 'usb'" in capsys.readouterr().err
    from mobileseg.errors import MobilesegError
    with pytest.raises(MobilesegError, match="at least 1"):
        bench(tmp_path, FakeTarget(), repeats=0)
