"""What a newcomer reads in the report: inversions flagged "suspect: re-measure" (synthetic records), the paper and
table an mIoU comes from, why no paper latency stands beside a measurement, and the CLI's words."""

import json
import re

import numpy as np
import pytest

from mobileseg.report import build_report
from mobileseg.report.data import load_results
from mobileseg.report.errors import NoRecordsError
from mobileseg.report.suspect import SUSPECT, inversions
from mobileseg.results.stats import median_ci, summarize


def _rec(model, res, median, runtime="onnxruntime", spread=0.01, precision="fp32", n=40, seed=0):
    h, w = res
    samples = list(median * np.random.default_rng(seed + h).lognormal(0, spread, n))
    return {
        "schema_version": 1,
        "id": f"host-x|{model}|{h}x{w}|onnx|{runtime}|{precision}|logits|t1",
        "timestamp": "2026-11-21T05:00:00",
        "model": model,
        "resolution": [h, w],
        "format": "onnx",
        "runtime": runtime,
        "runtime_version": "1.0",
        "precision": precision,
        "graph": "logits",
        "threads": 1,
        "device": {"kind": "local", "model": "host-x", "emulated": False},
        "emulated": False,
        "harness": "python-inproc",
        "stats_ms": {**summarize(samples), **median_ci(samples)},
        "samples_ms": samples,
        "parity": {"ok": True, "rel_l2": 1e-6},
        "gflops": 1.0,
        "params": 1_400_000,
        "status": "ok",
    }


def _write(tmp_path, recs):
    p = tmp_path / "r.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


def _flagged(tmp_path, recs):
    df = load_results([_write(tmp_path, recs)])
    return {(df.model[i], df.resolution[i], df.runtime[i], df.precision[i]) for i in inversions(df)}


def test_a_smaller_input_slower_beyond_both_intervals_is_suspect(tmp_path):
    recs = [
        _rec("topformer-t", (448, 448), 22.9),
        _rec("topformer-t", (512, 512), 15.2),
        # a larger input slower, as it should be: nothing to flag
        _rec("topformer-s", (448, 448), 20.0),
        _rec("topformer-s", (512, 512), 27.0),
        # the same inversion across runtimes or precisions is no inversion: they are other cells
        _rec("topformer-b", (448, 448), 30.0, runtime="ncnn"),
        _rec("topformer-b", (512, 512), 20.0),
        _rec("lraspp-mbv3-large", (448, 448), 30.0, precision="fp16"),
        _rec("lraspp-mbv3-large", (512, 512), 20.0),
    ]
    assert _flagged(tmp_path, recs) == {("topformer-t", "448x448", "onnxruntime", "fp32")}


def test_overlapping_intervals_are_noise_not_an_inversion(tmp_path):
    # 448 a hair slower than 512, but with wide intervals that overlap: not beyond both
    recs = [_rec("topformer-t", (448, 448), 15.4, spread=0.2), _rec("topformer-t", (512, 512), 15.2, spread=0.2)]
    df = load_results([_write(tmp_path, recs)])
    assert df.median_ci_low_ms.max() < df.median_ci_high_ms.min()  # the intervals do overlap
    assert _flagged(tmp_path, recs) == set()


