"""The report a reader can trust: mIoU only at its own input size, no emulated timing on a latency axis, error bars
from the median's interval, the real-time label inside the axes, readable x labels, memory and per-op plots."""

import json

import numpy as np
import pandas as pd
import pytest

from mobileseg.bench.profile import module_of, parse_benchmark_model, parse_onnxruntime, summarize_ops
from mobileseg.report import build_report
from mobileseg.report import plots
from mobileseg.resources import project_path


def _rec(model, res, median, device=None, runtime="onnxruntime", memory=None, profile=None, emulated=False):
    device = device or {"kind": "local", "model": "host-x", "emulated": emulated}
    h, w = res
    rng = np.random.default_rng(h + int(median))
    samples = list(median * rng.lognormal(0, 0.05, 40))
    from mobileseg.results.stats import median_ci, summarize

    rec = {
        "schema_version": 1,
        "id": f"{device['model']}|{model}|{h}x{w}|onnx|{runtime}|fp32|logits|t1",
        "timestamp": "2026-11-21T05:00:00",
        "model": model,
        "resolution": [h, w],
        "format": "onnx",
        "runtime": runtime,
        "precision": "fp32",
        "graph": "logits",
        "threads": 1,
        "device": device,
        "emulated": emulated,
        "harness": "python-inproc",
        "stats_ms": {**summarize(samples), **median_ci(samples)},
        "samples_ms": samples,
        "parity": {"ok": True, "rel_l2": 1e-6},
        "gflops": 1.0,
        "params": 1_400_000,
        "status": "ok",
    }
    if memory is not None:
        rec["memory"] = {"peak_rss_growth_mb": memory, "definition": "test"}
    if profile is not None:
        rec["profile"] = profile
    return rec


def _write(tmp_path, recs):
    p = tmp_path / "r.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return p


def test_miou_of_another_input_size_is_marked_and_paper_latency_needs_the_same_size(tmp_path):
    p = _write(tmp_path, [_rec("topformer-t", (256, 256), 9.0), _rec("topformer-s", (512, 512), 30.0)])
    rep = build_report(results=[p], out=tmp_path / "rep")
    md = rep.markdown.read_text()
    assert "(mIoU at 512, latency at 256)" in md  # the point label in the Pareto table/plot
    assert "topformer-s 512x512 (mIoU" not in md
    paper = md.split("### Paper vs measured latency")[1]
    assert "topformer-s" in paper and "256x256" not in paper  # no 512 paper latency beside a 256 measurement


def test_emulated_timings_stand_on_no_latency_axis(tmp_path):
    emu = {"kind": "adb", "model": "emu-phone", "emulated": True}
    p = _write(
        tmp_path,
        [
            _rec("topformer-t", (512, 512), 9000.0, device=emu, emulated=True, memory=50.0),
            _rec("topformer-t", (512, 512), 20.0, memory=30.0),
        ],
    )
    rep = build_report(results=[p], out=tmp_path / "rep")
    titles = [t for t, _ in rep.plots]
    assert not any("emu-phone" in t for t in titles)
    assert any("numerics only" in t and "emu-phone" in t for t, _, _ in rep.tables)
    assert any(t.startswith("Peak memory vs latency on host-x") for t in titles)


def _texts_inside(fig, ax, needle):
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    found = [t for t in ax.texts if needle in t.get_text()]
    assert found, f"no text containing {needle!r}"
    for t in found:
        tb = t.get_window_extent(renderer)
        assert box.x0 - 1 <= tb.x0 and tb.x1 <= box.x1 + 1 and box.y0 - 1 <= tb.y0 and tb.y1 <= box.y1 + 1, (
            t.get_text(),
            tb,
            box,
        )


@pytest.mark.parametrize("latencies", [[900.0, 2000.0, 5000.0], [10.0, 20.0, 200.0], [2.0, 5.0, 8.0]])
def test_realtime_label_is_inside_the_axes(tmp_path, latencies):
    pts = pd.DataFrame(
        {
            "label": ["a", "b", "c"],
            "latency_ms": latencies,
            "miou": [30.0, 33.0, 36.0],
            "params_m": [1.0, 2.0, 3.0],
            "is_topformer": [True, False, False],
        }
    )
    checked = []

    def inspect(fig, ax):
        _texts_inside(fig, ax, "real-time zone")
        checked.append(True)

    plots.figure1(pts, tmp_path / "f", "t", inspect=inspect)
    assert checked


