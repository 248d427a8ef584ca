"""``mobileseg results``: table listing and CSV export of stored records."""

import pandas as pd
import pytest

from mobileseg.results.record import LatencyRecord, cell_key
from mobileseg.results.stats import summarize
from mobileseg.results.store import ResultStore
from mobileseg.cli import main


def _rec(runtime, samples, status="ok", gmacs=0.5):
    key = cell_key("host-x", "topformer-t", (512, 512), "onnx", runtime, "fp32", "logits", 1)
    return LatencyRecord(
        id=key,
        model="topformer-t",
        resolution=[512, 512],
        format="onnx",
        runtime=runtime,
        stats_ms=summarize(samples) if samples else {},
        samples_ms=samples,
        gflops=gmacs,
        parity={"ok": True, "rel_l2": 1e-7, "max_abs": 1e-6, "argmax_agree": 1.0},
        status=status,
        error="boom" if status == "error" else None,
        extra={"sgemm": {"macs_per_s": 20e9, "gflop_s": 40.0}},
    )


def test_results_table_and_csv(tmp_path, capsys):
    store = ResultStore(tmp_path / "host-x-t1.jsonl")
    store.append(_rec("onnxruntime", [10.0, 10.0, 12.0]))  # median 10 ms -> 0.5 GMAC / 0.01 s = 50 GMAC/s
    store.append(_rec("ncnn", [], status="error"))
    with open(tmp_path / "host-x-t1.jsonl", "a") as f:
        f.write('{"id": "partial')  # a killed writer's leftover
    out_csv = tmp_path / "out" / "r.csv"
    assert main(["results", str(tmp_path), "--csv", str(out_csv)]) == 0
    cap = capsys.readouterr()
    assert "onnxruntime" in cap.out and "50.00" in cap.out and "250.0" in cap.out  # 50 / 20 GMAC/s = 250 %
    assert "1 failed record(s) hidden" in cap.out and "unterminated" in cap.err
    df = pd.read_csv(out_csv)
    assert list(df["runtime"]) == ["onnxruntime", "ncnn"]
    assert df.loc[0, "median_ms"] == 10.0 and df.loc[0, "gmac_per_s"] == 50.0 and df.loc[0, "count"] == 3
    assert df.loc[1, "status"] == "error" and df.loc[1, "error"] == "boom"


def test_results_missing_file_is_clear(tmp_path, capsys):
    assert main(["results", str(tmp_path / "none.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_tool_summary_without_median_lists_its_mean(tmp_path, capsys):
    key = cell_key("adb-x", "topformer-t", (512, 512), "tflite", "litert", "fp32", "logits", 1)
    rec = LatencyRecord(
        id=key,
        model="topformer-t",
        resolution=[512, 512],
        format="tflite",
        runtime="litert",
        harness="benchmark_model",
        samples_ms=[],
        parity={"checked": False},
        stats_ms={
            "median": None,
            "p10": None,
            "p90": None,
            "mean": 47.7024,
            "stdev": 0.7,
            "min": 46.9,
            "max": 49.8,
            "count": 20,
        },
        extra={"stats_source": "tool-summary"},
    )
    ResultStore(tmp_path / "adb-x-t1.jsonl").append(rec)
    assert main(["results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "47.70 (mean)" in out and "litert" in out


def test_results_csv_and_report_give_one_latency_for_a_tool_summary(tmp_path, capsys):
    """benchmark_model prints no median: `results --csv` and `report` both show its mean, from one table view."""
    from mobileseg.report.data import load_results

    key = cell_key("adb-x", "topformer-t", (512, 512), "tflite", "litert", "fp32", "logits", 1)
    rec = LatencyRecord(
        id=key,
        model="topformer-t",
        resolution=[512, 512],
        format="tflite",
        runtime="litert",
        harness="benchmark_model",
        samples_ms=[],
        parity={"checked": False},
        gflops=1.8,
        device={"kind": "adb", "model": "Pixel 9", "serial": "x"},
        stats_ms={
            "median": None,
            "p10": None,
            "p90": None,
            "mean": 47.7024,
            "stdev": 0.7,
            "min": 46.9,
            "max": 49.8,
            "count": 20,
        },
        extra={"stats_source": "tool-summary"},
    )
    path = tmp_path / "adb-x-t1.jsonl"
    ResultStore(path).append(rec)
    assert main(["results", str(path), "--csv", str(tmp_path / "r.csv")]) == 0
    csv = pd.read_csv(tmp_path / "r.csv")
    assert main(["report", "--results", str(path), "--out", str(tmp_path / "report")]) == 0
    report_md = (tmp_path / "report" / "report.md").read_text()
    df = load_results([path])
    assert csv.loc[0, "latency_ms"] == pytest.approx(47.7024) and csv.loc[0, "latency_stat"] == "mean"
    assert df.loc[0, "latency_ms"] == csv.loc[0, "latency_ms"]
    assert csv.loc[0, "gmac_per_s"] == pytest.approx(1.8 / 0.0477024)  # the rate follows the same latency
    assert "47.70" in report_md and "| mean |" in report_md


def test_a_record_measured_through_an_adb_server_names_it():
    from mobileseg.results.record import LatencyRecord, validate_record

    rec = LatencyRecord(
        id="k",
        model="m",
        resolution=[8, 8],
        format="onnx",
        runtime="onnxruntime",
        status="error",
        device={"kind": "adb", "transport": "adb-server", "adb": {}},
    ).to_dict()
    assert "does not name it (device.adb.adb_server)" in " ".join(validate_record(rec))
    rec["device"]["adb"]["adb_server"] = "10.0.0.5:5037"
    assert validate_record(rec) == []
