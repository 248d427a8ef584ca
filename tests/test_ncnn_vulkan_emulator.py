"""ncnn-vulkan on the emulated ARM64 device with arm64 lavapipe (``mobileseg emulator build --vulkan``): the aarch64
build of ncnn's Vulkan host side and Mesa's CPU driver compute TopFormer-T and LR-ASPP within the fp32 limit, through
the Python harness; fp16 is refused in one sentence (Debian 12's arm64 Mesa/LLVM aborts compiling it).

The Vulkan rootfs is opt-in (CI does not build it): the device tests are skipped with the reason when it is not
built. The fast tests check that its recipe stays out of the default one and the harness's fp16 rule.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from mobileseg.emulator import build, control, vulkan
from mobileseg.results.record import validate_record
from mobileseg.results.table import numerics_only

HARNESS = Path(__file__).resolve().parents[1] / "device_scripts" / "harness.py"

MODELS = ["topformer-t", "lraspp-mbv3-large"]


def _skip_reason() -> str | None:
    missing = [t for t in ("proot", "qemu-aarch64-static") if not shutil.which(t)]
    if missing:
        return f"{', '.join(missing)} not installed (sudo apt-get install proot qemu-user-static)"
    if not vulkan.is_built():
        return "the emulated device with Vulkan is not built: run `mobileseg emulator build --vulkan` (opt-in)"
    return None


@pytest.fixture(scope="module")
def device(key):
    pytest.importorskip("adb_shell")
    why = _skip_reason()
    if why:
        pytest.skip(why)
    proc, port = control.launch(
        adb_keys=key.parent / "adb_keys",
        refuse_new_keys=True,
        rootfs=str(vulkan.rootfs_dir()),
        extra_args=vulkan.env_args(),
    )
    yield port
    control.terminate(proc)


def _bench(port: int, out: Path, export: Path, precision: str) -> int:
    from mobileseg.cli import main

    return main(
        [
            "bench",
            "--device",
            f"adb:127.0.0.1:{port}",
            "--adb-transport",
            "direct",
            "--threads",
            "1",
            "-m",
            *MODELS,
            "--res",
            "64x64",
            "--runtimes",
            "ncnn-vulkan",
            "--precisions",
            precision,
            "--warmup",
            "1",
            "--repeats",
            "2",
            "--harness",
            "python",
            "--out",
            str(out),
            "--export-dir",
            str(export),
            "--quiet",
        ]
    )


def _records(out: Path) -> list[dict]:
    return [
        json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines() if line.strip()
    ]


@pytest.mark.slow
@pytest.mark.emulator
def test_fp32_matches_pytorch_on_arm64_lavapipe(device, key, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    root = tmp_path_factory.getbasetemp()
    out = root / "vk-fp32"
    _bench(device, out, root / "export", "fp32")
    recs = _records(out)
    assert sorted(r["model"] for r in recs) == sorted(MODELS)
    for r in recs:
        assert validate_record(r) == [], validate_record(r)
        assert r["status"] == "ok", (r["model"], r.get("error"))
        assert r["runtime"] == "ncnn-vulkan" and r["harness"] == "device-python" and r["precision"] == "fp32"
        s = r["runtime_settings"]
        assert s["vulkan"] and "llvmpipe" in s["vulkan_device"] and s["vulkan_software"] is True
        assert r["emulated"] is True and r["device"]["emulated"] is True and numerics_only(r)
        assert r["parity"]["ok"] and r["parity"]["rel_l2"] <= r["parity"]["limit_rel_l2"], r["parity"]
        assert r["parity"]["argmax_agree"] > 0.99 and len(r["samples_ms"]) == 2


@pytest.mark.slow
@pytest.mark.emulator
def test_fp16_is_refused_in_one_sentence(device, key, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    root = tmp_path_factory.getbasetemp()
    out = root / "vk-fp16"
    _bench(device, out, root / "export", "fp16")
    recs = _records(out)
    assert sorted(r["model"] for r in recs) == sorted(MODELS)
    for r in recs:
        assert r["status"] != "ok" and r["precision"] == "fp16"
        assert "fp16 is unsupported by this driver build" in r["error"] and "LLVM 15" in r["error"], r["error"]
        assert "Mesa 22." in r["error"] and "SIGABRT" not in r["error"] and "Traceback" not in r["error"]


def test_the_vulkan_recipe_is_keyed_by_the_debian_one_and_stays_out_of_it():
    debian = build.recipe(None, "debian")
    assert vulkan.recipe()["base"] == build.recipe_hash(debian)
    assert "mesa" not in json.dumps(debian) and "vulkan" not in json.dumps(debian).lower()
    assert vulkan.layer_dir() != build.profile_dir("debian") and vulkan.rootfs_dir() != build.rootfs_dir("debian")
    assert vulkan.env_args() == ["--env", f"VK_ICD_FILENAMES={vulkan.ICD_JSON}"]


def _harness():
    spec = importlib.util.spec_from_file_location("mobileseg_device_harness", HARNESS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    "name,machine,refused",
    [
        ("llvmpipe (LLVM 15.0.6, 128 bits)", "aarch64", True),
        ("llvmpipe (LLVM 15.0.6, 256 bits)", "x86_64", False),  # x86 lavapipe runs fp16 (issue 19's table)
        ("llvmpipe (LLVM 17.0.6, 128 bits)", "aarch64", False),
        ("Adreno (TM) 650", "aarch64", False),
    ],
)
def test_harness_refuses_fp16_only_on_aarch64_lavapipe_of_llvm15(monkeypatch, name, machine, refused):
    h = _harness()
    monkeypatch.setattr(h.platform, "machine", lambda: machine)
    why = h.fp16_refusal({"vulkan_device": name, "vulkan_driver_version": 1})
    assert (why is not None) == refused
    if refused:
        assert why.startswith("fp16 is unsupported by this driver build") and "LLVM 15.0.6" in why
