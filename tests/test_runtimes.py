import numpy as np
import pytest

from mobileseg.errors import MissingDependencyError, MobilesegError
from mobileseg.export import export_model
from mobileseg.parity import compare
from mobileseg.formats import RUNTIMES
from mobileseg.runtimes import get_runtime
from mobileseg.runtimes.base import ArtifactError, Runtime


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("rt") / "t64"
    res = export_model("topformer-t", 64, formats="torch,onnx,ncnn", out=str(out), parity=False)
    x = np.load(out / "reference" / "input.npy")
    ref = np.load(out / "reference" / "output.npy")
    return res, x, ref


def test_registry_names():
    assert set(RUNTIMES) == {"torch", "onnxruntime", "ncnn", "ncnn-vulkan", "litert", "executorch"}
    formats = {get_runtime(n).format for n in RUNTIMES}
    assert formats == {"torch", "onnx", "ncnn", "tflite", "executorch"}
    assert get_runtime("ort").name == "onnxruntime" and get_runtime("tflite").name == "litert"
    assert get_runtime("ncnn_vulkan").name == "ncnn-vulkan" and get_runtime("ncnn-vulkan").format == "ncnn"
    with pytest.raises(MobilesegError, match="choose one of"):
        get_runtime("tensorrt")


def test_an_adapter_without_a_capability_refuses_in_one_sentence(tmp_path):
    """Per-layer capture and the per-op profile are adapter methods; the base class refuses them, naming the runtime
    and what it cannot do (the profile then says so instead of measuring)."""
    from mobileseg.bench.profile import profile_local
    from mobileseg.runtimes.base import CapabilityError

    x = np.zeros((1, 3, 8, 8), np.float32)
    for name, what in (("executorch", "per-layer capture"), ("torch", "per-layer capture")):
        with pytest.raises(CapabilityError) as err:
            get_runtime(name).intermediates([str(tmp_path / "model.pte")], x)
        msg = str(err.value)
        assert what in msg and name in msg and msg.count(". ") == 0 and "\n" not in msg
    with pytest.raises(CapabilityError, match="no per-op profiler for ncnn-vulkan"):
        get_runtime("ncnn-vulkan").op_profile(tmp_path, {}, x, 1)  # ncnn's profile times the CPU, not the device
    assert isinstance(CapabilityError("x"), MobilesegError)
    assert profile_local("executorch", tmp_path, {}, x) == {"unavailable": "no per-op profiler for executorch"}
    assert "benchmark_model" in profile_local("litert", tmp_path, {}, x)["unavailable"]
    has = {n for n in RUNTIMES if type(get_runtime(n)).intermediates is not Runtime.intermediates}
    assert has == {"onnxruntime", "ncnn", "ncnn-vulkan", "litert"}
    has = {n for n in RUNTIMES if type(get_runtime(n)).op_profile is not Runtime.op_profile}
    assert has == {"onnxruntime", "ncnn"}


@pytest.mark.parametrize("name", ["torch", "onnxruntime", "ncnn"])
def test_runtime_matches_reference_single_thread(exported, name):
    res, x, ref = exported
    rt = get_runtime(name)
    assert rt.version()
    sess = rt.load(res.out_dir, None, threads=1)
    out = sess.run(x)
    out2 = sess.run(x.copy())
    sess.close()
    assert out.shape == ref.shape
    assert compare(out, ref)["rel_l2"] <= 1e-4
    np.testing.assert_array_equal(out, out2)  # repeated calls are deterministic (input kept alive in ncnn)
    assert sess.settings["threads"] == 1


