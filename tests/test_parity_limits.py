"""The runtime parity limits (mobileseg.parity) separate a right artifact from one with a single wrong layer.

The fp32 limit is a relative L2 of 1e-4: tools/tolerances.py measured every exported format against the BN-folded
PyTorch model (see the figures in mobileseg/parity.py). Here one layer of a real export is made wrong on purpose,
the way a converter bug would make it, and the same check that export and bench use must fail it by orders of
magnitude while it passes the untouched artifact.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mobileseg.parity import compare, rel_l2_limit


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ncnn")
    from mobileseg.export import export_model

    out = tmp_path_factory.mktemp("limits") / "topformer-t_128x128"
    result = export_model("topformer-t", resolution=128, formats=["onnx", "ncnn"], out=str(out))
    assert result.ok, result.manifest
    return out


def _reference(export_dir):
    return (np.load(export_dir / "reference" / "input.npy"), np.load(export_dir / "reference" / "output.npy"))


def _run_onnx(path, x):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _run_ncnn(export_dir, x):
    from mobileseg.runtimes import get_runtime

    sess = get_runtime("ncnn").load(export_dir, threads=1, precision="fp32")
    try:
        return sess.run(x)
    finally:
        sess.close()


def test_onnx_one_negated_conv_fails_by_orders_of_magnitude(export_dir, tmp_path):
    import onnx
    from onnx import numpy_helper

    x, ref = _reference(export_dir)
    assert compare(_run_onnx(export_dir / "model.onnx", x), ref, "fp32")["ok"]
    model = onnx.load(str(export_dir / "model.onnx"))
    inits = {i.name: i for i in model.graph.initializer}
    # The output conv of the middle transformer block's MLP, weights negated. Not any conv: with random weights,
    # negating 19 of TopFormer-T's 58 convs (early TPM layers, attention value paths) moves the logits by less than
    # the limit (measured here: median 1.3e-3 over the 58), so a random-weight reference cannot see those layers.
    mlp_out = [n for n in model.graph.node if n.op_type == "Conv" and "mlp/fc2" in n.name and n.input[1] in inits]
    assert mlp_out, "the ONNX node names lost the module paths"
    victim = inits[mlp_out[len(mlp_out) // 2].input[1]]
    victim.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(victim), victim.name))
    wrong = tmp_path / "wrong.onnx"
    onnx.save(model, str(wrong))
    p = compare(_run_onnx(wrong, x), ref, "fp32")
    assert not p["ok"] and p["rel_l2"] > 100 * rel_l2_limit("fp32"), p


def _conv_weight_spans(param_text: str) -> tuple[list[tuple[int, int]], int]:
    """(byte offset, float count) of each convolution's weights in the .ncnn.bin, in layer order, and the file size
    that layout implies.

    ncnn's fp32 weight file holds, per Convolution/ConvolutionDepthWise layer, a 4-byte storage tag, then
    ``weight_data_size`` (param 6) floats, then ``num_output`` (param 0) bias floats when ``bias_term`` (5) is 1.
    This graph has no other layer with weights (asserted).
    """
    spans, offset = [], 0
    for line in param_text.splitlines()[2:]:
        fields = line.split()
        kind = fields[0]
        params = dict(f.split("=", 1) for f in fields if "=" in f)
        if kind in ("Convolution", "ConvolutionDepthWise"):
            weights = int(params["6"])
            spans.append((offset + 4, weights))
            offset += 4 + 4 * weights + (4 * int(params["0"]) if params.get("5") == "1" else 0)
        else:
            assert kind not in ("InnerProduct", "MemoryData", "Deconvolution"), f"unexpected weights in {kind}"
    return spans, offset


def test_ncnn_one_negated_conv_fails_by_orders_of_magnitude(export_dir, tmp_path, monkeypatch):
    from mobileseg.manifest import ALLOW_EDITED_ENV

    monkeypatch.setenv(ALLOW_EDITED_ENV, "1")  # the .bin is edited on purpose below (--allow-edited)
    x, ref = _reference(export_dir)
    assert compare(_run_ncnn(export_dir, x), ref, "fp32")["ok"]
    wrong = tmp_path / "wrong"
    shutil.copytree(export_dir, wrong)
    spans, size = _conv_weight_spans((wrong / "model.ncnn.param").read_text())
    binary = wrong / "model.ncnn.bin"
    data = np.fromfile(binary, dtype=np.uint8)
    assert data.size == size, "the .ncnn.bin layout is not the one read here"
    start, count = spans[-2]  # the head's fuse conv, the one before the classifier, weights negated
    weights = data[start : start + 4 * count].view(np.float32)
    weights *= -1
    data.tofile(binary)
    p = compare(_run_ncnn(wrong, x), ref, "fp32")
    assert not p["ok"] and p["rel_l2"] > 100 * rel_l2_limit("fp32"), p
