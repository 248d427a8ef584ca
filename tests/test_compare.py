"""mobileseg compare: the ratio of medians, its interval, the verdict and the CI gate; --run interleaves A and B."""

import json

import numpy as np
import pytest

from fake_session import FakeRuntime, export_dir, use_fake_runtime
from mobileseg.cli import main
from mobileseg.results.compare import SAME, SLOWER, compare_records, match_key, ratio_interval


def _rec(device, samples, model="topformer-t", ts="2026-01-01T00:00:00"):
    return {
        "id": f"{device}|{model}|64x64|onnx|onnxruntime|fp32|logits|t1",
        "model": model,
        "resolution": [64, 64],
        "format": "onnx",
        "runtime": "onnxruntime",
        "status": "ok",
        "samples_ms": list(samples),
        "stats_ms": {"median": float(np.median(samples))},
        "timestamp": ts,
    }


def test_key_drops_the_device_part():
    assert (
        match_key(_rec("phone-a", [1.0]))
        == match_key(_rec("host-b", [1.0]))
        == "topformer-t|64x64|onnx|onnxruntime|fp32|logits|t1"
    )


def test_ratio_interval_covers_the_true_ratio_on_known_distributions():
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(200):
        a = 10.0 * rng.lognormal(0.0, 0.1, 40)
        b = 12.0 * rng.lognormal(0.0, 0.1, 40)  # true ratio of medians: 1.2
        _, lo, hi = ratio_interval(a, b, seed=trial, resamples=500)
        covered += lo <= 1.2 <= hi
    assert covered / 200 >= 0.90


def test_matching_newest_wins_unmatched_listed_and_pairwise_fallback():
    rng = np.random.default_rng(2)
    a = [_rec("d1", 10 + rng.normal(0, 0.1, 30)), _rec("d1", 10 + rng.normal(0, 0.1, 30), model="segformer-b0")]
    old = _rec("d2", 20 + rng.normal(0, 0.1, 30), ts="2025-01-01")
    new = _rec("d2", 10 + rng.normal(0, 0.1, 30), ts="2026-06-01")
    comps, only_a, only_b = compare_records(a, [old, new])
    assert [c.verdict for c in comps] == [SAME] and only_a == ["segformer-b0|64x64|onnx|onnxruntime|fp32|logits|t1"]
    comps, _, _ = compare_records([a[1]], [new])  # one cell each, different keys: compared with each other
    assert len(comps) == 1 and " vs " in comps[0].key


@pytest.fixture
def two_exports(tmp_path):
    a, _ = export_dir(tmp_path / "a")
    b, _ = export_dir(tmp_path / "b")
    return a, b


class PerExportRuntime(FakeRuntime):
    """A fake runtime whose sessions' call times depend on the export: seeded noise times base, plus extra ms."""

    def __init__(self, extra_ms_by_dir):
        super().__init__()
        self.extra = extra_ms_by_dir

    def load(self, export_dir, fmt_entry, threads=1, precision="fp32"):
        from fake_session import FakeSession

        rng = np.random.default_rng(5)  # the same noise sequence for both: identical artifacts are identical
        extra = self.extra[str(export_dir)]
        return FakeSession(0, 0, lambda: BASE_MS * rng.lognormal(0.0, 0.05) + extra, sleep=True)


BASE_MS = 10.0


def _run_compare(capsys, args):
    rc = main(["compare", *args, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_identical_artifacts_show_no_difference_and_pass_the_gate(two_exports, monkeypatch, capsys, tmp_path):
    a, b = two_exports
    use_fake_runtime(monkeypatch, PerExportRuntime({str(a): 0.0, str(b): 0.0}))
    rc, out = _run_compare(
        capsys,
        [
            "--run",
            str(a),
            str(b),
            "--runtime",
            "onnxruntime",
            "--repeats",
            "30",
            "--warmup",
            "2",
            "--fail-if-slower",
            "5",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    (c,) = out["comparisons"]
    assert c["verdict"] == SAME and c["ratio_low"] <= 1.0 <= c["ratio_high"], c
    assert rc == 0
    # the records --run wrote compare again from the files (the file path of compare)
    recs = (tmp_path / "o" / "compare-run.jsonl").read_text().splitlines()
    assert len(recs) == 2
    (tmp_path / "A.jsonl").write_text(recs[0] + "\n")
    (tmp_path / "B.jsonl").write_text(recs[1] + "\n")
    rc, out = _run_compare(capsys, [str(tmp_path / "A.jsonl"), str(tmp_path / "B.jsonl")])
    assert rc == 0 and out["comparisons"][0]["verdict"] == SAME


def test_an_artifact_slowed_by_a_known_wait_is_slower_and_fails_the_gate(two_exports, monkeypatch, capsys):
    a, b = two_exports
    use_fake_runtime(monkeypatch, PerExportRuntime({str(a): 0.0, str(b): 5.0}))
    rc, out = _run_compare(
        capsys,
        [
            "--run",
            str(a),
            str(b),
            "--runtime",
            "onnxruntime",
            "--repeats",
            "30",
            "--warmup",
            "2",
            "--fail-if-slower",
            "10",
        ],
    )
    (c,) = out["comparisons"]
    # the noise's median is 1 (lognormal(0, s)) and both sides share it; a sleep also waits for the wake-up
    # (tens of microseconds, the same on both sides), which moves the true ratio by well under 1%
    true_ratio = (BASE_MS + 5.0) / BASE_MS
    assert c["verdict"] == SLOWER
    assert c["ratio_low"] <= true_ratio <= c["ratio_high"], c
    assert rc == 1 and out["regressions"] == [c["key"]]


def test_bad_inputs_are_one_sentence(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing.jsonl"), str(tmp_path / "x.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["compare", "--run", str(tmp_path / "nofolder"), str(tmp_path)]) == 2
    assert "not a folder" in capsys.readouterr().err
    a = tmp_path / "a.jsonl"
    a.write_text(json.dumps(_rec("d", [1.0, 1.1, 1.2])) + "\n" + json.dumps(_rec("d", [1.0, 1.1], model="m2")) + "\n")
    b = tmp_path / "b.jsonl"
    b.write_text(json.dumps(_rec("d", [1.0, 1.1], model="m3")) + "\n" + json.dumps(_rec("d", [1.0], model="m4")) + "\n")
    assert main(["compare", str(a), str(b)]) == 2
    assert "no cell of" in capsys.readouterr().err
    assert main(["compare", str(a), str(a), "--fail-if-slower", "-3"]) == 2
