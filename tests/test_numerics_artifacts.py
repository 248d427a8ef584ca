"""Per-layer numerics on real artifacts: a fault written into the artifact (not into PyTorch) is named as the first
diverging layer on every format, and on names that survive every leaf module is matched or listed as fused.

TopFormer-T at 128 px (4 attention tokens, so the attention's q/k convolutions are live). ONNX and ncnn convert in
seconds; LiteRT's converter takes about a minute, so its tests are marked slow.
"""

from __future__ import annotations

import shutil

import pytest

from mobileseg.numerics.analyze import per_layer
from mobileseg.numerics.inject import perturb

# (fault, module, scale): a 1x1 projection conv with nothing fused after it; a depthwise conv whose ReLU ncnn and
# LiteRT fuse into it (weights rounded to bf16, and noise as large as the weights: no value test passes there);
# an attention value conv; the head's fuse conv (followed by a fused ReLU)
SLOW = pytest.mark.slow
FAULTS = [
    ("noise", "backbone.tpm.layer5.conv.4.c", 0.05),
    ("bf16", "backbone.tpm.layer3.conv.2.c", None),
    pytest.param("noise", "backbone.tpm.layer3.conv.2.c", 1.0, marks=SLOW),
    pytest.param("noise", "backbone.trans.transformer_blocks.1.attn.to_v.c", 0.05, marks=SLOW),
    pytest.param("bf16", "decode_head.linear_fuse.conv", None, marks=SLOW),
]


def _export(tmp_path_factory, formats, name):
    from mobileseg.export import export_model

    out = tmp_path_factory.mktemp(name) / "topformer-t_128x128"
    result = export_model("topformer-t", resolution=128, formats=["torch", *formats], out=str(out))
    assert result.ok, result.failures()
    return out


@pytest.fixture(scope="module")
def fast_export(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    return _export(tmp_path_factory, ["onnx", "ncnn"], "numerics")


@pytest.fixture(scope="module")
def tflite_export(tmp_path_factory):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    return _export(tmp_path_factory, ["tflite"], "numerics-tflite")


def _folder(fmt, request):
    return request.getfixturevalue("tflite_export" if fmt == "tflite" else "fast_export")


FORMAT_PARAMS = ["onnx", "ncnn", pytest.param("tflite", marks=pytest.mark.slow)]


@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_the_clean_artifact_has_no_diverging_layer_and_every_leaf_is_accounted_for(fmt, request):
    rep = per_layer(str(_folder(fmt, request)), fmt)
    assert rep["first_diverging"] is None, rep["first_diverging"]
    s = rep["summary"]
    unmatched = [leaf["module"] for leaf in rep["leaves"] if leaf["status"] == "unmatched"]
    assert not unmatched and s["accounted_pct"] == 100.0
    assert s["leaf_modules"] == s["matched"] + s["fused"] + s["identity"] and s["removed"] == 0
    # every leaf conv is matched or fused into the tensor of the activation after it
    rows = {r["module"]: r for r in rep["layers"]}
    fused = {p for r in rep["layers"] for p in r["fused"]}
    convs = [leaf["module"] for leaf in rep["leaves"] if leaf["class"] == "Conv2d"]
    assert convs and all(c in rows or c in fused for c in convs)
    if fmt in ("onnx", "tflite"):  # the converter kept module paths in the tensor names
        assert s["methods"] == {"name": s["rows"]}, s["methods"]
    else:  # pnnx's ncnn names keep no module path
        assert s["methods"] == {"order+shape+value": s["rows"]}
    if fmt == "tflite":
        assert any(r["layout"] == "NHWC->NCHW" for r in rep["layers"])


@pytest.mark.parametrize("fault,module,scale", FAULTS)
@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_an_injected_fault_is_named_as_the_first_diverging_layer(fmt, fault, module, scale, request, tmp_path):
    folder = tmp_path / "faulty"
    shutil.copytree(_folder(fmt, request), folder)
    where = perturb(str(folder), fmt, module, fault, scale=scale or 0.0)
    rep = per_layer(str(folder), fmt)
    first = rep["first_diverging"]
    assert first is not None, where
    assert module == first["module"] or module in first["fused"], (where, first)
    assert first["previous_rel_l2"] < 1e-5 < rep["limit_rel_l2"] < first["rel_l2"]


def test_the_command_writes_the_table_json_and_plot(fast_export, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from mobileseg.cli import main
    from mobileseg.numerics.layer_report import read

    folder = tmp_path / "faulty"
    shutil.copytree(fast_export, folder)
    assert main(["parity", str(folder), "--format", "onnx"]) == 0  # whole output, untouched
    perturb(str(folder), "onnx", "backbone.tpm.layer5.conv.4.c", "noise")
    # a 5% perturbation of one 1x1 conv is diluted to ~3e-5 at the output (under the 1e-4 limit) on this
    # random-weight model: the whole-output check cannot see it, the per-layer report names it
    assert main(["parity", str(folder), "--format", "onnx", "--per-layer", "--out", str(tmp_path / "n")]) == 1
    out = capsys.readouterr().out
    assert "first diverging layer: backbone.tpm.layer5.conv.4.c (rel-L2 jumps from" in out
    marked = [line for line in out.splitlines() if line.startswith(">>")]
    assert len(marked) == 1 and "backbone.tpm.layer5.conv.4.c" in marked[0]
    rep = read(str(tmp_path / "n" / "numerics-onnx-onnxruntime-fp32.json"))
    assert rep["first_diverging"]["module"] == "backbone.tpm.layer5.conv.4.c"
    assert (tmp_path / "n" / "numerics-error-vs-depth.png").stat().st_size > 10000


def test_a_bench_cell_that_fails_parity_records_and_prints_its_first_diverging_layer(fast_export, tmp_path, capsys):
    from mobileseg import manifest
    from mobileseg.bench import run_bench

    root = tmp_path / "export"
    folder = root / "topformer-t_128x128"
    shutil.copytree(fast_export, folder)
    perturb(str(folder), "ncnn", "decode_head.linear_fuse.conv", "noise", scale=0.5)

    def reuse(model, res, formats, precision, graph, out):  # the faulty folder as the export stage's cache
        return manifest.read(out)

    recs = run_bench(
        models=["topformer-t"],
        resolutions=[128],
        runtimes=["ncnn", "onnxruntime"],
        repeats=1,
        warmup=0,
        export_fn=reuse,
        export_root=root,
        results_file=tmp_path / "r.jsonl",
        measure_reference=False,
        progress=True,
    )
    ncnn, ort = sorted(recs, key=lambda r: r["runtime"])
    assert ncnn["status"] == "parity_failed" and ort["status"] == "ok" and "per_layer" not in ort["parity"]
    pl = ncnn["parity"]["per_layer"]
    assert pl["first_diverging"]["module"] == "decode_head.linear_fuse.activate"
    assert pl["first_diverging"]["fused"] == ["decode_head.linear_fuse.conv"]
    assert pl["sentence"].startswith("first diverging layer: decode_head.linear_fuse.activate")
    assert "first diverging layer: decode_head.linear_fuse.activate" in capsys.readouterr().err
