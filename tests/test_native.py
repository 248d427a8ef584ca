"""The native ncnn harness (device_scripts/native), its build and its host-side driver (mobileseg.device.native).

Fast tests check the driver's plumbing and the build's error messages with a device that is a local folder. Slow
tests build the harness (host and aarch64, cached under $MOBILESEG_CACHE / ~/.cache/mobileseg) and compare its
output with the ncnn Python package and the PyTorch reference: on this host, and as a static aarch64 binary under
qemu-user (no emulated device needed for that).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mobileseg.device import native, native_build
from mobileseg.device.native import NativeHarness, NativeHarnessError
from mobileseg.device.transport import DeviceTransport, PushError
from mobileseg.errors import MobilesegError
from mobileseg.parity import compare

QEMU = shutil.which("qemu-aarch64-static")
QEMU_CPU = "cortex-a76"  # asimdhp + asimddp like a Snapdragon 865 prime core: ncnn would use fp16 if allowed


class TinySegNet(nn.Module):
    """Conv-BN-ReLU, a depthwise block, a 1x1 classifier and bilinear upsampling: the ops of a mobile seg head."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.dw = nn.Sequential(
            nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU6(),
            nn.Conv2d(16, 24, 1),
            nn.Hardswish(),
        )
        self.cls = nn.Conv2d(24, classes, 1)

    def forward(self, x):
        y = self.cls(self.dw(self.stem(x)))
        return F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    return make_tiny_export(tmp_path_factory.mktemp("tiny_seg_32x40"))


def make_tiny_export(d: Path, h: int = 32, w: int = 40):
    """An export folder (contract 2) holding a pnnx-converted ncnn model and its PyTorch reference (h x w input)."""
    pnnx = pytest.importorskip("pnnx", reason="pnnx converts the test model to ncnn: pip install 'mobileseg[ncnn]'")
    torch.manual_seed(0)
    model = TinySegNet().eval()
    for m in model.modules():  # non-trivial BN statistics, so folding matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    d.mkdir(parents=True, exist_ok=True)
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        ref = model(x).numpy()
    work = d / "pnnx"
    work.mkdir()
    pnnx.export(model, str(work / "model.pt"), (x,), fp16=False)
    for suffix in ("param", "bin"):
        shutil.move(str(work / f"model.ncnn.{suffix}"), d / f"model.ncnn.{suffix}")
    (d / "reference").mkdir()
    np.save(d / "reference" / "input.npy", x.numpy())
    np.save(d / "reference" / "output.npy", ref)
    manifest = {
        "schema_version": 1,
        "model": "tiny_seg",
        "resolution": [h, w],
        "precision": "fp32",
        "input": {"name": "in0", "shape": [1, 3, h, w], "dtype": "float32", "layout": "NCHW"},
        "output": {"name": "out0", "shape": list(ref.shape), "dtype": "float32"},
        "formats": {
            "ncnn": {
                "files": [{"path": "model.ncnn.param"}, {"path": "model.ncnn.bin"}],
                "input_name": "in0",
                "output_name": "out0",
                "ok": True,
            }
        },
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d, manifest


def ncnn_python_output(export_dir: Path) -> np.ndarray:
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.num_threads = 1
    for s in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, s, False)
    assert net.load_param(str(export_dir / "model.ncnn.param")) == 0
    assert net.load_model(str(export_dir / "model.ncnn.bin")) == 0
    x = np.ascontiguousarray(np.load(export_dir / "reference" / "input.npy")[0])
    ex = net.create_extractor()
    ex.input("in0", ncnn.Mat(x))
    rc, out = ex.extract("out0")
    assert rc == 0
    return np.array(out, copy=True)[None]


