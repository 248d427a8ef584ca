import json
import os

import numpy as np
import pytest
import torch

import mobileseg
from mobileseg.cli import main
from mobileseg.errors import CheckpointError, MissingDependencyError, ResolutionError, UnknownModelError
from mobileseg.export import export_model
from mobileseg.export.api import ExportError
from mobileseg.manifest import export_dir_name


def _bn_nodes(path):
    import onnx

    return sum(n.op_type == "BatchNormalization" for n in onnx.load(path).graph.node)


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "t64"
    return export_model("topformer-t", 64, formats="onnx", out=str(out))


def test_onnx_export_manifest_and_parity(onnx_export):
    res = onnx_export
    assert res.ok and not res.cached
    man = json.load(open(res.manifest_path))
    assert man["schema_version"] == 1 and man["model"] == "topformer-t" and man["resolution"] == [64, 64]
    assert man["graph"] == "logits" and man["precision"] == "fp32"
    assert man["input"]["shape"] == [1, 3, 64, 64] and man["input"]["layout"] == "NCHW"
    assert man["output"]["shape"] == [1, 150, 8, 8]
    entry = man["formats"]["onnx"]
    assert entry["parity"]["rel_l2"] <= 1e-4 and entry["runtime"]["settings"]["intra_op_threads"] == 1
    assert entry["info"]["opset"] and entry["info"]["simplified"] is True
    assert "BatchNormalization" not in entry["op_histogram"] and entry["op_histogram"]["Conv"] > 0
    (f,) = entry["files"]
    path = os.path.join(res.out_dir, f["path"])
    assert os.listdir(res.out_dir) and not any(n.endswith(".data") for n in os.listdir(res.out_dir))
    assert f["bytes"] == os.path.getsize(path) and len(f["sha256"]) == 64
    assert _bn_nodes(path) == 0
    x = np.load(os.path.join(res.out_dir, "reference", "input.npy"))
    assert x.dtype == np.float32 and x.shape == (1, 3, 64, 64)
    assert "scaled" in man["weights"]["note"] and man["weights"]["classifier_scale"] > 0
    # counted once, on the model before folding (the papers count BatchNorm), so bench cells build no model
    from mobileseg import create_model
    from mobileseg.flops import count_complexity

    counted = count_complexity(create_model("topformer-t"), 64, 64)
    assert man["complexity"] == {"gmacs": counted.macs / 1e9, "params": counted.params}


def test_second_run_uses_cache_and_changes_invalidate(onnx_export, tmp_path):
    again = export_model("topformer-t", 64, formats="onnx", out=onnx_export.out_dir)
    assert again.cached and again.ok
    assert again.formats["onnx"]["files"] == onnx_export.formats["onnx"]["files"]
    # a corrupted artifact is not reused
    path = os.path.join(onnx_export.out_dir, "model.onnx")
    with open(path, "ab") as f:
        f.write(b"x")
    fixed = export_model("topformer-t", 64, formats="onnx", out=onnx_export.out_dir)
    assert not fixed.cached and fixed.ok
    assert _bn_nodes(path) == 0


def test_dir_names():
    assert export_dir_name("topformer-t", (448, 448)) == "topformer-t_448x448"
    assert export_dir_name("topformer-t", (512, 1024), "fp16", "argmax") == "topformer-t_512x1024_fp16_argmax"


def test_argmax_graph_onnx(tmp_path):
    res = export_model("topformer-t", 64, formats="onnx", graph="argmax", out=str(tmp_path / "a"))
    assert res.ok, res.failures()
    man = res.manifest
    assert man["graph"] == "argmax" and man["output"]["shape"] == [1, 64, 64]
    assert man["formats"]["onnx"]["parity"]["argmax_agree"] >= 0.999
    assert "ArgMax" in man["formats"]["onnx"]["op_histogram"]


def test_ncnn_export_fp32(tmp_path):
    res = export_model("topformer-t", 64, formats="ncnn", out=str(tmp_path / "n"))
    assert res.ok, res.failures()
    names = sorted(os.listdir(res.out_dir))
    assert names == ["manifest.json", "model.ncnn.bin", "model.ncnn.param", "reference"]
    e = res.formats["ncnn"]
    assert e["info"]["weights_dtype"] == "fp32" and e["parity"]["rel_l2"] <= 1e-4
    assert e["runtime"]["settings"]["use_fp16_storage"] is False


def test_default_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = export_model("topformer-t", 64, formats="onnx", parity=False)
    assert res.out_dir == str(tmp_path / "export" / "topformer-t_64x64")
    assert res.formats["onnx"]["parity"] == {"checked": False, "reason": "--no-parity"}


# --- error paths -------------------------------------------------------------------------------------------------