def test_error_bars_are_the_interval_of_the_median(tmp_path):
    pts = pd.DataFrame(
        {
            "label": ["a", "b"],
            "latency_ms": [10.0, 40.0],
            "miou": [30.0, 35.0],
            "params_m": [1.0, 2.0],
            "is_topformer": [True, False],
            "ci_low_ms": [9.0, 38.0],
            "ci_high_ms": [12.0, 41.0],
        }
    )
    seen = []

    def inspect(fig, ax):
        (bars,) = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
        segs = bars.lines[2][0].get_segments()
        seen.extend(sorted((float(s[0][0]), float(s[1][0])) for s in segs))

    plots.figure1(pts, tmp_path / "f", "t", inspect=inspect)
    assert seen == [(9.0, 12.0), (38.0, 41.0)]


def test_paper_vs_measured_x_labels_do_not_overlap(tmp_path):
    models = [
        "lraspp-mbv3-large",
        "deeplabv3plus-mbv2",
        "topformer-t",
        "topformer-s",
        "topformer-b",
        "hrnet-w18-small",
        "pspnet-mbv2",
        "segformer-b0",
        "lite-aspp-mbv2",
        "r-aspp-mbv2",
    ]
    rows = pd.DataFrame(
        [
            {
                "model": m,
                "resolution": "512x512",
                "series": s,
                "latency_ms": 10.0 + i,
                "ci_low_ms": 9.0 + i,
                "ci_high_ms": 11.0 + i,
            }
            for i, m in enumerate(models)
            for s in ("paper: SD865", "host onnxruntime", "host ncnn")
        ]
    )
    overlaps = []
    plots.paper_vs_measured(
        rows, tmp_path / "p", "t", inspect=lambda fig, ax: overlaps.append(plots.xlabel_overlaps(fig, ax))
    )
    assert overlaps == [0]


def test_a_crowded_axis_would_overlap_without_the_fix(tmp_path):
    # the check can fail: the same labels flat at 8 pt on a narrow axis overlap
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_xticks(range(10))
    ax.set_xticklabels([f"deeplabv3plus-mbv2\n512x512 {i}" for i in range(10)], fontsize=8)
    assert plots.xlabel_overlaps(fig, ax) > 0
    plt.close(fig)


def test_profile_schema_from_onnxruntime_events_and_benchmark_model():
    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},
        {
            "cat": "Node",
            "name": "/backbone/stem/c/Conv_kernel_time",
            "ts": 10,
            "dur": 3000,
            "args": {"op_name": "Conv"},
        },
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 100},
    ]
    for ts, dur in ((210, 1000), (300, 3000)):
        events += [
            {
                "cat": "Node",
                "name": "/backbone/stem/c/Conv_kernel_time",
                "ts": ts,
                "dur": dur,
                "args": {"op_name": "Conv"},
            },
            {"cat": "Node", "name": "logits_kernel_time", "ts": ts + 5, "dur": 1000, "args": {"op_name": "Conv"}},
        ]
    prof = parse_onnxruntime(events, runs=1)  # the last model_run only
    assert prof["ops"][0] == {
        "name": "/backbone/stem/c/Conv",
        "type": "Conv",
        "module": "backbone.stem.c",
        "median_ms": 2.0,
        "share": pytest.approx(2 / 3, abs=1e-6),
    }
    assert prof["total_ms"] == 3.0 and prof["ops"][1]["module"] is None
    bm = parse_benchmark_model(
        project_path("tests", "fixtures", "profiles", "benchmark_model_op_profiling.txt").read_text()
    )
    assert [o["type"] for o in bm["ops"]] == ["TfLiteXNNPackDelegate", "MEAN", "RESHAPE"]
    assert bm["ops"][0]["median_ms"] == 14.9 and bm["runs"] == 50
    assert sum(o["share"] for o in bm["ops"]) == pytest.approx(1.0, abs=1e-5)
    assert parse_benchmark_model("no table here") is None
    assert module_of("conv_12") is None


def test_report_shows_top_ops_of_profiled_cells(tmp_path):
    ops = summarize_ops({f"/m/layer{i}/Conv": [float(i + 1)] for i in range(14)}, {}, "onnxruntime-profiler", 1)
    emu = {"kind": "adb", "model": "emu-phone", "emulated": True}
    p = _write(
        tmp_path,
        [
            _rec("topformer-t", (512, 512), 20.0, profile=ops),
            _rec("topformer-s", (512, 512), 9000.0, device=emu, emulated=True, profile=ops),
        ],
    )
    rep = build_report(results=[p], out=tmp_path / "rep")
    tops = [t for t, _ in rep.plots if t.startswith("Top 10 ops")]
    assert len(tops) == 1 and "topformer-t" in tops[0]
    (md,) = [m for t, m, _ in rep.tables if t.startswith("Top 10 ops")]
    assert md.count("\n") == 11 and "/m/layer13/Conv" in md and "/m/layer3/Conv" not in md