class LocalFolderDevice(DeviceTransport):
    """A 'device' whose shell is this machine's sh: the three calls the driver uses, and a log of pushes.

    ``wrap`` prefixes every harness binary invocation (e.g. with qemu-aarch64-static for an aarch64 build).
    """

    def __init__(self, wrap: str | None = None):
        self.wrap = wrap
        self.pushed: list[str] = []
        self.commands: list[str] = []

    def shell(self, cmd: str, timeout: float | None = None):
        self.commands.append(cmd)
        if self.wrap:
            # only where the harness is executed (not where it is hashed or chmod-ed)
            cmd = re.sub(r"(^|&& |; |taskset \S+ )(\S*mobileseg-ncnn-harness-[0-9a-f]{12})", rf"\1{self.wrap} \2", cmd)
        p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr

    def _push_once(self, local, remote, timeout):
        self.pushed.append(remote)
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, remote)

    def pull(self, remote, local, timeout=None):
        shutil.copyfile(remote, local)
        return Path(local)


class Cell:
    runtime, precision, graph = "ncnn", "fp32", "logits"

    def __init__(self, threads=1):
        self.threads = threads


# -- fast: driver plumbing, parsing, error messages ----------------------------------------------------------------


def test_cpu_mask():
    assert native.cpu_mask([7]) == "80"
    assert native.cpu_mask({4, 5, 6, 7}) == "f0"
    assert native.cpu_mask([0, 2]) == "5"
    with pytest.raises(NativeHarnessError):
        native.cpu_mask([])


def test_push_checked_sends_once_and_verifies(tmp_path):
    dev = LocalFolderDevice()
    local = tmp_path / "a.bin"
    local.write_bytes(b"\x00weights" * 100)
    remote = str(tmp_path / "device" / "dir" / "a.bin")
    assert native.push_checked(dev, local, remote) is True
    assert native.push_checked(dev, local, remote) is False  # same sha256 on the device: not sent again
    assert dev.pushed == [remote]
    local.write_bytes(b"changed")
    assert native.push_checked(dev, local, remote) is True
    assert Path(remote).read_bytes() == b"changed"


def test_push_checked_detects_a_corrupt_copy(tmp_path):
    class Corrupting(LocalFolderDevice):
        def _push_once(self, local, remote, timeout):
            super()._push_once(local, remote, timeout)
            Path(remote).write_bytes(b"truncated")

    local = tmp_path / "a.bin"
    local.write_bytes(b"x" * 1000)
    with pytest.raises(PushError, match="checksum after push"):
        native.push_checked(Corrupting(), local, str(tmp_path / "dev" / "a.bin"))


def test_command_pins_and_sets_every_switch(tmp_path):
    h = NativeHarness(binary=__file__, remote_root=str(tmp_path))
    with pytest.raises(NativeHarnessError, match="prepare"):
        h.command("p", "b", "i.npy", "t.json", "o.npy", 1, 1, 5, None)
    h.remote_binary = "/data/local/tmp/mobileseg/bin/mobileseg-ncnn-harness-0123456789ab"
    cmd = h.command(
        "/d/m/model.ncnn.param",
        "/d/m/model.ncnn.bin",
        "/d/m/reference/input.npy",
        "/d/t.json",
        "/d/o.npy",
        threads=2,
        warmup=4,
        repeats=None,
        min_time=0.5,
        mask=native.cpu_mask([6, 7]),
    )
    assert cmd.startswith("taskset c0 ")
    for part in (
        "--threads 2",
        "--warmup 4",
        "--fp16 0",
        "--int8 0",
        "--bf16 0",
        "--repeats 0",
        "--min-time-ms 500.000",
        "--input /d/m/reference/input.npy",
        "--timings /d/t.json",
    ):
        assert part in cmd
    cmd16 = h.command("p", "b", "i.npy", "t.json", "o.npy", 1, 1, 5, None, precision="fp16")
    assert "--fp16 1" in cmd16 and "--repeats 5" in cmd16 and "taskset" not in cmd16
    # int8 artifacts carry their scales in the model; the harness must switch ncnn's int8 inference on for them
    cmd8 = h.command("p", "b", "i.npy", "t.json", "o.npy", 1, 1, 5, None, precision="int8")
    assert "--int8 1" in cmd8 and "--fp16 0" in cmd8
    with pytest.raises(NativeHarnessError, match="fp32, fp16 or int8"):
        h.command("p", "b", "i.npy", "t.json", "o.npy", 1, 1, 5, None, precision="bf16")


