"""int8 end to end: export of two architectures in every int8 format within the recorded limits, the trained
fixture's mIoU cost per runtime within a budget, and a bad calibration caught by its SQNR.

The fixture (tests/fixtures/topformer-t-shapes.pth, made by tools/train_fixture.py) is TopFormer-T trained on the
procedural shapes task; calibration and eval sets are drawn here from their own seeds (never the training seed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mobileseg import formats

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "topformer-t-shapes.pth"
INT8_FORMATS = [f for f, row in formats.FORMATS.items() if "int8" in row.precisions]
# int8 may cost at most this many mIoU points on the fixture against its fp32 artifact on the same images, per runtime.
# Measured (python -m mobileseg.perf.int8, results/reference/int8-host/int8-miou.jsonl, 64 images): -0.14 points on
# onnxruntime, -0.00 on LiteRT; the budget leaves room for the 24 images drawn here.
MIOU_BUDGET = 2.0
# a constant calibration image must cost at least this much SQNR against the real calibration (measured: 30.6 dB
# against 4.0 dB, a 26.6 dB drop, on onnxruntime)
BAD_CALIBRATION_DROP_DB = 15.0


def _need(fmt):
    for mod in {
        "onnx": ("onnx", "onnxruntime"),
        "tflite": ("litert_torch", "ai_edge_quantizer"),
        "ncnn": ("pnnx", "ncnn"),
    }[fmt]:
        pytest.importorskip(mod)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    pytest.importorskip("PIL")
    from mobileseg.export.synthetic import write_split

    root = tmp_path_factory.mktemp("shapes")
    return write_split(root / "calib", 16, seed=10), write_split(root / "val", 24, seed=3)


@pytest.fixture(scope="module")
def fixture_evals(sets, tmp_path_factory):
    """The fixture evaluated in int8 (and fp32, on the same images) per int8 format: exports once for all tests."""
    from mobileseg.eval.evaluate import evaluate

    calib, val = sets
    root = tmp_path_factory.mktemp("export")
    out = {}
    for fmt in INT8_FORMATS:
        _need(fmt)
        out[fmt] = evaluate(
            "topformer-t",
            val,
            fmt=fmt,
            weights=FIXTURE,
            res=128,
            precision="int8",
            calib=calib,
            export_root=root,
            progress=False,
        )
    return out


@pytest.mark.parametrize("fmt", INT8_FORMATS)
def test_fixture_int8_export_passes_its_limits_and_records_the_calibration(fixture_evals, sets, fmt):
    rec = fixture_evals[fmt]
    man = json.loads((Path(rec["export_dir"]) / "manifest.json").read_text())
    entry = man["formats"][fmt]
    p = entry["parity"]
    assert entry["ok"], p
    assert p["sqnr_db"] >= p["limit_sqnr_db"] and p["limit_rel_l2"] == pytest.approx(10 ** (-p["limit_sqnr_db"] / 20))
    cal = man["int8"]["calibration"]
    assert cal["images"] == 16 and len(cal["sha256"]) == 64 and cal["folder"] == str(Path(sets[0]).resolve())
    assert entry["info"]["int8"]["scheme"] and "float_ops" in entry["info"]["int8"]
    assert entry["info"]["io_dtype"] == "float32"


@pytest.mark.parametrize("fmt", INT8_FORMATS)
def test_fixture_int8_miou_within_budget_of_fp32(fixture_evals, fmt):
    rec = fixture_evals[fmt]
    assert rec["fp32_miou"] > 60, rec  # the fixture really segments (chance is about 20%)
    assert rec["miou_delta"] >= -MIOU_BUDGET, rec


@pytest.mark.parametrize("fmt", INT8_FORMATS)
def test_baseline_int8_export_passes_its_limits(tmp_path, fmt):
    """A second architecture (LR-ASPP MobileNetV3, random weights, synthetic calibration: said so in the manifest)."""
    _need(fmt)
    from mobileseg.export import export_model

    r = export_model("lraspp-mbv3-large", 128, formats=[fmt], precision="int8", out=str(tmp_path / "e"))
    assert r.ok, r.manifest["formats"][fmt]["parity"]
    assert "synthetic" in r.manifest["int8"]["calibration"]["note"]
    if fmt == "tflite":
        # its head's input spans ~1e-8 on random weights: without the widened range the int32 bias of conv_seg
        # overflowed (rel L2 0.54)
        widened = r.manifest["formats"][fmt]["info"]["int8"]["ranges_widened_for_int32_bias"]
        assert any(name.endswith("LRASPPHead_decode_head;1") for name in widened), widened


def test_constant_calibration_is_a_large_sqnr_drop(fixture_evals, tmp_path):
    _need("onnx")
    from mobileseg.export import export_model
    from mobileseg.export.calibration import CONSTANT

    good = json.loads((Path(fixture_evals["onnx"]["export_dir"]) / "manifest.json").read_text())
    bad = export_model(
        "topformer-t",
        128,
        formats=["onnx"],
        precision="int8",
        weights=str(FIXTURE),
        calib=CONSTANT,
        out=str(tmp_path / "bad"),
    )
    g, b = good["formats"]["onnx"]["parity"], bad.manifest["formats"]["onnx"]["parity"]
    assert g["sqnr_db"] - b["sqnr_db"] >= BAD_CALIBRATION_DROP_DB, (g["sqnr_db"], b["sqnr_db"])
    assert not bad.ok  # outside the int8 limit: the export says so


def test_keep_float_layers_stay_float_and_unknown_ones_are_one_sentence(tmp_path):
    _need("onnx")
    from mobileseg.errors import MobilesegError
    from mobileseg.export import export_model

    r = export_model(
        "topformer-t",
        64,
        formats=["onnx"],
        precision="int8",
        weights=str(FIXTURE),
        int8_keep_float=["decode_head.conv_seg"],
        calib_count=4,
        out=str(tmp_path / "k"),
    )
    info = r.manifest["formats"]["onnx"]["info"]["int8"]
    assert info["kept_float_nodes"] == ["/decode_head/conv_seg/Conv"] and info["float_ops"].get("Conv") == 1
    assert r.manifest["int8"]["keep_float"] == ["decode_head.conv_seg"]
    with pytest.raises(MobilesegError, match="no ONNX node is named decode_head.nope"):
        export_model(
            "topformer-t",
            64,
            formats=["onnx"],
            precision="int8",
            int8_keep_float=["decode_head.nope"],
            calib_count=2,
            out=str(tmp_path / "n"),
        )


@pytest.fixture(scope="module")
def per_layer_exports(sets, tmp_path_factory):
    """The fixture at 64 px in every int8 format beside its fp32 reference module, well and badly calibrated."""
    from mobileseg.export import export_model
    from mobileseg.export.calibration import CONSTANT

    for fmt in INT8_FORMATS:
        _need(fmt)
    root = tmp_path_factory.mktemp("per-layer")
    good = export_model(
        "topformer-t",
        64,
        formats=["torch", *INT8_FORMATS],
        precision="int8",
        weights=str(FIXTURE),
        calib=sets[0],
        out=str(root / "good"),
    )
    bad = export_model(
        "topformer-t",
        64,
        formats=["torch", "ncnn", "onnx"],
        precision="int8",
        weights=str(FIXTURE),
        calib=CONSTANT,
        calib_count=2,
        out=str(root / "bad"),
    )
    return good, bad


@pytest.mark.parametrize("fmt", INT8_FORMATS)
def test_per_layer_int8_finds_no_diverging_layer_in_a_good_calibration(per_layer_exports, fmt):
    from mobileseg.numerics.analyze import per_layer

    good, _ = per_layer_exports
    assert good.manifest["formats"]["torch"]["ok"]  # the fp32 reference an int8 export may carry
    rep = per_layer(good.out_dir, fmt, precision="int8")
    judged = [t for t in rep["layers"] if t.get("rel_l2") is not None]
    assert len(judged) >= 40, len(judged)  # int8 tensors are compared too (LiteRT's dequantized by their scales)
    assert rep["first_diverging"] is None, rep["first_diverging"]
    assert rep["limit_rel_l2"] == pytest.approx(0.4)


@pytest.mark.parametrize("fmt", ["ncnn", "onnx"])
def test_per_layer_int8_puts_a_constant_calibration_at_the_first_layer(per_layer_exports, fmt):
    from mobileseg.numerics.analyze import per_layer

    _, bad = per_layer_exports
    first = per_layer(bad.out_dir, fmt, precision="int8")["first_diverging"]
    assert first is not None and first["previous_rel_l2"] is None, first  # nothing before it diverged
    assert first["module"].startswith("backbone.tpm.stem"), first


def test_transformer_int8_on_ncnn_runs_its_linear_layers_in_int8(tmp_path):
    """SegFormer's linear layers reach ncnn as Gemm: int8 too (18=2), so its weights shrink to int8."""
    _need("ncnn")
    from mobileseg.export import export_model

    r = export_model("segformer-b0", 64, formats=["ncnn"], precision="int8", calib_count=8, out=str(tmp_path / "e"))
    entry = r.manifest["formats"]["ncnn"]
    assert r.ok, entry["parity"]
    assert "Gemm" not in entry["info"]["int8"]["float_ops"], entry["info"]["int8"]["float_ops"]
    size = sum(f["bytes"] for f in entry["files"])
    assert size < 0.35 * 4 * 3.7e6, size  # SegFormer-B0's 3.7 M weights: int8 bytes, not fp32 ones
