"""The runner with a fake export stage and a fake target: records, parity, resume, interruption, clear errors.

The real export stage and runtimes are exercised end to end in test_bench_e2e.py.
"""

import json
import os
import sys

import numpy as np
import pytest

from mobileseg.bench import run_bench
from mobileseg.results.record import validate_record
from mobileseg.results.store import ResultStore
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
        np.save(
            os.path.join(folder, "reference", "output.npy"),
            rng.standard_normal((1, 5, h // 8, w // 8)).astype(np.float32) * 4,
        )
        man = {
            "schema_version": 1,
            "model": model,
            "resolution": [h, w],
            "num_classes": 5,
            "graph": graph,
            "precision": precision,
            "formats": {f: {"ok": True, "files": [{"path": f"model.{f}", "sha256": "ab" * 32}]} for f in formats},
        }
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
        return CellRun(
            samples_ms=samples,
            output=ref * self.scale.get(cell.runtime, 1.0),
            runtime_version="1.0",
            runtime_settings={"threads": cell.threads},
            affinity=[1],
            overhead_ms=0.0001,
        )


def bench(tmp_path, target, **kw):
    calls = kw.pop("calls", [])
    kw.setdefault("models", ["topformer-t"])
    kw.setdefault("resolutions", [64])
    kw.setdefault("runtimes", ["onnxruntime", "ncnn"])
    kw.setdefault("repeats", 4)
    kw.setdefault("progress", False)
    return run_bench(
        target=target,
        export_fn=fake_export(calls),
        export_root=tmp_path / "export",
        results_file=tmp_path / "r.jsonl",
        warmup=0,
        measure_reference=False,
        **kw,
    )


def test_records_are_valid_and_parity_is_recorded(tmp_path):
    calls = []
    recs = bench(tmp_path, FakeTarget(scale={"ncnn": 1.01}), calls=calls)
    assert len(calls) == 1 and set(calls[0][2]) == {"onnx", "ncnn"}  # one export serves both cells
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
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    rc = main(
        [
            "bench",
            "--device",
            "local",
            "--models",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "onnxruntime",
            "--out",
            str(tmp_path),
            "--export-dir",
            str(tmp_path / "export"),
            "--no-sgemm",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "onnxruntime" in err and "pip install 'mobileseg[onnx]'" in err and "Traceback" not in err
    assert not (tmp_path / "export").exists()  # nothing exported or timed


def test_cpu_that_does_not_exist_is_a_clear_error(tmp_path, capsys):
    before = os.sched_getaffinity(0)
    rc = main(
        [
            "bench",
            "--device",
            "local",
            "--cpu",
            "4096",
            "--models",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "torch",
            "--out",
            str(tmp_path),
            "--no-sgemm",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "CPU 4096 does not exist" in err and "--cpu" in err
    assert os.sched_getaffinity(0) == before  # nothing was pinned


def test_unknown_device_and_bad_repeats(tmp_path, capsys):
    assert main(["bench", "--device", "usb", "--out", str(tmp_path)]) == 2
    assert "unknown device 'usb'" in capsys.readouterr().err
    from mobileseg.errors import MobilesegError

    with pytest.raises(MobilesegError, match="at least 1"):
        bench(tmp_path, FakeTarget(), repeats=0)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_shows_the_export_and_keeps_it_out_of_the_eta(tmp_path):
    """The first cell of a model used to include its export: a 100 s export made the ETA jump."""
    import io

    from mobileseg.bench.progress import Progress

    clock, stream = FakeClock(), io.StringIO()
    export = fake_export([])

    def slow_export(*a, **k):
        clock.t += 100.0
        return export(*a, **k)

    class TimedTarget(FakeTarget):
        def run_cell(self, *a, **k):
            clock.t += 2.0
            return super().run_cell(*a, **k)

    prog = Progress(3, stream=stream, clock=clock)
    run_bench(
        target=TimedTarget(),
        export_fn=slow_export,
        export_root=tmp_path / "export",
        results_file=tmp_path / "r.jsonl",
        warmup=0,
        repeats=2,
        measure_reference=False,
        progress=prog,
        models=["topformer-t"],
        resolutions=[64],
        runtimes=["onnxruntime", "ncnn", "litert"],
    )
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[0/3] exporting topformer-t 64x64 (elapsed 0s)")
    assert lines[1] == "[0/3] running topformer-t 64x64 onnxruntime fp32 logits t1 (elapsed 1m40s)"
    assert lines[2].endswith("(2s)")  # the cell's own time, without the export
    assert lines[3] == "[1/3] running topformer-t 64x64 ncnn fp32 logits t1 (elapsed 1m42s, ETA 4s)"
    assert sum("exporting" in l for l in lines) == 1  # one export serves the three cells


def test_eta_counts_measured_cells_only(tmp_path):
    import io

    from mobileseg.bench.progress import Progress

    clock, stream = FakeClock(), io.StringIO()
    p = Progress(4, stream=stream, clock=clock)
    p.start("a")
    clock.t += 60
    p.finish("ERROR broke", measured=False)
    assert p.eta_s() is None  # an error says nothing about how long a cell takes
    p.start("b")
    clock.t += 3
    p.finish("median 1 ms")
    assert p.eta_s() == pytest.approx(6.0)


class TimingsOnlyTarget(FakeTarget):
    def __init__(self, summary=None):
        super().__init__()
        self.summary = summary

    def run_cell(self, cell, export_dir, manifest, warmup, repeats, min_time):
        return CellRun(
            samples_ms=[],
            output=None,
            runtime_version=None,
            affinity=[3],
            harness="benchmark_model",
            stats_ms=self.summary,
            parity_note="benchmark_model reports timings only",
        )


def test_a_timings_only_cell_records_the_tools_summary_and_no_parity(tmp_path):
    summary = {"mean": 47.7, "stdev": 0.7, "min": 46.9, "max": 49.8, "count": 20}
    (r,) = bench(tmp_path, TimingsOnlyTarget(summary), runtimes=["litert"])
    assert validate_record(r) == [], validate_record(r)
    assert r["status"] == "ok" and r["parity"] == {"checked": False, "reason": "benchmark_model reports timings only"}
    assert r["stats_ms"] == {
        "median": None,
        "p10": None,
        "p90": None,
        "mean": 47.7,
        "stdev": 0.7,
        "min": 46.9,
        "max": 49.8,
        "count": 20,
    }
    assert r["samples_ms"] == [] and r["stats_source"] == "tool-summary"
    # a harness that gives neither samples nor a summary is that cell's error, not a crash
    (bad,) = bench(tmp_path, TimingsOnlyTarget(None), runtimes=["litert"])
    assert bad["status"] == "error" and "returned no timings" in bad["error"]


def test_validate_record_rejects_sampleless_records_from_harnesses_with_samples():
    d = {
        "stats_ms": {"median": 1.0, "count": 3},
        "samples_ms": [],
        "harness": "device-python",
        "parity": {"checked": False},
        "stats_source": "tool-summary",
        "status": "ok",
        "resolution": [64, 64],
    }
    from mobileseg.results.record import REQUIRED_KEYS

    d.update({k: d.get(k, None) for k in REQUIRED_KEYS})
    d.update(stats_ms={k: 1.0 for k in ("median", "p10", "p90", "mean", "stdev", "min", "max")} | {"count": 3})
    assert any("only benchmark_model and onnxruntime_perf_test" in p for p in validate_record(d))
    d["harness"] = "benchmark_model"
    assert validate_record(d) == []
    d["parity"] = {"ok": True, "rel_l2": 0.0}
    assert any("timings only" in p for p in validate_record(d))


def test_lost_target_says_what_was_kept_and_to_resume(tmp_path):
    with pytest.raises(TargetLostError) as info:
        bench(tmp_path, FakeTarget(lose_at=1), runtimes=["onnxruntime", "ncnn", "litert"])
    msg = str(info.value)
    assert "went away" in msg and "1 finished cell(s) are kept" in msg and "--resume" in msg
    assert "2 cell(s) left" in msg


def test_cli_help_documents_harness_and_official_binaries(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--harness {auto,python,native}" in out and "mobileseg harness build" in out
    assert "--tflite-benchmark PATH" in out and "benchmark_model" in out
    assert "--ort-perf-test PATH" in out and "onnxruntime_perf_test" in out


def test_cli_passes_harness_and_binaries_to_the_target(tmp_path, monkeypatch):
    from mobileseg.bench import model_cells

    seen = {}

    def fake_open(device, **opts):
        seen.update(device=device, **opts)
        return FakeTarget()

    from mobileseg.bench import targets

    monkeypatch.setattr(targets, "open_target", fake_open)
    monkeypatch.setattr(model_cells, "ensure_export", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no export")))
    rc = main(
        [
            "bench",
            "--device",
            "adb:127.0.0.1:5555",
            "--harness",
            "native",
            "--tflite-benchmark",
            "/x/bm",
            "--ort-perf-test",
            "/x/pt",
            "-m",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "ncnn",
            "--results-file",
            str(tmp_path / "r.jsonl"),
            "-q",
        ]
    )
    assert rc == 1  # the (fake) export failed: recorded as that cell's error
    assert seen == {
        "device": "adb:127.0.0.1:5555",
        "harness": "native",
        "tflite_benchmark": "/x/bm",
        "ort_perf_test": "/x/pt",
    }
    seen.clear()
    main(
        [
            "bench",
            "--device",
            "adb:127.0.0.1:5555",
            "-m",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "ncnn",
            "--results-file",
            str(tmp_path / "r.jsonl"),
            "-q",
        ]
    )
    assert seen == {"device": "adb:127.0.0.1:5555"}  # defaults: the target decides (auto)


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--harness", "native"], "--harness native runs on ADB devices only"),
        (["--ort-perf-test", "/x/pt"], "--ort-perf-test run official binaries"),
    ],
)
def test_device_only_options_on_the_host_are_one_clear_sentence(tmp_path, capsys, flags, needle):
    rc = main(
        [
            "bench",
            "--device",
            "local",
            *flags,
            "-m",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "torch",
            "--out",
            str(tmp_path),
            "--no-sgemm",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_cell_takes_the_complexity_from_the_export_and_builds_no_model(monkeypatch):
    from types import SimpleNamespace

    from mobileseg.bench import runner

    def no_model(*a, **k):
        raise AssertionError("a cell of a new export must not build the model to count it")

    monkeypatch.setattr(runner, "model_complexity", no_model)
    cell = SimpleNamespace(model="topformer-t", resolution=(128, 128))
    assert runner._complexity_of({"complexity": {"gmacs": 0.036, "params": 1389654}}, cell) == (0.036, 1389654)


def test_a_suites_threads_are_used_unless_the_command_line_gives_them(tmp_path):
    """[settings] threads = 2 of a suite was silently replaced by the command line's default of 1."""
    suite = tmp_path / "s.toml"
    suite.write_text(
        '[settings]\nthreads = 2\n\n[[cells]]\nmodels = ["topformer-t"]\nresolutions = [64]\n'
        'runtimes = ["onnxruntime"]\n'
    )
    recs = bench(tmp_path, FakeTarget(), suite=str(suite), models=None, resolutions=None, runtimes=None)
    assert [r["threads"] for r in recs] == [2] and recs.path == tmp_path / "r.jsonl"
    again = bench(tmp_path, FakeTarget(), suite=str(suite), models=None, resolutions=None, runtimes=None, threads=1)
    assert [r["threads"] for r in again] == [1]
