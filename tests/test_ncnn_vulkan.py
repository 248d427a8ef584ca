"""ncnn-vulkan: the no-device sentence, the device fields of a record, and parity of every segmentation model.

The device tests run on whatever Vulkan device ncnn finds (lavapipe, Mesa's CPU driver, in CI: mesa-vulkan-drivers)
and are skipped with the reason when there is none.
"""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from mobileseg import parity
from mobileseg.errors import MobilesegError
from mobileseg.registry import list_models
from mobileseg.results.table import numerics_only
from mobileseg.runtimes import get_runtime
from mobileseg.runtimes import ncnn_vulkan

ncnn = pytest.importorskip("ncnn")


def _vulkan_device():
    try:
        return ncnn_vulkan.find_device(None)
    except ncnn_vulkan.VulkanUnavailableError as exc:
        return str(exc)


needs_vulkan = pytest.mark.skipif(isinstance(_vulkan_device(), str), reason=f"no Vulkan device ({_vulkan_device()})")


@pytest.fixture
def fresh_lookup():
    ncnn_vulkan.find_device.cache_clear()
    yield
    ncnn_vulkan.find_device.cache_clear()


def _gpu(name, kind, vendor_id, api=4206822, driver=1):
    return SimpleNamespace(
        device_name=lambda: name,
        type=lambda: kind,
        vendor_id=lambda: vendor_id,
        api_version=lambda: api,
        driver_version=lambda: driver,
    )


def test_no_vulkan_device_is_one_sentence_naming_the_driver_package(monkeypatch, fresh_lookup):
    monkeypatch.setattr(ncnn, "get_gpu_count", lambda: 0)
    with pytest.raises(ncnn_vulkan.VulkanUnavailableError, match="apt-get install mesa-vulkan-drivers") as exc:
        get_runtime("ncnn-vulkan").check()
    assert "\n" not in str(exc.value)
    assert not get_runtime("ncnn-vulkan").available() and get_runtime("ncnn").available()


def test_a_driver_that_cannot_create_the_device_is_one_sentence(monkeypatch, fresh_lookup):
    monkeypatch.setattr(ncnn, "get_gpu_count", lambda: 1)
    monkeypatch.setattr(ncnn, "get_default_gpu_index", lambda: 0)
    monkeypatch.setattr(ncnn, "get_gpu_info", lambda i: _gpu("Broken GPU", 1, 0x5143))
    monkeypatch.setattr(ncnn, "get_gpu_device", lambda i: None)
    with pytest.raises(
        ncnn_vulkan.VulkanUnavailableError, match="'Broken GPU' fails to create the device.*mesa-vulkan-drivers"
    ):
        get_runtime("ncnn-vulkan").check()
    monkeypatch.setenv(ncnn_vulkan.DEVICE_ENV, "3")
    with pytest.raises(ncnn_vulkan.VulkanUnavailableError, match="MOBILESEG_VULKAN_DEVICE=3 is not a Vulkan device"):
        get_runtime("ncnn-vulkan").check()