def test_thread_settings(exported):
    res, _, _ = exported
    ort = get_runtime("onnxruntime").load(res.out_dir, threads=1)
    assert ort.settings["intra_op_threads"] == 1 and ort.settings["inter_op_threads"] == 1
    assert ort.settings["execution_mode"] == "sequential"
    nc32 = get_runtime("ncnn").load(res.out_dir, threads=1, precision="fp32")
    assert not any(nc32.settings[k] for k in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic"))
    nc16 = get_runtime("ncnn").load(res.out_dir, threads=2, precision="fp16")
    assert nc16.settings["use_fp16_storage"] is True and nc16.settings["threads"] == 2
    for s in (ort, nc32, nc16):
        s.close()


def test_ncnn_input_buffer_is_kept_alive(exported):
    # a temporary array passed straight in must give the same result as a held one (ncnn.Mat does not copy)
    res, x, ref = exported
    sess = get_runtime("ncnn").load(res.out_dir, threads=1)
    out = sess.run(np.array(x, copy=True))
    assert compare(out, ref)["rel_l2"] <= 1e-4
    sess.close()


def test_load_errors(exported, tmp_path):
    res, _, _ = exported
    with pytest.raises(ArtifactError, match="mobileseg export"):
        get_runtime("onnxruntime").load(str(tmp_path))
    with pytest.raises(ArtifactError, match="no tflite artifact"):
        get_runtime("litert").load(res.out_dir)
    with pytest.raises(MobilesegError, match="threads"):
        get_runtime("onnxruntime").load(res.out_dir, threads=0)


def test_missing_runtime_package_names_extra(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.startswith(("onnxruntime", "ncnn", "ai_edge_litert", "tflite_runtime")):
            raise ImportError(f"No module named '{name}'")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *a, **k):
        if name.startswith("tflite_runtime"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    for name, extra in (("onnxruntime", "onnx"), ("ncnn", "ncnn"), ("litert", "tflite")):
        with pytest.raises(MissingDependencyError, match=rf"mobileseg\[{extra}\]"):
            get_runtime(name).version()


@pytest.mark.slow
def test_litert_runtime(tmp_path):
    res = export_model("topformer-t", 64, formats="tflite", out=str(tmp_path / "t"), parity=False)
    x = np.load(tmp_path / "t" / "reference" / "input.npy")
    ref = np.load(tmp_path / "t" / "reference" / "output.npy")
    sess = get_runtime("litert").load(res.out_dir, threads=1)
    assert sess.settings["threads"] == 1 and sess.settings["interpreter"] == "ai-edge-litert"
    assert compare(sess.run(x), ref)["rel_l2"] <= 1e-4
    sess.close()


def test_torch_runtime_runs_the_saved_module_without_rebuilding_it(exported, monkeypatch):
    """The torch cell loads model.pt (the module export checked); it neither builds nor folds the model again."""
    from mobileseg.export import fold, reference

    def no(*a, **k):
        raise AssertionError("the torch runtime rebuilt the model")

    monkeypatch.setattr(reference, "build_export_model", no)
    monkeypatch.setattr(fold, "fold_batchnorm", no)
    res, x, ref = exported
    assert [f["path"] for f in res.manifest["formats"]["torch"]["files"]] == ["model.pt"]
    sess = get_runtime("torch").load(res.out_dir, None, threads=1)
    np.testing.assert_array_equal(sess.run(x), ref)  # the very module the reference came from
    sess.close()


def test_torch_runtime_without_a_torch_artifact_says_what_to_export(tmp_path):
    import json

    (tmp_path / "manifest.json").write_text(json.dumps({"formats": {"onnx": {"files": []}}}))
    with pytest.raises(ArtifactError, match="--formats torch"):
        get_runtime("torch").load(tmp_path, None)


_INTERRUPT_NCNN = """
import sys
import numpy as np
import mobileseg.runtimes.ncnn as mod
from mobileseg.runtimes import get_runtime

class Interrupting:  # numpy, except that copying the output out raises Ctrl-C (extractor and blob still alive)
    def __getattr__(self, name):
        return getattr(np, name)
    def array(self, *a, **k):
        raise KeyboardInterrupt

sess = get_runtime("ncnn").load(sys.argv[1], threads=1)
x = np.load(sys.argv[1] + "/reference/input.npy")
mod.np = Interrupting()
try:
    sess.run(x)
except KeyboardInterrupt:
    sess.close()  # as the bench does while the interrupt unwinds: the traceback still holds run()'s frame
print("closed")
"""


def test_ncnn_close_after_an_interrupted_run_is_clean(exported):
    """Ctrl-C mid-run used to end a bench with ncnn's 'FATAL ERROR! pool allocator destroyed too early'."""
    import subprocess
    import sys

    res, _, _ = exported
    proc = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_NCNN, str(res.out_dir)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "closed" in proc.stdout, proc.stderr
    assert "destroyed too early" not in proc.stderr and "still in use" not in proc.stderr, proc.stderr