def test_driver_supports_ncnn_on_arm64_only(monkeypatch, tmp_path):
    binary = tmp_path / "mobileseg-ncnn-harness"
    binary.write_bytes(b"\x7fELF")
    drv = native.NativeHarnessDriver(binary=binary)
    assert drv.name == "native-ncnn"
    assert drv.supports("ncnn", {"abi": "arm64-v8a"}) is None
    assert "--ort-perf-test" in drv.supports("onnxruntime", {"abi": "arm64-v8a"})
    assert "x86_64" in drv.supports("ncnn", {"abi": "x86_64"})
    monkeypatch.setattr(native_build, "harness_path", lambda *a, **k: None)
    assert "mobileseg harness build" in native.NativeHarnessDriver().supports("ncnn", {"abi": "arm64-v8a"})


def test_parse_timings_reports_harness_errors():
    with pytest.raises(NativeHarnessError, match="no input blob named x"):
        native.parse_timings('{"ok": false, "error": "the model has no input blob named x"}')
    with pytest.raises(NativeHarnessError, match="rebuild"):
        native.parse_timings('{"ok": true, "samples_ms": [1.0]}')
    with pytest.raises(NativeHarnessError, match="unreadable"):
        native.parse_timings("{not json")


def test_missing_harness_names_the_build_command(monkeypatch):
    monkeypatch.setattr(native_build, "harness_path", lambda *a, **k: None)
    with pytest.raises(NativeHarnessError, match="mobileseg harness build"):
        NativeHarness().binary


def test_missing_cross_compiler_names_the_debian_package(monkeypatch):
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    monkeypatch.delenv("ANDROID_NDK_ROOT", raising=False)
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda n: None if "aarch64" in n else real(n))
    with pytest.raises(native_build.ToolchainError, match="g\\+\\+-aarch64-linux-gnu") as e:
        native_build.find_toolchain()
    assert "ANDROID_NDK_HOME" in str(e.value)
    monkeypatch.setattr(shutil, "which", lambda n: None)
    with pytest.raises(native_build.ToolchainError, match="Debian package cmake"):
        native_build.find_toolchain()


def test_bad_ndk_names_the_variable(tmp_path, monkeypatch):
    with pytest.raises(native_build.ToolchainError, match="ANDROID_NDK_HOME"):
        native_build.find_toolchain(ndk=str(tmp_path))
    monkeypatch.setenv("ANDROID_NDK_HOME", str(tmp_path))
    with pytest.raises(native_build.ToolchainError, match="not an Android NDK"):
        native_build.find_toolchain()


def test_ndk_toolchain_arguments(tmp_path):
    (tmp_path / "build" / "cmake").mkdir(parents=True)
    (tmp_path / "build" / "cmake" / "android.toolchain.cmake").write_text("")
    (tmp_path / "source.properties").write_text("Pkg.Desc = Android NDK\nPkg.Revision = 27.1.12297006\n")
    tc = native_build.find_toolchain(ndk=str(tmp_path))
    assert tc.name == "android-arm64" and "27.1.12297006" in tc.compiler_id
    assert "-DANDROID_ABI=arm64-v8a" in tc.cmake_args and not tc.link_static