def test_bench_without_a_vulkan_driver_exits_with_one_sentence(tmp_path):
    # the Vulkan loader given a driver list that points at nothing: ncnn's vkCreateInstance fails
    env = dict(os.environ, VK_ICD_FILENAMES=str(tmp_path / "none.json"), VK_DRIVER_FILES=str(tmp_path / "none.json"))
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "mobileseg",
            "bench",
            "--device",
            "local",
            "--models",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "ncnn-vulkan",
            "--out",
            str(tmp_path / "runs"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    line = [ln for ln in p.stderr.splitlines() if ln.startswith("mobileseg: error:")]
    assert len(line) == 1 and "no Vulkan device" in line[0] and "mesa-vulkan-drivers" in line[0]
    assert not (tmp_path / "export").exists()  # nothing exported before the runtime check


def test_device_fields_say_which_driver_and_whether_software():
    lavapipe = ncnn_vulkan.describe(_gpu("llvmpipe (LLVM 15.0.6, 256 bits)", 3, 0x10005), 0)
    assert lavapipe["vulkan_software"] and lavapipe["vulkan_device_type"] == "cpu"
    assert lavapipe["vulkan_driver"] == "lavapipe (Mesa)" and lavapipe["vulkan_api_version"] == "1.3.230"
    swiftshader = ncnn_vulkan.describe(_gpu("SwiftShader Device (Subzero)", 3, 0x1AE0), 0)
    assert swiftshader["vulkan_software"] and swiftshader["vulkan_driver"] == "SwiftShader"
    adreno = ncnn_vulkan.describe(_gpu("Adreno (TM) 640", 1, 0x5143, api=(1 << 22) | (1 << 12) | 128), 0)
    assert not adreno["vulkan_software"] and adreno["vulkan_vendor"] == "Qualcomm"
    assert adreno["vulkan_device_type"] == "integrated" and adreno["vulkan_api_version"] == "1.1.128"


@needs_vulkan
def test_a_lavapipe_record_is_flagged_software_vulkan(tmp_path):
    from mobileseg.bench.runner import run_bench

    run = run_bench(
        models=["topformer-t"],
        resolutions=[64],
        runtimes=["ncnn-vulkan"],
        precisions=["fp16"],
        warmup=1,
        repeats=2,
        out_dir=tmp_path / "runs",
        export_root=str(tmp_path / "export"),
        progress=False,
        measure_reference=False,
    )
    (rec,) = [json.loads(line) for f in (tmp_path / "runs").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(run) == 1 and rec["status"] == "ok" and rec["runtime"] == "ncnn-vulkan"
    s = rec["runtime_settings"]
    index, device = _vulkan_device()
    assert s["vulkan"] and s["vulkan_device"] == device["vulkan_device"] and s["vulkan_device_index"] == index
    assert s["use_fp16_storage"] and s["use_fp16_arithmetic"] and s["precision"] == "fp16"
    for key in ("vulkan_driver", "vulkan_driver_version", "vulkan_api_version", "vulkan_device_type"):
        assert s[key] not in (None, "")
    assert s["vulkan_software"] == (device["vulkan_device_type"] == "cpu" or "llvmpipe" in s["vulkan_device"].lower())
    assert numerics_only(rec) == s["vulkan_software"]
    assert rec["parity"]["ok"] and rec["parity"]["limit_rel_l2"] == parity.rel_l2_limit("fp16", "ncnn-vulkan")


SEGMENTATION = list_models(task="segmentation")


@needs_vulkan
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("model", SEGMENTATION)
def test_every_segmentation_model_matches_pytorch_on_ncnn_vulkan(model, precision, tmp_path_factory):
    """The ncnn artifact of each registered segmentation model, at 64 px, judged on ncnn's Vulkan shaders by export."""
    from mobileseg.export import export_model

    root = tmp_path_factory.getbasetemp() / "vulkan-exports"
    res = export_model(
        model,
        64,
        formats="ncnn",
        precision=precision,
        out=str(root / f"{model}_{precision}"),
        parity_runtimes=["ncnn-vulkan"],
    )
    entry = res.manifest["formats"]["ncnn"]
    assert res.manifest["parity_runtime"]["ncnn"] == "ncnn-vulkan"
    settings = entry["runtime"]["settings"]
    assert settings["vulkan"] and settings["use_fp16_arithmetic"] == (precision == "fp16")
    assert entry["parity"]["limit_rel_l2"] == parity.rel_l2_limit(precision, "ncnn-vulkan")
    assert res.ok and entry["parity"]["ok"], entry["parity"]


@needs_vulkan
def test_export_checks_the_ncnn_artifact_on_vulkan_when_asked(tmp_path):
    from mobileseg.export import export_model

    out = str(tmp_path / "t")
    cpu = export_model("topformer-t", 64, formats="ncnn", precision="fp16", out=out)
    assert cpu.manifest["parity_runtime"]["ncnn"] == "ncnn"
    vk = export_model("topformer-t", 64, formats="ncnn", precision="fp16", out=out, parity_runtimes=["ncnn-vulkan"])
    entry = vk.manifest["formats"]["ncnn"]
    assert not vk.cached and vk.ok and vk.manifest["parity_runtime"]["ncnn"] == "ncnn-vulkan"
    assert entry["runtime"]["settings"]["vulkan_software"] is not None and entry["parity"]["ok"]
    again = export_model("topformer-t", 64, formats="ncnn", precision="fp16", out=out)  # any passed check is reused
    assert again.cached and again.manifest["parity_runtime"]["ncnn"] == "ncnn-vulkan"
    with pytest.raises(MobilesegError, match="add ncnn to --formats"):
        export_model("topformer-t", 64, formats="onnx", out=str(tmp_path / "o"), parity_runtimes=["ncnn-vulkan"])