def test_unknown_model(tmp_path):
    with pytest.raises(UnknownModelError, match="did you mean"):
        export_model("topformer-q", 64, out=str(tmp_path))


@pytest.mark.parametrize("res", ["100", "64x65", "abc", "0"])
def test_bad_resolution(res, tmp_path):
    with pytest.raises(ResolutionError):
        export_model("topformer-t", res, out=str(tmp_path))


def test_bad_format_and_precision(tmp_path):
    with pytest.raises(ExportError, match="onnx, ncnn, tflite"):
        export_model("topformer-t", 64, formats="onnx,coreml", out=str(tmp_path))
    with pytest.raises(ExportError, match="fp32, fp16, int8"):
        export_model("topformer-t", 64, precision="int4", out=str(tmp_path))


@pytest.mark.parametrize(
    "fmt,module,extra", [("ncnn", "pnnx", "ncnn"), ("tflite", "litert_torch", "tflite"), ("onnx", "onnxsim", "onnx")]
)
def test_missing_converter_names_the_extra(fmt, module, extra, tmp_path, monkeypatch):
    import importlib
    import importlib.util

    real_find, real_import = importlib.util.find_spec, importlib.import_module

    def find_spec(name, *a, **k):
        return None if name.split(".")[0] == module else real_find(name, *a, **k)

    def import_module(name, *a, **k):
        if name.split(".")[0] == module:
            raise ImportError(f"No module named '{module}'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(MissingDependencyError, match=rf"mobileseg\[{extra}\]"):
        export_model("topformer-t", 64, formats=fmt, out=str(tmp_path))


def test_weights_that_do_not_fit_list_keys(tmp_path):
    ckpt = tmp_path / "s.pth"
    torch.save(mobileseg.create_model("topformer-s").state_dict(), ckpt)
    with pytest.raises(CheckpointError, match="shape mismatches: .*backbone"):
        export_model("topformer-t", 64, formats="onnx", weights=str(ckpt), out=str(tmp_path / "o"))


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="--out"):
        export_model("topformer-t", 64, formats="onnx", out=str(blocker / "sub"))


def test_cli_errors_exit_2(capsys, tmp_path):
    assert main(["export", "--model", "nope", "--res", "64", "--out", str(tmp_path)]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["export", "--model", "topformer-t", "--res", "70", "--out", str(tmp_path)]) == 2
    assert "multiple of 64" in capsys.readouterr().err


