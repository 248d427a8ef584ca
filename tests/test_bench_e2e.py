"""End to end on this host with the real export stage and runtime adapters: ``mobileseg bench --device local``."""

import os

import pytest

from mobileseg.results.record import validate_record
from mobileseg.results.store import ResultStore
from mobileseg.cli import main


def _bench(tmp_path, runtimes, extra=()):
    argv = [
        "bench",
        "--device",
        "local",
        "--threads",
        "1",
        "--models",
        "topformer-t",
        "--res",
        "64",
        "--runtimes",
        *runtimes,
        "--warmup",
        "1",
        "--repeats",
        "3",
        "--out",
        str(tmp_path / "results"),
        "--export-dir",
        str(tmp_path / "export"),
        "--quiet",
        *extra,
    ]
    return main(argv)


def _check(records, runtimes):
    assert [r["runtime"] for r in records] == list(runtimes)
    last_cpu = sorted(os.sched_getaffinity(0))[-1]
    for r in records:
        assert validate_record(r) == [], (r["runtime"], validate_record(r), r.get("error"))
        assert r["status"] == "ok", (r["runtime"], r.get("error"), r["parity"])
        assert r["parity"]["rel_l2"] <= r["parity"]["limit_rel_l2"] and r["parity"]["argmax_agree"] > 0.99
        assert r["affinity"] == [last_cpu] and r["device"]["pinned_cpu"] == last_cpu
        assert r["harness"] == "python-inproc" and r["threads"] == 1 and r["resolution"] == [64, 64]
        assert r["stats_ms"]["count"] == 3 == len(r["samples_ms"]) and r["warmup"] == 1
        assert r["overhead_ms"] is not None and r["sgemm"]["macs_per_s"] > 0
        assert r["runtime_version"] and r["host"]["cpu_model"] and r["versions"]["numpy"]
        assert r["gflops"] > 0 and r["artifact"]["manifest"].endswith("manifest.json")


def test_bench_local_onnxruntime_and_resume(tmp_path, capsys):
    before = os.sched_getaffinity(0)
    assert _bench(tmp_path, ["onnxruntime"]) == 0
    assert os.sched_getaffinity(0) == before  # the pin is undone when the target closes
    files = list((tmp_path / "results").glob("host-*-t1.jsonl"))
    assert len(files) == 1
    records = ResultStore(files[0]).read()
    _check(records, ["onnxruntime"])
    capsys.readouterr()
    assert _bench(tmp_path, ["onnxruntime"], ["--resume"]) == 0
    assert "0 cell(s) measured, 1 skipped" in capsys.readouterr().out
    assert len(ResultStore(files[0]).read()) == 1


@pytest.mark.slow
def test_bench_local_every_runtime(tmp_path):
    # ncnn (pnnx) and LiteRT (litert-torch) conversions take minutes on one shared core: slow.
    runtimes = ["onnxruntime", "ncnn", "litert", "torch"]
    assert _bench(tmp_path, runtimes) == 0
    files = list((tmp_path / "results").glob("host-*-t1.jsonl"))
    _check(ResultStore(files[0]).read(), runtimes)
