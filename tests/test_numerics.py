"""Per-layer numerics without converters: the metrics, the name parsers, the matcher on hand-made runtime tensors,
and the parity command's one-sentence errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from mobileseg.numerics.match import match
from mobileseg.numerics.metrics import figures, first_over
from mobileseg.numerics.names import LiteRTNames, onnx_path
from mobileseg.numerics.layer_report import build, sentence
from mobileseg.numerics.runtime_capture import RuntimeTensor
from mobileseg.numerics.torch_capture import capture


def test_figures_of_a_known_error():
    ref = np.array([3.0, 4.0, 0.0, 0.0])
    out = ref + np.array([0.0, 0.0, 0.3, 0.4])  # error norm 0.5, reference norm 5
    f = figures(out, ref)
    assert f["rel_l2"] == pytest.approx(0.1)
    assert f["sqnr_db"] == pytest.approx(20.0)
    assert f["max_abs"] == pytest.approx(0.4)
    assert f["cosine"] == pytest.approx(25.0 / (5.0 * math.sqrt(25.25)))
    exact = figures(ref, ref)
    assert exact["rel_l2"] == 0.0 and exact["sqnr_db"] is None and exact["cosine"] == pytest.approx(1.0)
    assert figures(np.array([np.nan, 1.0]), np.array([1.0, 1.0]))["rel_l2"] == math.inf


def test_first_over_skips_unmatched_rows():
    rows = [{"rel_l2": 1e-7}, {"rel_l2": None}, {"rel_l2": 2e-7}, {"rel_l2": 3e-2}, {"rel_l2": 5e-2}]
    assert first_over(rows, 1e-4) == 3
    assert first_over(rows[:3], 1e-4) is None
    tiny = [{"rel_l2": 1e-7, "ref_rms": 1.0}, {"rel_l2": 0.3, "ref_rms": 1e-6}, {"rel_l2": 0.03, "ref_rms": 1.0}]
    assert first_over(tiny, 2e-2, min_rms=6.1e-5) == 2 and first_over(tiny, 2e-2) == 1


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.Identity()  # what BN folding leaves
        self.act = nn.ReLU()

    def forward(self, x):
        return x + self.act(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Conv2d(4, 5, 1)

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def _net_and_capture():
    torch.manual_seed(0)
    net = Net().eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    return net, x, capture(net, x)


def test_capture_is_in_execution_order_with_aliases_and_identities():
    _, _, cap = _net_and_capture()
    paths = [t.path for t in cap.tensors]
    assert paths.index("stem.0") < paths.index("stem.1") < paths.index("blocks.0.conv") < paths.index("blocks.0")
    assert "stem" in cap.tensors[paths.index("stem.1")].aliases  # the Sequential returns its last child's tensor
    bn = [leaf for leaf in cap.leaves if leaf.path == "blocks.0.bn"]
    assert bn and bn[0].identity


def test_onnx_scope_names_resolve_against_the_module_tree():
    modules = {
        "",
        "backbone",
        "backbone.layer1",
        "backbone.layer1.conv",
        "backbone.layer1.conv.0",
        "backbone.layer1.conv.0.c",
        "backbone.blocks",
        "backbone.blocks.2",
        "backbone.blocks.2.attn",
    }
    assert onnx_path("/backbone/layer1/conv/conv.0/c/Conv", modules) == "backbone.layer1.conv.0.c"
    assert onnx_path("/backbone/blocks.2/attn/MatMul_1", modules) == "backbone.blocks.2.attn"
    assert onnx_path("/backbone/layer1/Add", modules) == "backbone.layer1"
    assert onnx_path("Conv_17", modules) is None


def test_litert_names_give_the_output_module_and_the_fused_ones():
    _, _, cap = _net_and_capture()
    names = LiteRTNames(cap.classes)
    root = f"{Net.__module__}.Net"
    blk = f"{Block.__module__}.Block_1"
    relu = f"{root}/{blk}/torch.nn.modules.activation.ReLU_act"
    conv = f"{root}/{blk}/torch.nn.modules.conv.Conv2d_conv"
    assert names.paths(f"{relu};;{conv};") == ("blocks.1.act", ["blocks.1.conv"])  # ModuleList: no level of its own
    assert names.paths(f"{conv};1") == ("blocks.1.conv", [])
    assert names.paths("tfl.pseudo_qconst1") == (None, [])


def _ncnn_like(cap, fault: str | None = None, nhwc: bool = False):
    """What a converter that fuses conv+relu would expose: no conv-before-relu tensors, a duplicate, a helper."""
    keep = ["stem.1", "blocks.0.act", "blocks.0", "blocks.1.act", "blocks.1", "head"]
    out = []
    for t in cap.tensors:
        if t.path not in keep:
            continue
        v = t.value.copy()
        if t.path == fault:
            v = v + 0.03 * float(np.linalg.norm(v)) / math.sqrt(v.size) * np.sign(v + 1e-3)
        if nhwc:
            v = v.transpose(0, 2, 3, 1)
        out.append(RuntimeTensor(len(out), f"layer_{len(out)}", "Conv", v, "NHWC" if nhwc else "NCHW"))
        if t.path == "stem.1":  # a copy (a Split) and an unrelated tensor of the same size
            out.append(RuntimeTensor(len(out), "split", "Split", v.copy(), out[-1].layout))
            out.append(
                RuntimeTensor(
                    len(out),
                    "noise",
                    "Pad",
                    np.random.default_rng(1).standard_normal(v.shape).astype(np.float32),
                    out[-1].layout,
                )
            )
    return out


@pytest.mark.parametrize("nhwc", [False, True])
def test_unnamed_tensors_match_by_value_and_fused_modules_are_listed(nhwc):
    _, _, cap = _net_and_capture()
    res = match(cap, _ncnn_like(cap, nhwc=nhwc), "ncnn")
    status = {leaf.path: s for leaf, s, _ in res["leaves"]}
    assert status["stem.1"] == status["head"] == status["blocks.1.act"] == "matched"
    assert status["stem.0"] == "fused" and status["blocks.0.bn"] == "identity"
    assert "unmatched" not in status.values(), status
    rep = build(cap, _ncnn_like(cap, nhwc=nhwc), res, 1e-4, {"format": "ncnn", "runtime": "ncnn", "precision": "fp32"})
    assert rep["first_diverging"] is None
    assert all(r["method"] == "order+shape+value" for r in rep["layers"])
    assert {r["layout"] for r in rep["layers"]} == ({"NHWC->NCHW"} if nhwc else {"same order"})
    fused = {r["module"]: r["fused"] for r in rep["layers"]}
    assert "blocks.1.conv" in fused["blocks.1.act"]


def test_a_faulty_tensor_is_the_first_diverging_one():
    _, _, cap = _net_and_capture()
    tensors = _ncnn_like(cap, fault="blocks.1.act")
    rep = build(
        cap, tensors, match(cap, tensors, "ncnn"), 1e-4, {"format": "ncnn", "runtime": "ncnn", "precision": "fp32"}
    )
    first = rep["first_diverging"]
    assert first["module"] == "blocks.1.act" and "blocks.1.conv" in first["fused"]
    assert first["previous_rel_l2"] < 1e-6 < 1e-2 < first["rel_l2"]
    assert sentence(first).startswith("first diverging layer: blocks.1.act (with blocks.1.conv fused into it)")


# --- the command's bad input -------------------------------------------------------------------------------------


def _cli(capsys, *argv):
    from mobileseg.cli import main

    rc = main(["parity", *argv])
    err = capsys.readouterr().err.strip()
    return rc, err


def test_parity_bad_input_is_one_sentence(tmp_path, capsys):
    from mobileseg import manifest

    rc, err = _cli(capsys, str(tmp_path / "missing"), "--format", "onnx")
    assert rc == 2 and "does not exist" in err and len(err.splitlines()) == 1
    f = tmp_path / "file.txt"
    f.write_text("x")
    rc, err = _cli(capsys, str(f), "--format", "onnx")
    assert rc == 2 and "is a file" in err
    folder = tmp_path / "exp"
    folder.mkdir()
    manifest.write(
        folder,
        {"model": "topformer-t", "resolution": [64, 64], "precision": "fp32", "formats": {"onnx": {"files": []}}},
    )
    rc, err = _cli(capsys, str(folder), "--format", "ncnn")
    assert rc == 2 and "has no ncnn artifact" in err and "--formats torch,ncnn" in err and len(err.splitlines()) == 1
    rc, err = _cli(capsys, str(folder), "--format", "tflte")
    assert rc == 2 and "did you mean tflite" in err
    (folder / "model.onnx").write_bytes(b"")
    rc, err = _cli(capsys, str(folder), "--format", "onnx", "--precision", "int3")
    assert rc == 2 and "unknown precision" in err
    rc, err = _cli(capsys, str(folder), "--format", "onnx", "--per-layer")
    assert rc == 2 and "has no model.pt" in err and "--formats torch,onnx" in err and len(err.splitlines()) == 1
    rc, err = _cli(capsys, str(folder), "--format", "onnx", "--runtime", "ncnn")
    assert rc == 2 and "does not run onnx artifacts: use onnxruntime" in err
    rc, err = _cli(capsys, str(tmp_path), "--format", "onnx")
    assert rc == 2 and "no export manifest" in err


def test_report_json_has_no_infinities(tmp_path):
    from mobileseg.numerics.layer_report import read, write

    rep = {
        "schema": "mobileseg.numerics/1",
        "format": "onnx",
        "runtime": "onnxruntime",
        "precision": "fp32",
        "layers": [{"rel_l2": math.inf}],
    }
    path = write(rep, str(tmp_path))
    json.loads(open(path).read(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert read(path)["layers"][0]["rel_l2"] == "inf"


def test_an_ambiguous_litert_name_is_not_used():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.ModuleList([Block()])
            self.b = nn.ModuleList([Block()])

    classes = {n: f"{type(m).__module__}.{type(m).__qualname__}" for n, m in Two().named_modules()}
    names = LiteRTNames(classes)
    blk = f"{Block.__module__}.Block_0"
    assert names.paths(f"root/{blk}/torch.nn.modules.activation.ReLU_act;") == (None, [])  # a.0 or b.0?


def test_onnx_nodes_that_lost_their_scope_are_named_after_their_parameters():
    onnx = pytest.importorskip("onnx")
    from mobileseg.export.onnx import keep_scopes

    w = onnx.numpy_helper.from_array(np.zeros((2, 2), np.float32), "onnx::MatMul_7")
    b = onnx.numpy_helper.from_array(np.zeros(2, np.float32), "backbone.block1.0.attn.q.bias")
    node = onnx.helper.make_node("Gemm", ["x", "onnx::MatMul_7", "backbone.block1.0.attn.q.bias"], ["y"], name="Gemm_1")
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", 1, [1, 2])],
        [onnx.helper.make_tensor_value_info("y", 1, [1, 2])],
        [w, b],
    )
    model = onnx.helper.make_model(graph)
    assert keep_scopes(model) == 1
    assert model.graph.node[0].name == "/backbone/block1/0/attn/q/Gemm"
    modules = {"backbone", "backbone.block1", "backbone.block1.0", "backbone.block1.0.attn", "backbone.block1.0.attn.q"}
    assert onnx_path(model.graph.node[0].name, modules) == "backbone.block1.0.attn.q"