def test_suspect_points_are_marked_in_the_plot_the_tables_and_the_notes(tmp_path, monkeypatch):
    from mobileseg.report import plots

    labels, dashed = {}, {}
    real = plots._save

    def save(fig, out_base):
        labels[out_base.name] = [t.get_text() for t in fig.axes[0].texts]
        dashed[out_base.name] = sum(p.get_linestyle() == "--" for p in fig.axes[0].patches)
        return real(fig, out_base)

    monkeypatch.setattr(plots, "_save", save)
    p = _write(
        tmp_path,
        [
            _rec("topformer-t", (448, 448), 22.9),
            _rec("topformer-t", (512, 512), 15.2),
            _rec("topformer-s", (512, 512), 27.0),
        ],
    )
    rep = build_report(results=[p], out=tmp_path / "rep")
    assert "topformer-t 448x448\nsuspect: re-measure" in labels["pareto-host-x-onnxruntime"]
    assert "topformer-t 512x512" in labels["pareto-host-x-onnxruntime"]
    assert dashed["paper-vs-measured"] == 1  # the 448 bar beside the paper's, outlined; the 512 one is not
    md = rep.markdown.read_text()
    table = md.split("### host-x, onnxruntime")[1].split("###")[0]
    rows = {
        tuple(c.strip() for c in line.split("|")[1:3]): line
        for line in table.splitlines()
        if line.startswith("| topformer")
    }
    assert SUSPECT in rows[("topformer-t", "448x448")] and SUSPECT not in rows[("topformer-t", "512x512")]
    (note,) = [n for n in rep.notes if n.startswith(SUSPECT)]
    assert re.search(
        r"topformer-t 448x448 at 22\.\d\d ms \(95% interval .*\) is slower than at 512x512 at 15\.\d\d", note
    )
    html = rep.html.read_text()
    assert f"<td class='t' title='{note[len(SUSPECT) + 2 : -1]}'>{SUSPECT}</td>" in html  # the reason on hover
    (points,) = [v for k, v in rep.points.items() if k.name == "pareto-host-x-onnxruntime.svg"]
    assert [(r["model"], r["input"]) for r in points if "check" in r] == [("topformer-t", "448x448")]


def test_mIoU_source_names_the_paper_and_the_table(tmp_path):
    rep = build_report(
        results=[_write(tmp_path, [_rec("topformer-t", (512, 512), 15.2), _rec("segformer-b0", (512, 512), 400.0)])],
        out=tmp_path / "rep",
    )
    md = rep.markdown.read_text()
    assert "TopFormer paper, Table 1" in md and ".txt" not in md


def test_no_paper_latency_says_at_which_size_table_1_times_the_model(tmp_path):
    rep = build_report(results=[_write(tmp_path, [_rec("topformer-t", (256, 256), 5.0)])], out=tmp_path / "rep")
    (note,) = [n for n in rep.notes if "Table 1" in n]
    assert "topformer-t at 448x448 and 512x512 (measured at 256x256)" in note
    assert "None of the measured models" not in note


def test_filter_error_names_the_options_as_spelled(tmp_path):
    with pytest.raises(NoRecordsError, match="change --devices/--runtimes$"):
        load_results([_write(tmp_path, [_rec("topformer-t", (512, 512), 15.2)])], runtime="litert")


def test_models_prints_the_whole_task_and_help_names_the_runs_folder(capsys):
    from mobileseg.cli import build_parser, main

    assert main(["models", "topformer-t*"]) == 0
    out = capsys.readouterr().out
    assert "segmentation" in out and "classification" in out
    assert "results/runs/*.jsonl" in build_parser().format_help()


def test_cells_without_an_interval_are_judged_by_their_samples_range(tmp_path):
    few = [_rec("topformer-t", (448, 448), 30.0, n=4), _rec("topformer-t", (512, 512), 20.0, n=4)]
    df = load_results([_write(tmp_path, few)])
    assert df.median_ci_low_ms.isna().all()  # under 6 samples: no interval of the median
    assert _flagged(tmp_path, few) == {("topformer-t", "448x448", "onnxruntime", "fp32")}
    wide = [
        _rec("topformer-t", (448, 448), 21.0, n=4, spread=0.3),
        _rec("topformer-t", (512, 512), 20.0, n=4, spread=0.3),
    ]
    assert _flagged(tmp_path, wide) == set()  # their min..max ranges overlap


def test_the_screenshot_command_refuses_a_missing_page_in_one_sentence(tmp_path, capsys):
    from mobileseg.report import browser

    assert browser.main([str(tmp_path / "nope.html"), "--out", str(tmp_path / "shots")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobileseg: error:") and err.count("\n") == 1 and not (tmp_path / "shots").exists()