def test_sdist_url_from_the_simple_index(monkeypatch):
    page = (
        '<a href="https://files.example/ncnn-1.0.20261020-cp311-cp311-manylinux_2_28_x86_64.whl#sha256=aa">w</a>'
        '<a href="https://files.example/p/ncnn-1.0.20261020.tar.gz#sha256=' + "b" * 64 + '">s</a>'
        '<a href="https://files.example/p/ncnn-1.0.20240410.tar.gz#sha256=cc">old</a>'
    )

    class Resp:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self):
            return page.encode()

    monkeypatch.setattr(native_build.urllib.request, "urlopen", lambda *a, **k: Resp())
    url, sha = native_build._sdist_url("1.0.20261020")
    assert url == "https://files.example/p/ncnn-1.0.20261020.tar.gz" and sha == "b" * 64
    with pytest.raises(native_build.HarnessBuildError, match="MOBILESEG_NCNN_SDIST"):
        native_build._sdist_url("1.0.20990101")


def test_harness_source_hash_follows_the_source(tmp_path):
    src = tmp_path / "native"
    shutil.copytree(native_build.harness_source_dir(), src)
    h1 = native_build.harness_source_hash(src)
    assert native_build.harness_source_hash(src) == h1
    (src / "harness.cpp").write_text((src / "harness.cpp").read_text() + "\n// changed\n")
    assert native_build.harness_source_hash(src) != h1


# -- slow: real builds and parity ----------------------------------------------------------------------------------


