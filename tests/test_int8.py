"""int8 export's fast checks: calibration input (one sentence each), the cache identity of a calibration set,
SQNR, and int8 refused where a format or runtime cannot do it. The end-to-end ones are in test_int8_e2e.py."""

from __future__ import annotations

import numpy as np
import pytest

from mobileseg import parity
from cli_helpers import one_sentence
from mobileseg.export import calibration
from mobileseg.export.calibration import CalibrationError


@pytest.fixture
def shapes_dir(tmp_path):
    pytest.importorskip("PIL")
    from mobileseg.export.synthetic import write_split

    return write_split(tmp_path / "shapes", 3, seed=7, size=32)


def test_calibration_folder_missing_file_empty_unreadable(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        calibration.load(tmp_path / "nope", (64, 64), (0, 0, 0), (1, 1, 1))
    (tmp_path / "a.png").write_bytes(b"not a png")
    with pytest.raises(CalibrationError, match="is a file"):
        calibration.load(tmp_path / "a.png", (64, 64), (0, 0, 0), (1, 1, 1))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(CalibrationError, match="holds no images"):
        calibration.load(tmp_path / "empty", (64, 64), (0, 0, 0), (1, 1, 1))
    with pytest.raises(CalibrationError, match="cannot read calibration image .*a.png"):
        calibration.load(tmp_path, (64, 64), (0, 0, 0), (1, 1, 1))
    with pytest.raises(CalibrationError, match="at least 1"):
        calibration.load(None, (64, 64), (0, 0, 0), (1, 1, 1), count=0)


def test_calibration_batch_follows_the_input_contract_and_its_hash_the_files(shapes_dir):
    mean, std = (100.0, 110.0, 120.0), (50.0, 60.0, 70.0)
    a = calibration.load(shapes_dir, (64, 48), mean, std, count=2)
    assert a.images.shape == (2, 3, 64, 48) and a.images.dtype == np.float32
    assert a.files == ["images/validation/00000.png", "images/validation/00001.png"]  # sorted, first N, recursive
    raw = calibration.read_rgb(shapes_dir / a.files[0])
    assert abs(float(a.images[0, 0].mean()) - (raw[..., 0].mean() - mean[0]) / std[0]) < 0.05
    assert calibration.load(shapes_dir, (64, 48), mean, std, count=2).sha256 == a.sha256
    assert calibration.load(shapes_dir, (64, 48), mean, std, count=3).sha256 != a.sha256
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(shapes_dir / a.files[1])
    assert calibration.load(shapes_dir, (64, 48), mean, std, count=2).sha256 != a.sha256
    assert "note" not in a.record()


def test_no_calib_folder_means_synthetic_images_said_in_words():
    s = calibration.load(None, (64, 64), (0, 0, 0), (1, 1, 1), count=4)
    assert s.synthetic and s.count == 4 and "synthetic" in s.record()["note"]
    assert s.sha256 == calibration.load(None, (64, 64), (0, 0, 0), (1, 1, 1), count=4).sha256  # seeded
    c = calibration.load(calibration.CONSTANT, (64, 64), (0, 0, 0), (1, 1, 1), count=2)
    assert float(np.ptp(c.images)) == 0.0 and c.sha256 != s.sha256


def test_sqnr_and_int8_limits_are_recorded_with_the_check():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1, 4, 8, 8))
    out = ref + 0.1 * rng.normal(size=ref.shape)
    fig = parity.check(out, ref, "int8")
    assert fig["sqnr_db"] == pytest.approx(-20 * np.log10(fig["rel_l2"]))
    assert fig["limit_sqnr_db"] == pytest.approx(-20 * np.log10(fig["limit_rel_l2"]))
    assert fig["ok"] and fig["reference"] == "fp32 PyTorch"
    assert not parity.check(ref + 2.0 * rng.normal(size=ref.shape), ref, "int8")["ok"]
    assert "sqnr_db" not in parity.check(out, ref, "fp32")  # fp32/fp16 records unchanged


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--formats", "onnx", "--calib", "{tmp}/missing"], "does not exist"),
        (["--formats", "onnx", "--calib", "{tmp}/empty"], "holds no images"),
        (["--formats", "executorch"], "int8 is not available for executorch"),
        (["--formats", "onnx,executorch"], "int8 is not available for executorch"),
    ],
)
def test_export_int8_bad_input_is_one_sentence(capsys, tmp_path, argv, words):
    pytest.importorskip("onnx")
    (tmp_path / "empty").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    err = one_sentence(
        capsys,
        [
            "export",
            "--model",
            "topformer-t",
            "--res",
            "64",
            "--precision",
            "int8",
            "--export-dir",
            str(tmp_path / "export"),
            "--quiet",
        ]
        + argv,
    )
    assert words in err


