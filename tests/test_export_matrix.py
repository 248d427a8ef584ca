"""Every registered model x every format, exported at the smallest resolution it allows and parity-checked (slow),
plus topformer-t at 448 and 512.

Each model is built, folded and traced once for all three formats (one ``export_model`` call per model, shared by
that model's three tests). A pair a converter truly cannot handle is listed in ``KNOWN_LIMITS`` with the words its
explanation must contain (op, converter and version): the test asserts exactly that failure, so a listed pair that
starts to pass, or fails for another reason, fails the test, and any unlisted failure fails it too.
"""

import os

import pytest

import mobileseg
from mobileseg.export import export_model

FORMATS = ["onnx", "ncnn", "tflite"]
MODELS = mobileseg.list_models(task="segmentation") + mobileseg.list_models(task="classification")

# (model, format) -> substrings the recorded error must contain. Empty: every pair passes parity.
KNOWN_LIMITS: dict[tuple[str, str], list[str]] = {}


def small_res(name):
    """The smallest square input the model allows (keeps the matrix within a CI budget on 2 cores)."""
    spec = mobileseg.get_spec(name)
    m = spec.size_multiple
    side = -(-max(spec.min_size, m) // m) * m
    spec.check_resolution(side, side)
    return side, side


def _check(res, fmt):
    e = res.formats[fmt]
    assert e["ok"], f"{res.manifest['model']} {fmt}: {e.get('error')} parity={e.get('parity')}"
    p = e["parity"]
    assert p.get("ok") is True and p.get("checked", True) is not False
    if fmt == "onnx":
        assert "BatchNormalization" not in e["op_histogram"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    done = {}

    def get(name):
        if name not in done:
            out = tmp_path_factory.mktemp(name)
            done[name] = export_model(name, small_res(name), formats=FORMATS, out=str(out))
        return done[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MODELS)
def test_every_model_every_format(name, fmt, exports):
    res = exports(name)
    known = KNOWN_LIMITS.get((name, fmt))
    if known is None:
        _check(res, fmt)
        return
    e = res.formats[fmt]
    assert not e["ok"], f"{name} {fmt} now passes: remove it from KNOWN_LIMITS"
    for word in known:
        assert word in (e.get("error") or ""), f"{name} {fmt}: expected the known limitation {known}, got {e}"


@pytest.mark.slow
@pytest.mark.parametrize("res", [448, 512])
def test_topformer_t_full_resolution(res, tmp_path):
    out = export_model("topformer-t", res, out=str(tmp_path / str(res)))
    for fmt in FORMATS:
        _check(out, fmt)
    assert sorted(os.listdir(out.out_dir)) == [
        "manifest.json",
        "model.ncnn.bin",
        "model.ncnn.param",
        "model.onnx",
        "model.tflite",
        "reference",
    ]


@pytest.mark.slow
def test_fp16(tmp_path):
    out = export_model("topformer-t", 128, precision="fp16", out=str(tmp_path / "h"))
    from mobileseg.parity import rel_l2_limit

    for fmt in FORMATS:
        _check(out, fmt)
        assert out.formats[fmt]["parity"]["limit_rel_l2"] == rel_l2_limit("fp16", out.formats[fmt]["runtime"]["name"])
    assert out.formats["ncnn"]["info"]["weights_dtype"] == "fp16"
    # ONNX is fp16 for real: fp16 weights and compute, the float32 input and output the manifest declares
    import onnx

    m = onnx.load(os.path.join(out.out_dir, "model.onnx"))
    assert out.formats["onnx"]["info"]["weights_dtype"] == "fp16"
    assert {t.data_type for t in m.graph.initializer if len(t.dims) == 4} == {onnx.TensorProto.FLOAT16}
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.formats["onnx"]["parity"]["rel_l2"] < 2e-3  # fp16 compute: more error than fp32, within the limit
    assert out.formats["onnx"]["parity"]["rel_l2"] > 1e-5


@pytest.mark.slow
def test_argmax_graph_every_format(tmp_path):
    arg = export_model("topformer-t", 128, graph="argmax", out=str(tmp_path / "a"))
    for fmt in FORMATS:
        _check(arg, fmt)
        assert arg.formats[fmt]["parity"]["argmax_agree"] >= 0.999
    assert arg.manifest["output"]["shape"] == [1, 128, 128]