def test_cli_parity_failure_keeps_artifact_and_exits_nonzero(tmp_path, monkeypatch, capsys):
    import mobileseg.parity as parity_rules

    def failing(out, ref, precision="fp32", **kw):
        return {"ok": False, "max_abs": 1.0, "rel_l2": 0.5, "argmax_agree": 0.1, "limit_rel_l2": 1e-4}

    monkeypatch.setattr(parity_rules, "compare", failing)
    out = tmp_path / "f"
    rc = main(["export", "--model", "topformer-t", "--res", "64", "--formats", "onnx", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 1
    assert "parity check failed" in text and "5.00e-01" in text
    assert (out / "model.onnx").is_file()
    assert json.load(open(out / "manifest.json"))["formats"]["onnx"]["ok"] is False


# --- manifest merge across calls -----------------------------------------------------------------------------------


def test_formats_from_earlier_calls_stay_in_the_manifest(tmp_path):
    out = str(tmp_path / "m")
    first = export_model("topformer-t", 64, formats="onnx", out=out, parity=False)
    second = export_model("topformer-t", 64, formats="ncnn", out=out, parity=False)
    assert not second.cached and second.requested == ["ncnn"]
    man = json.load(open(second.manifest_path))
    assert list(man["formats"]) == ["onnx", "ncnn"]
    assert man["formats"]["onnx"] == first.formats["onnx"]  # kept as it was: same cache key, files intact
    assert "onnx" in man["versions"] and "pnnx" in man["versions"]
    assert [r["cached"] for r in second.rows()] == ["earlier", ""]
    # all asked-for formats cached: the earlier ones are still listed
    again = export_model("topformer-t", 64, formats="ncnn", out=out, parity=False)
    assert again.cached and list(again.formats) == ["onnx", "ncnn"]
    # an earlier artifact that no longer holds drops out (from the returned and the written manifest)
    os.remove(os.path.join(out, "model.onnx"))
    dropped = export_model("topformer-t", 64, formats="ncnn", out=out, parity=False)
    assert list(dropped.formats) == ["ncnn"]
    assert list(json.load(open(dropped.manifest_path))["formats"]) == ["ncnn"]
    # a different export (another resolution) into the same folder is refused: it would lose the old entries
    before = open(dropped.manifest_path).read()
    with pytest.raises(ExportError, match="already holds another export .ncnn; resolution 64x64 .this export: 128x128"):
        export_model("topformer-t", 128, formats="onnx", out=out, parity=False)
    assert open(dropped.manifest_path).read() == before


def test_earlier_failed_format_does_not_fail_this_call(tmp_path, monkeypatch):
    import mobileseg.parity as parity_rules

    out = str(tmp_path / "f")
    monkeypatch.setattr(
        parity_rules,
        "compare",
        lambda o, r, precision="fp32": {
            "ok": False,
            "max_abs": 1.0,
            "rel_l2": 0.5,
            "argmax_agree": 0.1,
            "limit_rel_l2": 1e-4,
        },
    )
    bad = export_model("topformer-t", 64, formats="onnx", out=out)
    assert not bad.ok
    monkeypatch.undo()
    good = export_model("topformer-t", 64, formats="ncnn", out=out)
    assert good.ok and "onnx" not in good.formats  # a failed entry is never carried over as if it held


# --- argmax graph for ncnn and the meaning of the argmax figures --------------------------------------------------


def test_min_index_formulation_equals_torch_argmax_including_ties():
    from mobileseg.export.graphs import ArgmaxGraph

    class Fixed(torch.nn.Module):
        def __init__(self, y):
            super().__init__()
            self.y = y

        def forward(self, x):
            return self.y

    g = torch.Generator().manual_seed(1)
    y = torch.randn(1, 19, 8, 8, generator=g) * 1e3
    y[0, 5] = y.max(dim=1).values[0]  # ties: class 5 equals the maximum everywhere
    y[0, 11, :4] = y[0, 5, :4]  # a three-way... two-way tie after 5 in the top half
    y[0, 2, 0, 0] = y[0, 5, 0, 0] + 1e-4  # a tiny but real margin
    tiny = torch.randn(1, 19, 8, 8, generator=g) * 1e-30  # values near the float32 denormal range
    for t in (y, tiny):
        want = t.argmax(dim=1)
        got = ArgmaxGraph(Fixed(t), (8, 8), "min-index")(torch.zeros(1))
        assert torch.equal(got.long(), want)


def test_argmax_graph_ncnn(tmp_path):
    res = export_model("topformer-t", 64, formats="ncnn", graph="argmax", out=str(tmp_path / "a"))
    assert res.ok, res.failures()
    e = res.formats["ncnn"]
    assert e["info"]["argmax_formulation"] == "min-index"
    assert e["info"]["argmax_formulation_equals_torch_argmax"] is True
    assert not any("." in t for t in e["op_histogram"]) and "Reduction" in e["op_histogram"]
    assert e["parity"]["argmax_agree"] >= 0.999
    # the class map of the argmax graph follows the image (random weights alone pick one class everywhere)
    assert res.manifest["reference"]["margins"]["classes"] > 10


def test_reference_margins_see_flat_logits():
    from mobileseg.export.reference import reference_margins

    rng = np.random.default_rng(0)
    offsets = rng.normal(size=(1, 10, 1, 1)) * 5.0
    flat = offsets + rng.normal(size=(1, 10, 6, 6)) * 1e-3  # what random weights give
    m = reference_margins(flat)
    assert m["classes_raw"] == 1 and m["top_class_share_raw"] == 1.0
    assert m["classes"] > 3 and m["top2_margin_median"] < 1e-2 and m["pixels"] == 36


def test_logits_parity_reports_margins(onnx_export):
    p = onnx_export.formats["onnx"]["parity"]
    margins = onnx_export.manifest["reference"]["margins"]
    assert margins["classes_raw"] >= 1 and margins["classes"] > 1
    assert p["top2_margin_median"] == margins["top2_margin_median"]
    assert p["margin_over_max_abs"] == pytest.approx(p["top2_margin_median"] / p["max_abs"])
    assert 0.0 <= p["flip_possible_share"] <= 1.0 and p["argmax_agree_centred"] >= 0.99


def test_child_process_conversion_failures_are_explained(tmp_path):
    from mobileseg.export._util import ConverterFailure
    from mobileseg.export._worker import Worker

    x = np.zeros((1, 3, 8, 8), np.float32)
    local = type("Local", (torch.nn.Identity,), {"__module__": "__main__"})()
    w = Worker.spawn("tflite", print)
    assert w.submit(local, x, str(tmp_path), "fp32", "logits", print) is False  # converts in-process then
    assert w.proc.poll() is not None and not os.path.exists(w.job.name)  # the waiting child was stopped
    w = Worker.spawn("nosuchformat", print)  # a child that dies: its output explains the failure
    assert w.submit(torch.nn.Identity(), x, str(tmp_path), "fp32", "logits", print)
    with pytest.raises(ConverterFailure, match="exited with code 1.*nosuchformat"):
        w.result()
    assert not os.path.exists(w.job.name)
