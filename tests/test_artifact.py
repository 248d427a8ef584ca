"""``mobileseg bench --artifact``: model files written by other tools, benched on the host.

The files come straight from ``torch.onnx.export``, ``litert_torch.convert`` and ``pnnx`` (tests/artifact_fixtures.py),
never from mobileseg's exporter. Parity is checked against the torch module's output saved as ``--reference``, or
across formats when several files of one model are given; a lone file says "parity not checked".
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import artifact_fixtures as af
from cli_helpers import one_sentence as cli_one_sentence
from mobileseg.cli import main
from mobileseg.results.record import validate_record

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

BENCH = ["bench", "--device", "local", "--warmup", "1", "--repeats", "2", "--no-sgemm", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("foreign")
    x = np.random.default_rng(3).standard_normal((1, 3, af.SIZE, af.SIZE)).astype(np.float32)
    np.save(d / "x.npy", x)
    np.save(d / "ref.npy", af.torch_output(False, x))
    np.save(d / "wrong.npy", af.torch_output(False, x) + 0.5)
    return {
        "dir": d,
        "onnx": af.write_onnx(d),
        "dyn": af.write_onnx(d, "dyn.onnx", dynamic=True),
        "custom": af.write_custom_op_onnx(d),
        "x": d / "x.npy",
        "ref": d / "ref.npy",
        "wrong": d / "wrong.npy",
    }


def bench(tmp_path, *argv) -> tuple[int, list[dict]]:
    out = tmp_path / "runs"
    rc = main(BENCH + ["--out", str(out), "--export-dir", str(tmp_path / "export"), *map(str, argv)])
    recs = [json.loads(line) for p in sorted(out.glob("*.jsonl")) for line in p.read_text().splitlines()]
    return rc, recs


def bench_error(capsys, tmp_path, *argv) -> str:
    return cli_one_sentence(
        capsys, BENCH + ["--out", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "export"), *map(str, argv)]
    )


def test_onnx_from_torch_onnx_export_against_reference(files, tmp_path):
    rc, (rec,) = bench(tmp_path, "--artifact", files["onnx"], "--input", files["x"], "--reference", files["ref"])
    assert rc == 0 and rec["status"] == "ok" and not validate_record(rec)
    assert rec["model"] == "tiny.onnx" and rec["model_source"] == "artifact"
    art = rec["artifact"]
    from mobileseg.hashing import sha256_file

    assert art["sha256"] == sha256_file(files["onnx"]) and art["name"] == "tiny.onnx"
    assert art["input"] == {"name": "img", "shape": [1, 3, 32, 32], "dtype": "float32", "layout": "NCHW"}
    assert f"tiny.onnx@{art['sha256'][:12]}" in rec["id"]
    assert rec["parity"]["rel_l2"] < 1e-5 and rec["parity"]["against"] == "--reference ref.npy"
    assert rec["resolution"] == [32, 32] and rec["runtime"] == "onnxruntime"


def test_wrong_reference_fails_parity(files, tmp_path):
    rc, (rec,) = bench(tmp_path, "--artifact", files["onnx"], "--input", files["x"], "--reference", files["wrong"])
    assert rc == 1 and rec["status"] == "parity_failed" and rec["parity"]["ok"] is False


def test_lone_file_says_parity_not_checked_and_uses_the_seeded_input(files, tmp_path):
    rc, (rec,) = bench(tmp_path, "--artifact", files["onnx"])
    assert rc == 0 and rec["parity"]["checked"] is False
    assert rec["parity"]["reason"].startswith("parity not checked")
    staged = np.load(rec["artifact"]["export_dir"] + "/reference/input.npy")
    from mobileseg.bench.artifact import seeded_input

    assert np.array_equal(staged, seeded_input([1, 3, 32, 32], "float32", "NCHW"))
    assert -2.2 < staged.min() < -1.5 and 2.0 < staged.max() < 2.7  # ImageNet-normalised 0..255 pixels


def test_dynamic_dims_need_input_shape(files, tmp_path, capsys):
    err = bench_error(capsys, tmp_path, "--artifact", files["dyn"])
    assert "dynamic" in err and "--input-shape 1x3x" in err
    rc, (rec,) = bench(
        tmp_path,
        "--artifact",
        files["dyn"],
        "--input-shape",
        "1x3x32x32",
        "--input",
        files["x"],
        "--reference",
        files["ref"],
    )
    assert rc == 0 and rec["parity"]["ok"]
    err = bench_error(capsys, tmp_path, "--artifact", files["onnx"], "--input-shape", "1x3x64x64")
    assert "conflicts with tiny.onnx" in err and "fixed at 32" in err


def test_cross_format_parity_between_two_files_of_one_model(files, tmp_path):
    """Two files with the same input are one model: the second is judged against the first's output."""
    rc, recs = bench(tmp_path, "--artifact", files["onnx"], files["dyn"], "--input-shape", "1x3x32x32")
    assert rc == 0 and [r["model"] for r in recs] == ["tiny.onnx", "dyn.onnx"]
    assert recs[0]["parity"]["checked"] is False and "reference of the other files" in recs[0]["parity"]["reason"]
    assert recs[1]["parity"]["ok"] and "cross-format" in recs[1]["parity"]["against"]
    assert recs[1]["parity"]["against"].startswith("tiny.onnx on onnxruntime")


def test_custom_op_is_one_sentence_naming_it(files, tmp_path, capsys):
    err = bench_error(capsys, tmp_path, "--artifact", files["custom"])
    assert "custom op 'my.ops::Sparkle'" in err and "onnxruntime does not have" in err


