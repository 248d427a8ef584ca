"""ncnn int8 tables written by mobileseg (export/quantize_ncnn.py) on a hand-made two-layer net: the .param gains
``8=1``, the .bin gains the scales ncnn reads after each layer's bias, ncnn runs the result close to the float net,
and a .bin that does not match its .param is refused in one sentence instead of quantizing shifted bytes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mobileseg.errors import MobilesegError
from mobileseg.export import quantize_ncnn as qn
from mobileseg.export._util import ConverterFailure

pytest.importorskip("ncnn")

PARAM = """7767517
3 3
Input                    in0                      0 1 in0 0=8 1=8 2=3
Convolution              conv_0                   1 1 in0 1 0=4 1=3 4=1 5=1 6=108 9=1
ConvolutionDepthWise     convdw_1                 1 1 1 out0 0=4 1=3 4=1 5=1 6=36 7=4
"""


@pytest.fixture
def net(tmp_path):
    rng = np.random.default_rng(0)
    w0, b0 = rng.normal(size=108).astype(np.float32), rng.normal(size=4).astype(np.float32)
    w1, b1 = rng.normal(size=36).astype(np.float32), rng.normal(size=4).astype(np.float32)
    w1[:9] = 0  # an all-zero output channel: scale 1, as ncnn2table writes it
    (tmp_path / "m.param").write_text(PARAM)
    raw = b"".join([b"\0" * 4, w0.tobytes(), b0.tobytes(), b"\0" * 4, w1.tobytes(), b1.tobytes()])
    (tmp_path / "m.bin").write_bytes(raw)
    images = rng.normal(size=(6, 3, 8, 8)).astype(np.float32)
    return tmp_path, raw, SimpleNamespace(images=images, count=6)


def _run(param, binary, x):
    from mobileseg.runtimes.ncnn import NcnnSession

    s = NcnnSession(str(param), str(binary), 1, "fp32", "in0", "out0", None, None)
    try:
        return s.run(x)
    finally:
        s.close()


def test_scales_are_written_where_ncnn_reads_them_and_ncnn_runs_int8(net):
    d, raw, cal = net
    info = qn.quantize_files(d / "m.param", d / "m.bin", d / "q.param", d / "q.bin", cal, "in0")
    assert info["int8_layers"] == 2 and info["float_ops"] == {}
    _, layers = qn.read_layers(d / "q.param")
    assert [ly.params.get(8) for ly in layers[1:]] == ["1", "1"]
    q = (d / "q.bin").read_bytes()
    # per layer: int8 flag + int8 weights, the fp32 bias, the weight scales (per channel / group), the input scale
    w0 = np.frombuffer(raw[4 : 4 + 4 * 108], np.float32).reshape(4, -1)
    assert q[:4] == qn.TAG_INT8.to_bytes(4, "little")
    conv_end = 4 + 108 + 4 * 4
    assert q[4 + 108 : conv_end] == raw[4 + 4 * 108 : 4 + 4 * 108 + 16]  # the bias, unchanged
    scales = np.frombuffer(q[conv_end : conv_end + 16], np.float32)
    assert np.allclose(scales, 127 / np.abs(w0).max(axis=1))
    q0 = np.frombuffer(q[4 : 4 + 108], np.int8).reshape(4, -1)
    assert np.abs(q0).max() == 127 and np.allclose(q0 / scales[:, None], w0, atol=0.5 / scales.min())
    input_scale = np.frombuffer(q[conv_end + 16 : conv_end + 20], np.float32)[0]
    assert input_scale == pytest.approx(127 / np.abs(cal.images).max())
    assert len(q) == conv_end + 20 + (4 + 36 + 16 + 16 + 4)
    assert np.frombuffer(q[-20:-4], np.float32)[0] == 1.0  # the all-zero depthwise channel's scale
    x = cal.images[:1]
    ref, got = _run(d / "m.param", d / "m.bin", x), _run(d / "q.param", d / "q.bin", x)
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert 0 < rel < 0.05, rel  # int8 really ran (not bit-identical) and stayed close
    # the same scales over fp32 weights, which ncnn quantizes itself at load: the stored int8 weights are its values
    dw = conv_end + 20
    fp32_weights = (
        raw[: 4 + 4 * 108] + q[4 + 108 : dw] + raw[4 + 4 * 108 + 16 : 4 + 4 * 108 + 16 + 4 + 4 * 36] + q[dw + 4 + 36 :]
    )
    (d / "f.bin").write_bytes(fp32_weights)
    assert np.array_equal(_run(d / "q.param", d / "f.bin", x), got)


def test_keep_float_by_name_or_pattern_and_unknown_names(net):
    d, raw, cal = net
    info = qn.quantize_files(
        d / "m.param", d / "m.bin", d / "q.param", d / "q.bin", cal, "in0", keep_float=["convdw_.*"]
    )
    assert info["int8_layers"] == 1 and info["kept_float_layers"] == ["convdw_1"]
    assert info["float_ops"] == {"ConvolutionDepthWise": 1}
    with pytest.raises(MobilesegError, match="no quantizable ncnn layer .* is named head"):
        qn.quantize_files(d / "m.param", d / "m.bin", d / "q.param", d / "q.bin", cal, "in0", keep_float=["head"])


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda raw: raw[:-10], "end inside layer convdw_1"),
        (lambda raw: raw + b"\0" * 8, "8 bytes of model.ncnn.bin"),
        (lambda raw: b"\x47\x6b\x30\x01" + raw[4:], "not float32"),
    ],
)
def test_a_bin_that_does_not_match_its_param_is_refused(net, damage, words):
    d, raw, cal = net
    (d / "m.bin").write_bytes(damage(raw))
    with pytest.raises(ConverterFailure, match=words):
        qn.quantize_files(d / "m.param", d / "m.bin", d / "q.param", d / "q.bin", cal, "in0")


def test_an_int8_param_is_not_quantized_twice(net):
    d, raw, cal = net
    qn.quantize_files(d / "m.param", d / "m.bin", d / "q.param", d / "q.bin", cal, "in0")
    with pytest.raises(ConverterFailure, match="already int8"):
        qn.quantize_files(d / "q.param", d / "q.bin", d / "r.param", d / "r.bin", cal, "in0")
