"""``mobileseg choose`` on the command line: every bad input is one sentence (no device time spent), and a small
run on this host ends in a recommendation, a card, a plot and normal bench records that the other commands read."""

from __future__ import annotations

import json

import pytest

from cli_helpers import one_sentence

BASE = [
    "choose",
    "--budget-ms",
    "33",
    "--models",
    "topformer-t",
    "--res",
    "64",
    "--runtimes",
    "onnxruntime",
    "--precisions",
    "fp32",
]


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--budget-ms", "0"], "--budget-ms must be a number of milliseconds above 0"),
        (["--max-time", "-1"], "--max-time must be a number of seconds above 0"),
        (["--confidence", "1.5"], "--confidence must be at least 0.5 and below 1"),
        (["--max-memory-mb", "0"], "--max-memory-mb must be above 0"),
        (["--objective", "latency"], "--objective latency needs an mIoU floor"),
        (["--eval-limit", "5"], "--eval-limit limits --data's evaluation"),
        (["--calib", "/nonexistent/calib"], "--calib folder /nonexistent/calib not found"),
        (["--data", "/nonexistent/ade"], "/nonexistent/ade"),
        (["--runtimes", "onnxruntme"], "unknown runtime 'onnxruntme' (did you mean onnxruntime?)"),
        (["--models", "topformer-x"], "did you mean"),
        (["--res", "63"], "63"),
        (["--device", "nowhere"], "unknown device 'nowhere'"),
    ],
)
def test_bad_input_is_one_sentence(capsys, tmp_path, extra, says):
    err = one_sentence(capsys, BASE + ["--out", str(tmp_path / "out"), "--export-dir", str(tmp_path / "e")] + extra)
    assert says in err, err


def test_a_named_runtime_without_the_named_precision_is_one_sentence(capsys, tmp_path):
    err = one_sentence(
        capsys,
        [
            "choose",
            "--budget-ms",
            "33",
            "--models",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "torch",
            "--precisions",
            "int8",
            "--out",
            str(tmp_path),
        ],
    )
    assert "runtime torch has no int8 artifacts" in err, err


def test_choose_is_registered_with_its_flags():
    from mobileseg.cli import build_parser

    text = build_parser().parse_args(["choose", "--budget-ms", "5"]).func.__module__
    assert text == "mobileseg.commands.choose"


def _run(tmp_path, capsys, *extra):
    from mobileseg.cli import main

    rc = main(
        [
            "choose",
            "--budget-ms",
            "200",
            "--models",
            "topformer-t",
            "lraspp-mbv3-large-reduce",
            "--res",
            "64",
            "--runtimes",
            "onnxruntime",
            "--precisions",
            "fp32",
            "--max-time",
            "60",
            "--quiet",
            "--out",
            str(tmp_path / "out"),
            "--export-dir",
            str(tmp_path / "export"),
            *extra,
        ]
    )
    return rc, capsys.readouterr().out


@pytest.mark.slow
def test_host_run_recommends_writes_a_card_and_normal_bench_records(tmp_path, capsys):
    from mobileseg.results.store import read_records

    rc, out = _run(tmp_path, capsys)
    summary = json.loads((tmp_path / "out" / "choose.json").read_text())
    assert rc == 0 and summary["state"] == "chosen", out
    assert "chosen: " in out and "topformer-t 64x64 on onnxruntime fp32" in out  # the higher proxy of the two
    card = json.loads((tmp_path / "out" / "card.json").read_text())
    assert card["decision"] == "chosen" and len(card["artifact"]["sha256"]) == 64
    assert card["input"]["shape"] == [1, 3, 64, 64] and card["input"]["mean"]
    assert card["runtime"]["version"] and card["runtime"]["settings"]["threads"] == 1
    lo, hi = card["latency"]["interval_ms"]
    assert lo <= card["latency"]["median_ms"] <= hi <= 200
    assert card["device"]["kind"] == "local" and card["parity"]["ok"] is True
    assert "accuracy not measured" in card["accuracy"]["source"]  # topformer-t's paper sizes are 448 and 512
    assert "mobileseg bench" in card["reproduce"]["bench"] and card["reproduce"]["choose"].startswith(
        "mobileseg choose"
    )
    assert (tmp_path / "out" / "card.md").read_text().startswith("# Deployment card: topformer-t 64x64")
    assert (tmp_path / "out" / "pareto.png").stat().st_size > 0
    records, _ = read_records([summary["results_file"]], ("model", "stats_ms"))
    fates = {c["id"]: c for c in summary["candidates"]}
    assert sum(c["records"] for c in fates.values()) == len(records)
    assert {r["status"] for r in records} == {"ok"} and all(r["samples_ms"] for r in records)
    # --resume pools the samples already measured: the same decision without measuring the settled loser again
    n_before = len(records)
    rc, out = _run(tmp_path, capsys, "--resume")
    again = json.loads((tmp_path / "out" / "choose.json").read_text())
    assert rc == 0 and again["state"] == "chosen"
    assert len(read_records([summary["results_file"]], ("model",))[0]) == n_before


@pytest.mark.slow
def test_with_data_every_candidate_carries_its_own_measured_miou(tmp_path, capsys):
    """``--data``: the fp32 and the int8 artifact are each evaluated (int8 calibrated with ``--calib``), and the
    evidence says so; nothing is left "accuracy not measured"."""
    from mobileseg.cli import main
    from mobileseg.export.synthetic import write_split

    data, calib = write_split(tmp_path / "val", 4, seed=2, size=64), write_split(tmp_path / "cal", 4, seed=3, size=64)
    rc = main(
        [
            "choose",
            "--budget-ms",
            "500",
            "--models",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "onnxruntime",
            "--precisions",
            "fp32",
            "int8",
            "--data",
            str(data),
            "--calib",
            str(calib / "images" / "validation"),
            "--max-time",
            "60",
            "--quiet",
            "--out",
            str(tmp_path / "out"),
            "--export-dir",
            str(tmp_path / "e"),
        ]
    )
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "choose.json").read_text())
    assert rc in (0, 1) and summary["state"] in ("chosen", "tied"), out
    ev = {c["precision"]: c["accuracy"] for c in summary["candidates"]}
    assert ev["fp32"]["kind"] == ev["int8"]["kind"] == "measured", ev
    assert ev["int8"]["source"].startswith("measured on 4 ") and ev["int8"]["miou_delta_vs_fp32"] is not None
    assert "random weights" in ev["fp32"]["source"]
    assert "accuracy not measured" not in out