def test_every_path_error_is_one_sentence(files, tmp_path, capsys):
    d = files["dir"]
    (d / "notes.txt").write_text("hello")
    (d / "broken.onnx").write_bytes(b"not a protobuf at all")
    cases = [
        (["--artifact", d / "missing.onnx"], "does not exist"),
        (["--artifact", d], "is a folder, not a file"),
        (["--artifact", d / "notes.txt"], "is not a model file mobileseg can bench"),
        (["--artifact", d / "broken.onnx"], "is not an ONNX model"),
        (["--artifact", files["onnx"], "--input", d / "missing.npy"], "--input"),
        (["--artifact", files["onnx"], "--input", files["onnx"]], "is not a .npy file"),
        (["--artifact", files["onnx"], "--reference", d], "is a folder"),
        (["--artifact", files["onnx"], "--input-shape", "1xbig"], "cannot read input shape"),
        (["--artifact", files["onnx"], "--models", "topformer-t"], "drop --suite, --models"),
        (["--models", "topformer-t", "--input-shape", "1x3x64x64"], "goes with --artifact"),
        (["--artifact", files["onnx"], "--runtimes", "ncnn"], "names no runtime of tiny.onnx"),
    ]
    for argv, want in cases:
        assert want in bench_error(capsys, tmp_path, *argv), argv
    (d / "tiny.ncnn.param").write_text("7767517\n1 1\nInput in0 0 1 in0\n")
    assert "weights of" in bench_error(capsys, tmp_path, "--artifact", d / "tiny.ncnn.param")


def test_input_in_the_other_layout_and_wrong_shape(files, tmp_path, capsys):
    from mobileseg.bench.artifact import inspect, input_for

    info = inspect(files["onnx"])
    x = np.load(files["x"])
    assert np.array_equal(input_for(info, x.transpose(0, 2, 3, 1)), x)  # an NHWC --input for an NCHW file
    np.save(files["dir"] / "small.npy", x[:, :, :16])
    err = bench_error(capsys, tmp_path, "--artifact", files["onnx"], "--input", files["dir"] / "small.npy")
    assert "--input has shape 1x3x16x32" in err


def test_suite_entry_with_a_path(files, tmp_path):
    suite = tmp_path / "mine.toml"
    suite.write_text(
        f'name = "mine"\n[[cells]]\nartifacts = ["{files["onnx"].name}"]\ninput = "x.npy"\nreference = "ref.npy"\n'
    )
    (files["dir"] / "mine.toml").write_text(suite.read_text())  # paths are relative to the suite file
    rc, (rec,) = bench(tmp_path, "--suite", files["dir"] / "mine.toml")
    assert rc == 0 and rec["model"] == "tiny.onnx" and rec["parity"]["ok"]


def test_suite_artifact_group_errors():
    from mobileseg.bench.suite import SuiteError, parse_suite

    with pytest.raises(SuiteError, match="unknown key 'resolutions'"):
        parse_suite({"cells": [{"artifacts": ["a.onnx"], "resolutions": [64]}]})
    with pytest.raises(SuiteError, match="must be a list"):
        parse_suite({"cells": [{"artifacts": "a.onnx"}]})
    s = parse_suite({"cells": [{"artifacts": ["a.onnx"]}]}, base="/models")
    assert s.artifact_groups[0]["artifacts"] == ["/models/a.onnx"] and s.cells() == []


def test_layout_guess():
    from mobileseg.bench.artifact import guess_layout

    assert guess_layout([1, 3, 224, 224], "onnx") == "NCHW"
    assert guess_layout([1, 224, 224, 3], "onnx") == "NHWC"
    assert guess_layout([1, 3, 3, 3], "tflite") == "NHWC" and guess_layout([1, 3, 3, 3], "ncnn") == "NCHW"


@pytest.mark.slow
def test_tflite_nhwc_and_ncnn_from_other_tools(files, tmp_path, capsys):
    """litert_torch.convert (an NCHW and an NHWC module) and pnnx: each against the torch output, and all four
    files of the one model across formats."""
    pytest.importorskip("litert_torch")
    pytest.importorskip("pnnx")
    d = files["dir"]
    tfl, nhwc, param = af.write_tflite(d), af.write_tflite(d, "nhwc.tflite", nhwc=True), af.write_ncnn(d)
    from mobileseg.bench.artifact import inspect

    info = inspect(nhwc)
    assert info.layout == "NHWC" and info.input_shape == [1, af.SIZE, af.SIZE, 3]
    rc, recs = bench(tmp_path, "--artifact", tfl, nhwc, param, "--input", files["x"], "--reference", files["ref"])
    assert rc == 0, recs
    assert [r["runtime"] for r in recs] == ["litert", "litert", "ncnn"]
    assert all(r["parity"]["ok"] and r["parity"]["rel_l2"] < 1e-5 for r in recs)
    assert recs[1]["artifact"]["input"]["layout"] == "NHWC"
    rc, recs = bench(tmp_path / "cross", "--artifact", files["onnx"], nhwc, param)  # seeded input, no reference
    assert rc == 0 and recs[0]["parity"]["checked"] is False
    assert all(r["parity"]["ok"] and "cross-format" in r["parity"]["against"] for r in recs[1:])
    custom = af.write_custom_op_tflite(tfl)
    capsys.readouterr()  # the notes of the runs above
    err = bench_error(capsys, tmp_path, "--artifact", custom)
    assert "custom op 'Sparkle'" in err and "LiteRT does not have" in err