def test_calib_without_int8_is_one_sentence(capsys, tmp_path):
    pytest.importorskip("onnx")
    err = one_sentence(
        capsys,
        [
            "export",
            "--model",
            "topformer-t",
            "--res",
            "64",
            "--formats",
            "onnx",
            "--calib",
            str(tmp_path),
            "--export-dir",
            str(tmp_path / "export"),
            "--quiet",
        ],
    )
    assert "--precision int8 only" in err


def test_bench_int8_on_a_runtime_without_int8():
    from mobileseg.bench.model_cells import command_line_cells
    from mobileseg.bench.suite import SuiteError

    with pytest.raises(SuiteError, match="int8 is not available on torch"):
        command_line_cells(
            models=["topformer-t"], resolutions=["64"], runtimes=["torch", "onnxruntime"], precisions=["int8"]
        )
    cells = command_line_cells(models=["topformer-t"], resolutions=["64"], precisions=["fp32", "int8"])
    assert {c.runtime for c in cells if c.precision == "int8"} == {"onnxruntime", "litert", "ncnn"}
    assert "torch" in {c.runtime for c in cells if c.precision == "fp32"}


def test_eval_int8_refused_for_torch(shapes_dir):
    from mobileseg.eval.evaluate import EvalError, evaluate

    with pytest.raises(EvalError, match="torch artifacts cannot be int8"):
        evaluate("topformer-t", shapes_dir, fmt="torch", res=64, precision="int8", progress=False)


def test_shapes_folder_is_an_eval_set(shapes_dir):
    from mobileseg.eval.datasets import find_pairs, read_label

    dataset, pairs = find_pairs(shapes_dir)
    assert dataset == "shapes" and len(pairs) == 3
    lab = read_label(pairs[0][1], dataset)
    assert lab.shape == (32, 32) and set(np.unique(lab)) <= {0, 1, 2, 3}


def test_report_marks_precision_and_tables_speedup_and_miou_delta(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pandas")
    import json

    from mobileseg.report import build_report

    def rec(model, rt, prec, median):
        fmt = {"onnxruntime": "onnx", "litert": "tflite"}[rt]
        return {
            "schema_version": 1,
            "id": f"local|{model}|512x512|{fmt}|{rt}|{prec}|logits|t1",
            "timestamp": "2026-12-01T00:00:00",
            "model": model,
            "resolution": [512, 512],
            "format": fmt,
            "runtime": rt,
            "runtime_version": "1",
            "precision": prec,
            "graph": "logits",
            "threads": 1,
            "device": {"kind": "local", "model": None, "emulated": False},
            "emulated": False,
            "harness": "python-inproc",
            "stats_ms": {"median": median, "p10": median, "p90": median, "count": 5},
            "samples_ms": [median] * 5,
            "parity": {"ok": True, "rel_l2": 0.01},
            "gflops": 1.0,
            "params": 1_400_000,
            "status": "ok",
        }

    res = tmp_path / "r.jsonl"
    res.write_text(
        "\n".join(
            json.dumps(r)
            for r in (
                rec("topformer-t", "onnxruntime", "fp32", 30.0),
                rec("topformer-t", "onnxruntime", "int8", 20.0),
                rec("topformer-b", "onnxruntime", "fp32", 60.0),
            )
        )
        + "\n"
    )
    ev = tmp_path / "eval.jsonl"
    ev.write_text(
        json.dumps(
            {
                "kind": "eval",
                "model": "topformer-t",
                "dataset": "shapes",
                "format": "onnx",
                "runtime": "onnxruntime",
                "precision": "int8",
                "miou": 80.0,
                "fp32_miou": 81.5,
                "miou_delta": -1.5,
                "timestamp": "2026-12-01T00:00:00",
            }
        )
        + "\n"
    )
    rep = build_report(results=[str(res)], eval_files=[str(ev)], out=tmp_path / "report", dataset="shapes")
    assert any(p.name == "precision-host-onnxruntime.png" for p in rep.files())
    md = (tmp_path / "report" / "report.md").read_text()
    table = md.split("Precision: speed-up and mIoU change against fp32")[1]
    row = next(line for line in table.splitlines() if line.startswith("| host") or "topformer-t" in line)
    assert "| int8 |" in row and "1.50" in row and "-1.50" in row, row