def _run_harness(cmd_prefix, binary, export_dir, tmp_path, repeats=4, extra=()):
    timings, out = tmp_path / "timings.json", tmp_path / "output.npy"
    cmd = [
        *cmd_prefix,
        str(binary),
        "--param",
        str(export_dir / "model.ncnn.param"),
        "--bin",
        str(export_dir / "model.ncnn.bin"),
        "--input",
        str(export_dir / "reference" / "input.npy"),
        "--timings",
        str(timings),
        "--output",
        str(out),
        "--threads",
        "1",
        "--warmup",
        "1",
        "--repeats",
        str(repeats),
        *extra,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    return json.loads(timings.read_text()), np.load(out)


def _check_harness_result(info, out, export_dir, repeats):
    ref = np.load(export_dir / "reference" / "output.npy")
    assert info["ok"] is True and info["harness"] == "native-ncnn" and info["runtime"] == "ncnn"
    assert info["runtime_version"] == native_build.ncnn_version()
    assert len(info["samples_ms"]) == repeats and all(s > 0 for s in info["samples_ms"])
    assert info["warmup"] == 1 and info["threads"] == 1
    s = info["settings"]
    assert not (s["use_fp16_packed"] or s["use_fp16_storage"] or s["use_fp16_arithmetic"] or s["use_bf16_storage"])
    assert s["use_int8_inference"] is False and "use_packing_layout" in s
    assert list(out.shape) == info["output_shape"] == list(ref.shape)
    torch_parity = compare(out, ref, "fp32")
    assert torch_parity["ok"], torch_parity
    py = compare(out, ncnn_python_output(export_dir), "fp32")
    assert py["rel_l2"] <= 1e-4, py
    return torch_parity


@pytest.mark.slow
def test_host_harness_matches_ncnn_python(tiny_export, tmp_path):
    export_dir, _ = tiny_export
    res = native_build.build_harness("host", jobs=2)
    info, out = _run_harness([], res.path, export_dir, tmp_path, repeats=5)
    _check_harness_result(info, out, export_dir, 5)
    # A second build is a cache hit: nothing compiled, same file.
    again = native_build.build_harness("host", jobs=2)
    assert again.cached and again.path == res.path
    assert native_build.harness_path("host") == res.path


@pytest.mark.slow
def test_host_harness_reports_bad_input(tiny_export, tmp_path):
    export_dir, _ = tiny_export
    binary = native_build.build_harness("host", jobs=2).path
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((1, 3, 8, 8), np.float64))
    timings = tmp_path / "t.json"
    p = subprocess.run(
        [
            str(binary),
            "--param",
            str(export_dir / "model.ncnn.param"),
            "--bin",
            str(export_dir / "model.ncnn.bin"),
            "--input",
            str(bad),
            "--timings",
            str(timings),
            "--output",
            str(tmp_path / "o.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "float32" in p.stderr
    with pytest.raises(NativeHarnessError, match="float32"):
        native.parse_timings(timings.read_text())


def _pushed_artifact(dev, export_dir: Path, manifest: dict, remote_root: Path) -> dict:
    """Push an export's ncnn files and input as AdbTarget.prepare does; the artifact dict it hands the driver."""
    rdir = remote_root / export_dir.name
    for rel in ("model.ncnn.param", "model.ncnn.bin", "reference/input.npy"):
        native.push_checked(dev, export_dir / rel, str(rdir / rel))
    entry = manifest["formats"]["ncnn"]
    return {
        "dir": str(rdir),
        "model": str(rdir / "model.ncnn.param"),
        "weights": str(rdir / "model.ncnn.bin"),
        "input": str(rdir / "reference" / "input.npy"),
        "input_name": entry["input_name"],
        "output_name": entry["output_name"],
        "tools": ["taskset"],
    }


@pytest.mark.slow
def test_driver_runs_the_host_harness_pinned(tiny_export, tmp_path):
    export_dir, manifest = tiny_export
    binary = native_build.build_harness("host", jobs=2).path
    dev = LocalFolderDevice()
    drv = native.NativeHarnessDriver(binary=binary, remote_root=str(tmp_path / "device"))
    artifact = _pushed_artifact(dev, export_dir, manifest, tmp_path / "device")
    cpu = sorted(__import__("os").sched_getaffinity(0))[0]
    samples, output, info = drv.run(
        dev, Cell(threads=1), artifact, mask=native.cpu_mask([cpu]), warmup=1, repeats=3, min_time=None
    )
    assert info["harness"] == "native-ncnn" and len(samples) == 3
    assert info["affinity"] == [cpu]  # taskset reached the harness process
    assert info["runtime_settings"]["use_fp16_storage"] is False and info["runtime_settings"]["precision"] == "fp32"
    ref = np.load(export_dir / "reference" / "output.npy")
    assert compare(output.reshape(ref.shape), ref, "fp32")["ok"]
    n_pushed = len(dev.pushed)
    _pushed_artifact(dev, export_dir, manifest, tmp_path / "device")
    drv.run(dev, Cell(), artifact, mask=None, warmup=0, repeats=1, min_time=None)
    assert len(dev.pushed) == n_pushed  # harness, model and input were already on the device


@pytest.mark.slow
@pytest.mark.skipif(QEMU is None, reason="qemu-aarch64-static is not installed: apt-get install qemu-user-static")
def test_aarch64_static_harness_under_qemu(tiny_export, tmp_path):
    export_dir, manifest = tiny_export
    try:
        res = native_build.build_harness("aarch64-linux-gnu", jobs=2)
    except native_build.ToolchainError as exc:
        pytest.skip(str(exc))
    head = res.path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64
    file_out = subprocess.run(["file", str(res.path)], capture_output=True, text=True).stdout
    if file_out:
        assert "statically linked" in file_out or "static-pie" in file_out
    info, out = _run_harness([QEMU, "-cpu", QEMU_CPU], res.path, export_dir, tmp_path, repeats=3)
    parity = _check_harness_result(info, out, export_dir, 3)
    assert parity["rel_l2"] <= 1e-4
    # The emulated CPU has fp16 arithmetic, so ncnn's own defaults would have used it: the harness switched it off.
    assert info["cpu"]["arch"] == "arm64" and info["cpu"]["asimdhp"] is True
    # ...and asking for fp16 does change the numbers (beyond the fp32 limit, within the fp16 one).
    info16, out16 = _run_harness(
        [QEMU, "-cpu", QEMU_CPU], res.path, export_dir, tmp_path, repeats=1, extra=("--fp16", "1")
    )
    assert info16["settings"]["use_fp16_arithmetic"] is True
    p16 = compare(out16, np.load(export_dir / "reference" / "output.npy"), "fp16")
    assert p16["ok"] and p16["rel_l2"] > 1e-4, p16

    # The same binary through the driver, as over ADB (the 'device' runs arm64 binaries with qemu).
    dev = LocalFolderDevice(wrap=f"{QEMU} -cpu {QEMU_CPU}")
    drv = native.NativeHarnessDriver(binary=res.path, remote_root=str(tmp_path / "device"))
    artifact = _pushed_artifact(dev, export_dir, manifest, tmp_path / "device")
    samples, output, info2 = drv.run(dev, Cell(), artifact, mask=None, warmup=1, repeats=2, min_time=None)
    assert len(samples) == 2 and info2["harness"] == "native-ncnn"
    ref = np.load(export_dir / "reference" / "output.npy")
    assert compare(output.reshape(ref.shape), ref, "fp32")["rel_l2"] <= 1e-4


@pytest.mark.slow
def test_cli_harness_build_and_path(capsys):
    from mobileseg.cli import main

    try:
        native_build.find_toolchain("aarch64-linux-gnu")
    except MobilesegError as exc:
        pytest.skip(str(exc))
    assert main(["harness", "build", "--toolchain", "aarch64-linux-gnu", "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert main(["harness", "build", "--toolchain", "aarch64-linux-gnu", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cached"] is True and again["path"] == built["path"]
    assert main(["harness", "path", "--toolchain", "aarch64-linux-gnu"]) == 0
    assert capsys.readouterr().out.strip() == built["path"]


def test_the_vulkan_variant_needs_the_ndk_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    monkeypatch.delenv("ANDROID_NDK_ROOT", raising=False)
    for toolchain in ("auto", "aarch64-linux-gnu", "host"):
        with pytest.raises(native_build.ToolchainError, match="needs the Android NDK.*static glibc binary cannot"):
            native_build.build_harness(toolchain, vulkan=True)
    binary = tmp_path / "mobileseg-ncnn-harness"
    binary.write_bytes(b"\x7fELF")
    drv = native.NativeHarnessDriver(binary=binary)  # the CPU harness is built, the Vulkan variant is not
    assert drv.supports("ncnn", {"abi": "arm64-v8a"}) is None
    assert "needs the Android NDK" in drv.supports("ncnn-vulkan", {"abi": "arm64-v8a"})
    # with an NDK: its own cache key (ncnn built with NCNN_VULKAN=ON) and the build command in the sentence
    (tmp_path / "ndk" / "build" / "cmake").mkdir(parents=True)
    (tmp_path / "ndk" / "build" / "cmake" / "android.toolchain.cmake").write_text("")
    tc = native_build.find_vulkan_toolchain(ndk=str(tmp_path / "ndk"))
    assert native_build._ncnn_lib_key(tc, "1.0", vulkan=True) != native_build._ncnn_lib_key(tc, "1.0")
    assert "-DNCNN_VULKAN=ON" in native_build.ncnn_cmake_options(vulkan=True)
    assert "-DNCNN_VULKAN=OFF" not in native_build.ncnn_cmake_options(vulkan=True)
    vk = native.NativeHarnessDriver(binary=binary, ndk=str(tmp_path / "ndk"))
    assert "mobileseg harness build --vulkan --ndk" in vk.supports("ncnn-vulkan", {"abi": "arm64-v8a"})
    h = native.NativeHarness(binary=binary, vulkan=True)
    h.remote_binary = "/data/local/tmp/mobileseg/bin/h"
    assert "--vulkan 1" in h.command("p", "b", "i.npy", "t.json", "o.npy", 1, 1, 5, None, precision="fp16")
    cpu = native.NativeHarness(binary=binary)
    cpu.remote_binary = "/data/local/tmp/mobileseg/bin/h"
    assert "--vulkan 0" in cpu.command("p", "b", "i.npy", "t.json", "o.npy", 1, 1, 5, None)
