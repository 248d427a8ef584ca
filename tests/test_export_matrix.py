"""Every registered model x every format, exported at a small resolution and parity-checked (slow), plus
topformer-t at 448 and 512. Failures print the converter's explanation so they can go to the model's author."""
import os

import pytest

import mobileseg
from mobileseg.export import export_model

FORMATS = ["onnx", "ncnn", "tflite"]
MODELS = mobileseg.list_models(task="segmentation") + mobileseg.list_models(task="classification")


def small_res(name):
    spec = mobileseg.get_spec(name)
    m = spec.size_multiple
    side = -(-max(128, spec.min_size) // m) * m
    return side, side


def _check(res, fmt):
    e = res.formats[fmt]
    assert e["ok"], f"{res.manifest['model']} {fmt}: {e.get('error')} parity={e.get('parity')}"
    if fmt == "onnx":
        assert "BatchNormalization" not in e["op_histogram"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MODELS)
def test_every_model_every_format(name, fmt, tmp_path):
    res = export_model(name, small_res(name), formats=fmt, out=str(tmp_path / f"{name}_{fmt}"))
    _check(res, fmt)


@pytest.mark.slow
@pytest.mark.parametrize("res", [448, 512])
def test_topformer_t_full_resolution(res, tmp_path):
    out = export_model("topformer-t", res, out=str(tmp_path / str(res)))
    for fmt in FORMATS:
        _check(out, fmt)
    assert sorted(os.listdir(out.out_dir)) == ["manifest.json", "model.ncnn.bin", "model.ncnn.param", "model.onnx",
                                               "model.tflite", "reference"]


@pytest.mark.slow
def test_fp16_and_argmax(tmp_path):
    out = export_model("topformer-t", 128, precision="fp16", out=str(tmp_path / "h"))
    for fmt in FORMATS:
        _check(out, fmt)
        assert out.formats[fmt]["parity"]["limit_rel_l2"] == 2e-2
    assert out.formats["ncnn"]["info"]["weights_dtype"] == "fp16"
    arg = export_model("topformer-t", 128, graph="argmax", out=str(tmp_path / "a"))
    for fmt in ("onnx", "tflite"):
        _check(arg, fmt)
    # pnnx 20261020 keeps torch.argmax as a layer ncnn cannot run: the failure must name the op and the version
    nc = arg.formats["ncnn"]
    assert nc["ok"] or ("torch.argmax" in nc["error"] and "pnnx" in nc["error"])
