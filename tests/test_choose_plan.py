"""What ``mobileseg choose`` races (candidates) and what it hands over (the card), without measuring anything."""

from __future__ import annotations

import pytest

from mobileseg.choose import accuracy, card
from mobileseg.choose.candidates import Candidate, CandidateError, plan
from mobileseg.choose.race import Arm, Observation, Race


def test_the_default_is_every_segmentation_model_at_its_paper_size_in_every_precision_of_the_runtime():
    from mobileseg.registry import get_spec, list_models

    cands, notes = plan(runtimes=["torch", "onnxruntime"])
    models = list_models(task="segmentation")
    assert {c.model for c in cands} == set(models)
    assert all(c.resolution == tuple(get_spec(c.model).default_resolution) for c in cands)
    assert {c.precision for c in cands if c.runtime == "torch"} == {"fp32"}
    assert {c.precision for c in cands if c.runtime == "onnxruntime"} == {"fp32", "fp16", "int8"}
    assert len(cands) == 4 * len(models) and not notes


def test_named_precisions_a_runtime_lacks_are_left_out_with_a_note():
    cands, notes = plan(["topformer-t"], ["64"], ["torch", "ncnn"], ["fp32", "int8"])
    assert [c.id for c in cands] == [
        "topformer-t 64x64 torch fp32",
        "topformer-t 64x64 ncnn fp32",
        "topformer-t 64x64 ncnn int8",
    ]
    assert notes == ["torch: no int8 artifacts; only fp32"]
    with pytest.raises(CandidateError, match="runtime torch has no int8 artifacts"):
        plan(["topformer-t"], ["64"], ["torch"], ["int8"], explicit_runtimes=True)


def test_published_accuracy_only_for_fp32_at_the_published_size():
    table = accuracy.published_table()
    if table is None:
        pytest.skip("the published numbers need pandas (the report extra)")
    fp32 = accuracy.published(Candidate("topformer-t", (512, 512), "onnxruntime"), table)
    assert fp32.kind == "published" and fp32.miou and "published fp32 mIoU" in fp32.source
    int8 = accuracy.published(Candidate("topformer-t", (512, 512), "onnxruntime", "int8"), table)
    assert int8.kind == "none" and int8.miou is None and int8.proxy == fp32.miou
    assert "--calib" in int8.settle and "accuracy not measured" in int8.source
    small = accuracy.published(Candidate("topformer-t", (64, 64), "onnxruntime"), table)
    assert small.miou is None and "not at 64x64" in small.source


def test_the_card_carries_artifact_runtime_contract_latency_device_memory_parity_accuracy_and_command(tmp_path):
    cand = Candidate("topformer-t", (64, 64), "onnxruntime")
    rec = {
        "runtime_version": "1.0",
        "runtime_settings": {"threads": 1},
        "harness": "python-inproc",
        "device": {"kind": "local", "model": "host-x", "cores": 2},
        "memory": {"peak_rss_growth_mb": 12.5},
        "parity": {"rel_l2": 1e-7, "limit_rel_l2": 1e-4, "argmax_agree": 1.0, "ok": True},
        "load_ms": 3.0,
    }
    man = {
        "formats": {"onnx": {"files": [{"path": "model.onnx", "bytes": 2_000_000, "sha256": "ab" * 32}]}},
        "input": {
            "name": "input",
            "shape": [1, 3, 64, 64],
            "dtype": "float32",
            "layout": "NCHW",
            "mean": [1, 2, 3],
            "std": [4, 5, 6],
        },
        "output": {"name": "logits", "shape": [1, 150, 8, 8]},
    }
    arm = Arm(id=cand.id, accuracy=None, proxy=32.5)
    race = Race([arm], 33.0)
    race.observe(arm.id, Observation([1.0 + 0.01 * (i % 7) for i in range(10)]))
    race.settle()
    ev = accuracy.Evidence("none", None, "accuracy not measured (test)", proxy=32.5)
    c = card.build(cand, arm, [rec], man, tmp_path / "export", ev, race, "mobileseg choose --budget-ms 33")
    assert c["decision"] == "chosen" and c["artifact"]["sha256"] == "ab" * 32 and c["size_mb"] == 2.0
    assert c["runtime"] == {
        "name": "onnxruntime",
        "version": "1.0",
        "settings": {"threads": 1},
        "harness": "python-inproc",
        "int8": None,
    }
    assert c["input"]["mean"] == [1, 2, 3] and c["device"] == {"kind": "local", "model": "host-x", "cores": 2}
    lo, hi = c["latency"]["interval_ms"]
    assert lo <= c["latency"]["median_ms"] <= hi and c["latency"]["samples"] == 10
    assert c["memory"]["peak_rss_growth_mb"] == 12.5 and c["parity"]["ok"] is True
    assert c["accuracy"]["proxy_miou"] == 32.5 and "--target-ci 1" in c["reproduce"]["bench"]
    paths = card.write(c, tmp_path / "out")
    md = paths[1].read_text()
    assert "| sha256 | `" + "ab" * 32 in md and "accuracy not measured (test)" in md and "budget 33 ms" in md
