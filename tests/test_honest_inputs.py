"""Issue 25: every input a user brings is used as it is, judged by the runtime, or refused in one sentence.

Files users bring (custom ops the runtime implements, arrays in another layout or dtype), damaged exports (checked
against the manifest's sha256 before loading), precisions that are not what they say, torn results files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import artifact_fixtures as af
from cli_helpers import one_sentence
from mobileseg import manifest as _manifest
from mobileseg.cli import main

BENCH = ["bench", "--device", "local", "--warmup", "1", "--repeats", "2", "--no-sgemm"]

# MediaPipe's selfie segmentation model, as the mediapipe 0.10.21 wheel on PyPI ships it (no part of mobileseg wrote
# it; it uses MediaPipe's custom op Convolution2DTransposeBias, which LiteRT registers). .ci/run extracts it into
# $MOBILESEG_CACHE/third_party/ (pip download --no-deps: the wheel only, nothing installed).
SELFIE = "selfie_segmentation.tflite"
SELFIE_SHA256 = "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"


def third_party(name: str, sha256: str) -> Path:
    cache = Path(os.environ.get("MOBILESEG_CACHE") or Path.home() / ".cache" / "mobileseg")
    path = cache / "third_party" / name
    if not path.is_file():
        pytest.skip(
            f"{path} is absent: .ci/run extracts it from the mediapipe wheel (pip download mediapipe==0.10.21 "
            "--no-deps)"
        )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256, f"{path} is not the pinned file"
    return path


def records(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(out.glob("*.jsonl")) for line in p.read_text().splitlines()]


# -- custom ops: the runtime is the judge --------------------------------------------------------------------------
def test_third_party_tflite_with_a_custom_op_litert_registers_is_benched(tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    path = third_party(SELFIE, SELFIE_SHA256)
    rc = main(BENCH + ["--artifact", str(path), "--out", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert rc == 0, err
    (rec,) = records(tmp_path / "runs")
    assert rec["status"] == "ok" and rec["runtime"] == "litert" and rec["stats_ms"]["count"] == 2
    assert rec["artifact"]["sha256"] == SELFIE_SHA256 and rec["artifact"]["input"]["layout"] == "NHWC"
    assert "custom op Convolution2DTransposeBias, which LiteRT resolves" in err


def test_tflite_custom_op_litert_lacks_is_named(tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    data = (
        third_party(SELFIE, SELFIE_SHA256)
        .read_bytes()
        .replace(b"Convolution2DTransposeBias", b"Convolution2DTransposeBiaz")
    )
    bad = tmp_path / "renamed.tflite"
    bad.write_bytes(data)
    err = one_sentence(capsys, BENCH + ["--artifact", str(bad), "--out", str(tmp_path / "r")])
    assert "custom op 'Convolution2DTransposeBiaz'" in err and "LiteRT does not have" in err


def _ms_onnx(folder: Path, op: str) -> Path:
    """A graph of one com.microsoft node (``Gelu`` is in onnxruntime's contrib ops; ``Sparkle`` is not)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    model = helper.make_model(
        helper.make_graph([helper.make_node(op, ["x"], ["y"], domain="com.microsoft")], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    path = folder / f"{op.lower()}.onnx"
    onnx.save(model, str(path))
    return path


def test_onnx_com_microsoft_op_onnxruntime_implements_runs_and_one_it_lacks_is_named(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from mobileseg.bench.artifact import inspect

    info = inspect(_ms_onnx(tmp_path, "Gelu"))
    assert info.custom_ops == [] and any("com.microsoft::Gelu, which onnxruntime implements" in n for n in info.notes)
    rc = main(
        BENCH
        + [
            "--artifact",
            str(tmp_path / "gelu.onnx"),
            "--out",
            str(tmp_path / "runs"),
            "--export-dir",
            str(tmp_path / "e"),
        ]
    )
    assert rc == 0 and records(tmp_path / "runs")[0]["status"] == "ok"
    capsys.readouterr()
    err = one_sentence(capsys, BENCH + ["--artifact", str(_ms_onnx(tmp_path, "Sparkle")), "--out", str(tmp_path)])
    assert "custom op 'com.microsoft::Sparkle'" in err and "onnxruntime does not have" in err


# -- --input arrays: never reshaped across axes ----------------------------------------------------------------------
def _info(shape, dtype="float32", fmt="onnx"):
    from mobileseg.bench.artifact_read import ArtifactInfo

    return ArtifactInfo(Path("m.onnx"), fmt, [], "x", list(shape), dtype)


def test_input_in_the_other_layout_is_transposed_with_a_note():
    from mobileseg.bench.artifact import input_for

    img = np.random.default_rng(0).standard_normal((64, 64, 3)).astype(np.float32)
    info = _info([1, 3, 64, 64])
    x = input_for(info, img)  # an HxWxC image for a 1x3xHxW model: batch added, then transposed, never reshaped
    assert x.shape == (1, 3, 64, 64) and np.array_equal(x[0], img.transpose(2, 0, 1))
    assert any("no batch axis" in n for n in info.notes) and any("is NHWC: transposed" in n for n in info.notes)
    info = _info([1, 3, 64, 64])
    assert np.array_equal(input_for(info, img[None])[0], img.transpose(2, 0, 1)) and info.notes


@pytest.mark.parametrize("shape", [(1, 64, 3, 64), (3 * 64 * 64,), (1, 3, 32, 128), (2, 3, 64, 64)])
def test_input_of_another_shape_is_refused_not_reshaped(shape):
    from mobileseg.bench.artifact import ArtifactError, input_for

    with pytest.raises(ArtifactError, match="never reshapes"):
        input_for(_info([1, 3, 64, 64]), np.zeros(shape, np.float32))


def test_input_dtype_is_converted_only_when_every_value_survives():
    from mobileseg.bench.artifact import ArtifactError, input_for

    info = _info([1, 3, 4, 4])
    x = input_for(info, np.arange(48, dtype=np.int64).reshape(1, 3, 4, 4))
    assert x.dtype == np.float32 and x.ravel()[47] == 47 and any("int64: converted" in n for n in info.notes)
    with pytest.raises(ArtifactError, match="cannot hold"):
        input_for(_info([1, 3, 4, 4]), np.full((1, 3, 4, 4), 2**40, np.int64))
    with pytest.raises(ArtifactError, match="cannot hold"):
        input_for(_info([1, 3, 4, 4], "uint8"), np.full((1, 3, 4, 4), 300, np.int64))
    with pytest.raises(ArtifactError, match="save the array as uint8"):
        input_for(_info([1, 3, 4, 4], "uint8"), np.zeros((1, 3, 4, 4), np.float32))


def test_parity_reshapes_only_unit_axes():
    from mobileseg.parity import check

    ref = np.random.default_rng(0).standard_normal((1, 4, 6, 6))
    assert check(ref[0], ref)["ok"]  # the batch axis only
    bad = check(ref.transpose(0, 2, 3, 1), ref)  # NHWC against NCHW: same size, other values at each index
    assert not bad["ok"] and bad["error"] == "output shape [1, 6, 6, 4] != reference shape [1, 4, 6, 6]"


def test_reference_of_the_wrong_shape_prints_why(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    x = np.random.default_rng(3).standard_normal((1, 3, af.SIZE, af.SIZE)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ref = af.torch_output(False, x)
    np.save(tmp_path / "ref.npy", np.concatenate([ref, ref[:, :1]], axis=1))
    rc = main(
        BENCH
        + [
            "--artifact",
            str(af.write_onnx(tmp_path)),
            "--input",
            str(tmp_path / "x.npy"),
            "--reference",
            str(tmp_path / "ref.npy"),
            "--out",
            str(tmp_path / "runs"),
            "--export-dir",
            str(tmp_path / "e"),
        ]
    )
    out = capsys.readouterr()
    assert rc == 1
    c = ref.shape[1]
    why = f"output shape [1, {c}, {ref.shape[2]}, {ref.shape[3]}] != reference shape [1, {c + 1}"
    assert f"parity_failed: {why}" in out.out and why in out.err  # the table and the progress line


def test_bench_again_without_resume_says_so(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    argv = BENCH + [
        "--artifact",
        str(af.write_onnx(tmp_path)),
        "--out",
        str(tmp_path / "runs"),
        "--export-dir",
        str(tmp_path / "e"),
    ]
    assert main(argv) == 0
    assert "already have records" not in capsys.readouterr().err
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "1 of these cells already have records" in err and "--resume" in err
    assert main(argv + ["--resume"]) == 0 and "already have records" not in capsys.readouterr().err


# -- damaged exports ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def export(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from mobileseg.export import export_model

    res = export_model("topformer-t", 64, formats=["onnx"], out=str(tmp_path_factory.mktemp("e") / "t"))
    assert res.ok
    return Path(res.out_dir)


def _copy(export, tmp_path, name="copy") -> Path:
    dst = tmp_path / name
    shutil.copytree(export, dst)
    return dst


def test_damaged_artifact_is_named_before_loading(export, tmp_path, capsys):
    bad = _copy(export, tmp_path)
    data = bytearray((bad / "model.onnx").read_bytes())
    (bad / "model.onnx").write_bytes(bytes(data[: len(data) // 2]))
    for argv in (["parity", str(bad), "--format", "onnx"], ["compare", "--run", str(bad), str(export)]):
        err = one_sentence(capsys, argv)
        assert f"{bad / 'model.onnx'} differs from its manifest" in err
        assert "--formats onnx" in err and "--force` rebuilds it" in err and "--allow-edited" in err


def test_an_edited_artifact_runs_with_allow_edited(export, tmp_path, capsys, monkeypatch):
    import onnx
    from onnx import numpy_helper

    mod = _copy(export, tmp_path)
    m = onnx.load(str(mod / "model.onnx"))
    t = max(m.graph.initializer, key=lambda t: np.prod(t.dims))
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 1.5, t.name))  # a deliberate edit
    onnx.save(m, str(mod / "model.onnx"))
    monkeypatch.delenv(_manifest.ALLOW_EDITED_ENV, raising=False)  # restored (absent) after the test
    assert "differs from its manifest" in one_sentence(capsys, ["parity", str(mod), "--format", "onnx"])
    rc = main(["parity", str(mod), "--format", "onnx", "--allow-edited", "--json"])
    out = capsys.readouterr().out
    assert rc == 1 and json.loads(out)["rel_l2"] > 1e-4  # it ran: the edit shows in the figures


def test_manifest_that_is_not_an_object_is_one_sentence(export, tmp_path, capsys):
    bad = _copy(export, tmp_path)
    (bad / "manifest.json").write_text("[]")
    err = one_sentence(capsys, ["parity", str(bad), "--format", "onnx"])
    assert "holds a JSON list, not the object an export manifest is" in err


# -- precisions that are not what they say -------------------------------------------------------------------------
def test_parity_refuses_a_precision_the_export_was_not_made_at(export, capsys):
    err = one_sentence(capsys, ["parity", str(export), "--format", "onnx", "--precision", "int8"])
    assert "was made at fp32, not int8" in err and "--precision int8" in err


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_export_torch_alone_at_another_precision_is_one_sentence(tmp_path, capsys, precision):
    err = one_sentence(
        capsys,
        [
            "export",
            "--model",
            "topformer-t",
            "--res",
            "64",
            "--precision",
            precision,
            "--formats",
            "torch",
            "--out",
            str(tmp_path / "t"),
        ],
    )
    assert "would write only the fp32 model.pt" in err
    assert not (tmp_path / "t").exists()


def test_export_into_a_folder_of_another_precision_keeps_it(export, tmp_path, capsys):
    folder = _copy(export, tmp_path)
    before = (folder / "manifest.json").read_text()
    err = one_sentence(
        capsys,
        [
            "export",
            "--model",
            "topformer-t",
            "--res",
            "64",
            "--precision",
            "fp16",
            "--formats",
            "onnx",
            "--out",
            str(folder),
        ],
    )
    assert "already holds another export (onnx; precision fp32 (this export: fp16))" in err
    assert (folder / "manifest.json").read_text() == before


def test_failed_export_leaves_no_empty_folder(tmp_path, capsys):
    out = tmp_path / "t"
    one_sentence(
        capsys,
        [
            "export",
            "--model",
            "topformer-t",
            "--res",
            "64",
            "--precision",
            "int8",
            "--formats",
            "onnx",
            "--calib",
            str(tmp_path / "no-such-folder"),
            "--out",
            str(out),
        ],
    )
    assert not out.exists()


def test_factory_that_exits_is_one_sentence(capsys):
    err = one_sentence(capsys, ["info", "--model", "builtins:exit"])
    assert "tried to exit" in err and "returning an nn.Module" in err


# -- results files -------------------------------------------------------------------------------------------------
def _results(tmp_path) -> Path:
    from mobileseg.results.record import cell_key

    rows = []
    for i, model in enumerate(("topformer-t", "topformer-s", "topformer-t")):
        rows.append(
            {
                "schema_version": 1,
                "id": cell_key("host", model, (512, 512), "onnx", "onnxruntime", "fp32", "logits", 1),
                "timestamp": f"2026-01-01T00:00:0{i}",
                "model": model,
                "resolution": [512, 512],
                "format": "onnx",
                "runtime": "onnxruntime",
                "precision": "fp32",
                "graph": "logits",
                "threads": 1,
                "status": "ok",
                "device": {"kind": "local", "model": "host"},
                "stats_ms": {"median": 10.0 + i, "count": 5},
                "samples_ms": [10.0 + i] * 5,
            }
        )
    path = tmp_path / "a.jsonl"
    lines = [json.dumps(r) for r in rows]
    path.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2] + "\n" + lines[2] + "\n")  # line 2 torn
    return path


def test_torn_line_in_the_middle_is_skipped_with_a_note(tmp_path, capsys):
    from mobileseg.results.store import read_records

    path = _results(tmp_path)
    recs, notes = read_records([path])
    assert len(recs) == 2 and notes == [f"{path}:2: ignored a line that is not a JSON record (torn or edited)"]
    (tmp_path / "b.jsonl").write_text(path.read_text())
    assert main(["compare", str(path), str(tmp_path / "b.jsonl")]) == 0
    err = capsys.readouterr().err
    assert f"note: {path}:2: ignored" in err
    assert f"note: A ({path}) holds 1 repeated cell record(s): the newest of each cell is compared" in err


def test_report_shows_skipped_lines_and_kept_repeats_and_checks_the_dataset(tmp_path):
    pytest.importorskip("matplotlib")
    from mobileseg.report import build_report
    from mobileseg.errors import DatasetError

    path = _results(tmp_path)
    rep = build_report(results=[path], out=tmp_path / "report")
    assert any(f"{path}:2: ignored" in n for n in rep.notes)
    assert any("1 record(s) repeat a cell" in n and "newest" in n for n in rep.notes)
    with pytest.raises(DatasetError, match="unknown dataset 'ade20' \\(did you mean ade20k\\?\\)"):
        build_report(results=[path], dataset="ade20", out=tmp_path / "r2")


def test_compare_a_file_with_itself_is_one_sentence(tmp_path, capsys):
    path = _results(tmp_path)
    assert "are the same file" in one_sentence(capsys, ["compare", str(path), str(path)])


def test_artifact_precision_that_changes_nothing_is_refused(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    err = one_sentence(
        capsys,
        BENCH
        + [
            "--artifact",
            str(af.write_onnx(tmp_path)),
            "--precisions",
            "int8",
            "--out",
            str(tmp_path / "runs"),
            "--export-dir",
            str(tmp_path / "e"),
        ],
    )
    assert "--precisions int8 does not change what onnxruntime runs" in err
    assert not (tmp_path / "runs").exists()


def test_bench_torch_at_fp16_is_refused_when_named_and_left_out_otherwise(tmp_path, capsys):
    from mobileseg.bench.model_cells import command_line_cells

    err = one_sentence(
        capsys,
        BENCH
        + [
            "--models",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "torch",
            "--precisions",
            "fp16",
            "--out",
            str(tmp_path),
        ],
    )
    assert "fp16 is not available on torch" in err
    cells = command_line_cells(["topformer-t"], [64], None, ["fp16"])
    assert cells and "torch" not in {c.runtime for c in cells}  # its model.pt would be fp32 labelled fp16


def test_a_results_file_named_twice_is_read_once(tmp_path):
    from mobileseg.results.store import read_records

    path = _results(tmp_path)
    recs, _ = read_records([path, tmp_path, str(tmp_path / "*.jsonl")])
    assert len(recs) == 2
    assert len(recs) == 2


def test_allow_edited_lasts_one_command(tmp_path, monkeypatch, capsys):
    """--allow-edited sets the variable for its own command only: a later main() in the same process (the Python
    API, the tests) checks hashes again (it leaked before, and hid the damaged-file check of later calls)."""
    from mobileseg.cli import main

    monkeypatch.delenv(_manifest.ALLOW_EDITED_ENV, raising=False)
    assert main(["parity", str(tmp_path / "missing"), "--format", "onnx", "--allow-edited"]) != 0
    capsys.readouterr()
    assert _manifest.ALLOW_EDITED_ENV not in os.environ
