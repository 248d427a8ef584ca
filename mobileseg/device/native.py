"""Host side of the native ncnn harness: push it once, run it pinned over ADB, pull and parse what it wrote.

A stock Android phone has no Python; :class:`NativeHarness` runs ``device_scripts/native`` (built by
``mobileseg harness build``) instead of ``device_scripts/harness.py``. Both write the same files (see
``device_scripts/README.md``), so the bench does not care which ran. The driver talks to the device through three
calls only (what :class:`mobileseg.device.adb_direct.AdbDevice` provides)::

    device.shell(cmd: str, timeout: float) -> (rc: int, stdout: str)
    device.push(local, remote) ; device.pull(remote, local)

Files are pushed once: before each push the device's ``sha256sum`` of the remote path is compared with the local
file's, and a matching file is not sent again.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path

import numpy as np

from ..errors import MobilesegError, TargetLostError
from ..hashing import sha256_file  # noqa: F401  (re-exported)
from . import marks
from .harness_driver import HarnessDriver

REMOTE_ROOT = "/data/local/tmp/mobileseg"
HARNESS_LABEL = "native-ncnn"


class NativeHarnessError(MobilesegError):
    """The native harness is missing, cannot run on the device, or failed; the message says what to do."""


def cpu_mask(cpus) -> str:
    """``taskset`` mask (hex, no 0x) of a collection of CPU ids: {4, 5, 6, 7} -> 'f0'."""
    cpus = sorted({int(c) for c in cpus})
    if not cpus or cpus[0] < 0:
        raise NativeHarnessError(f"bad CPU list {cpus}: give CPU ids >= 0 (e.g. --cpu 7)")
    return format(sum(1 << c for c in cpus), "x")


def push_checked(device, local, remote: str, mode: str | None = None) -> bool:
    """Push ``local`` to ``remote`` through the transport's push (skipped when the device holds the same sha256,
    verified, retried once; :meth:`mobileseg.device.transport.DeviceTransport.push`), then ``chmod`` it to ``mode``.
    True when the file was sent."""
    sent = bool(device.push(str(local), remote))
    if mode:
        device.shell(f"chmod {mode} {shlex.quote(remote)}", timeout=60)
    return sent


def parse_timings(text: str) -> dict:
    """Parse and check a harness timings JSON (the contract in device_scripts/README.md)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NativeHarnessError(
            f"the harness wrote unreadable timings ({exc}): rebuild it with `mobileseg harness build`"
        ) from None
    if data.get("ok") is False:
        raise NativeHarnessError(f"the native harness failed on the device: {data.get('error') or 'no reason given'}")
    missing = [
        k
        for k in ("samples_ms", "warmup", "threads", "runtime", "runtime_version", "settings", "output_shape")
        if k not in data
    ]
    if missing:
        raise NativeHarnessError(
            f"the harness timings lack {', '.join(missing)}: rebuild it with `mobileseg harness build`"
        )
    if not data["samples_ms"] or not all(isinstance(s, (int, float)) and s >= 0 for s in data["samples_ms"]):
        raise NativeHarnessError("the harness timings hold no valid samples: rerun with more --repeats")
    return data


def read_output(path, info: dict, want_shape=None) -> np.ndarray:
    """The output tensor (.npy, or raw float32), shaped as the manifest says when sizes agree (else as written)."""
    path = Path(path)
    out = np.load(path).reshape(-1) if path.suffix == ".npy" else np.fromfile(path, dtype=np.float32)
    shape = [int(d) for d in info.get("output_shape") or []]
    if shape and int(np.prod(shape)) != out.size:
        raise NativeHarnessError(
            f"the harness output has {out.size} values but its shape {shape} needs "
            f"{int(np.prod(shape))}: the pull was truncated, retry"
        )
    if want_shape is not None and int(np.prod(want_shape)) == out.size:
        return out.reshape([int(d) for d in want_shape])
    return out.reshape(shape) if shape else out


class NativeHarness:
    """Driver of the native ncnn harness on one device.

    ``binary`` is the harness built for the device (default: the cached ``mobileseg harness build`` output).
    ``prepare(device)`` pushes it once (sha256-checked); ``execute(device, ...)`` runs it under ``taskset`` on files
    already on the device and returns ``(samples_ms, output, info)``. Pushing the artifact is the target's job.
    """

    harness = HARNESS_LABEL
    runtime = "ncnn"

    def __init__(
        self,
        binary=None,
        remote_root: str = REMOTE_ROOT,
        toolchain: str = "auto",
        ndk: str | None = None,
        vulkan: bool = False,
    ):
        self._binary = Path(binary) if binary else None
        self.toolchain, self.ndk = toolchain, ndk
        self.vulkan = vulkan  # the Vulkan variant (ncnn-vulkan; built with the NDK only) run with --vulkan 1
        self.remote_root = remote_root.rstrip("/")
        self.remote_binary: str | None = None

    @property
    def binary(self) -> Path:
        if self._binary is None:
            from .native_build import harness_path

            found = harness_path(self.toolchain, self.ndk, vulkan=self.vulkan)  # no NDK for Vulkan: one sentence
            if found is None:
                build = "mobileseg harness build --vulkan --ndk PATH" if self.vulkan else "mobileseg harness build"
                raise NativeHarnessError(
                    f"the native ncnn harness{' (Vulkan variant)' if self.vulkan else ''} is "
                    f"not built: run `{build}` (the device has no Python, so the bench needs it)"
                )
            self._binary = found
        if not self._binary.is_file():
            raise NativeHarnessError(f"the native harness {self._binary} does not exist: run `mobileseg harness build`")
        return self._binary

    def prepare(self, device) -> str:
        """Push the harness binary (once, sha256-checked); returns its path on the device."""
        if self.remote_binary is None:
            digest = sha256_file(self.binary)[:12]
            remote = f"{self.remote_root}/bin/mobileseg-ncnn-harness-{digest}"
            push_checked(device, self.binary, remote, mode="755")
            rc, out = device.shell(f"{shlex.quote(remote)} --help >/dev/null 2>&1; echo rc=$?", timeout=120)
            if "rc=0" not in out:
                raise NativeHarnessError(
                    "the native harness does not start on the device (wrong architecture? "
                    f"got {out.strip()[-200:]!r}): rebuild it for arm64 with `mobileseg harness "
                    "build` (give --ndk for a phone that refuses static binaries)"
                )
            self.remote_binary = remote
        return self.remote_binary

    def command(
        self,
        param: str,
        weights: str,
        input_path: str,
        timings: str,
        output: str,
        threads: int,
        warmup: int,
        repeats: int | None,
        min_time: float | None,
        precision: str = "fp32",
        mask: str | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        shape=None,
        sampling=None,
    ) -> str:
        """The shell command that runs one cell (pinned with ``taskset <mask>`` when ``mask`` is given)."""
        if precision not in ("fp32", "fp16", "int8"):
            raise NativeHarnessError(f"the native ncnn harness runs fp32, fp16 or int8 artifacts, not {precision!r}")
        if self.remote_binary is None:
            raise NativeHarnessError("call prepare(device) before running the native harness")
        q = shlex.quote
        args = [
            q(self.remote_binary),
            "--param",
            q(param),
            "--bin",
            q(weights),
            "--input",
            q(input_path),
            "--input-name",
            q(input_name or "in0"),
            "--output-name",
            q(output_name or "out0"),
            "--threads",
            str(int(threads)),
            "--warmup",
            str(int(warmup)),
            "--fp16",
            "1" if precision == "fp16" else "0",
            "--int8",
            "1" if precision == "int8" else "0",
            "--bf16",
            "0",
            "--vulkan",
            "1" if self.vulkan else "0",
            "--timings",
            q(timings),
            "--output",
            q(output),
        ]
        if shape is not None:
            args += ["--shape", ",".join(str(int(d)) for d in shape)]
        if sampling is not None:  # --target-ci: the harness applies mobileseg.bench.sampling's rule itself
            args += [
                "--repeats",
                "0",
                "--target-ci-pct",
                f"{float(sampling.target_ci):g}",
                "--max-time-ms",
                f"{float(sampling.max_time) * 1000:.0f}",
                "--min-repeats",
                str(int(sampling.min_repeats)),
            ]
        elif repeats:
            args += ["--repeats", str(int(repeats))]
        else:
            args += ["--repeats", "0", "--min-time-ms", f"{float(min_time or 1.0) * 1000:.3f}"]
        cmd = " ".join(args)
        return f"taskset {mask} {cmd}" if mask else cmd

    def execute(
        self,
        device,
        remote_dir: str,
        param: str,
        weights: str,
        input_path: str,
        *,
        threads: int,
        warmup: int,
        repeats,
        min_time,
        precision: str = "fp32",
        mask: str | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        want_shape=None,
        timeout: float = 3600.0,
        tag: str = "ncnn",
        sampling=None,
    ):
        """Run the harness on files already on the device; returns ``(samples_ms, output, info)``."""
        self.prepare(device)
        q = shlex.quote
        tag = f"{tag}_{marks.run_token()}"  # this run's own files, even on shared storage
        timings, output = f"{remote_dir}/timings_native_{tag}.json", f"{remote_dir}/out_native_{tag}.npy"
        cmd = self.command(
            param,
            weights,
            input_path,
            timings,
            output,
            threads,
            warmup,
            repeats,
            min_time,
            precision=precision,
            mask=mask,
            input_name=input_name,
            output_name=output_name,
            sampling=sampling,
        )
        rc, log = device.shell(f"{marks.readback()}cd {q(remote_dir)} && {cmd} 2>&1", timeout=timeout)
        device_mark, log = marks.split(log)
        try:
            return self._collect(device, rc, log, timings, output, want_shape, precision, cmd, device_mark)
        finally:
            marks.remove(device, timings, output)

    def _collect(self, device, rc, log, timings, output, want_shape, precision, cmd, device_mark):
        with tempfile.TemporaryDirectory(prefix="mobileseg-native-") as tmp:
            tmp = Path(tmp)
            info = None
            try:
                device.pull(timings, str(tmp / "timings.json"))
                info = parse_timings((tmp / "timings.json").read_text())
            except (NativeHarnessError, TargetLostError):
                raise
            except Exception:  # no timings file: the harness crashed before writing one
                info = None
            if rc != 0 or info is None:
                tail = " ".join(log.strip().splitlines()[-2:])[-300:]
                raise NativeHarnessError(f"the native harness failed on the device (exit {rc}): {tail or 'no output'}")
            device.pull(output, str(tmp / "output.npy"))
            out = read_output(tmp / "output.npy", info, want_shape)
        info["harness"] = HARNESS_LABEL
        info["settings"] = {**info["settings"], "precision": precision, "harness": HARNESS_LABEL}
        info["runtime_settings"] = info["settings"]
        info["command"] = cmd
        if device_mark is not None:
            info["device_mark"] = device_mark
        return [float(v) for v in info["samples_ms"]], out, info


class NativeHarnessDriver(HarnessDriver):
    """The harness driver (:class:`~mobileseg.device.harness_driver.HarnessDriver`) of the native ncnn harness.

    The target pushes the artifact and ``reference/input.npy``; this driver pushes the harness binary once, runs it
    with the target's ``taskset`` mask and returns ``(samples_ms, output, info)`` like the Python harness driver.
    """

    name = HARNESS_LABEL
    adaptive_sampling = True  # --target-ci-pct / --max-time-ms on the device
    intermediates = "msgi"  # harness --intermediates FILE (every blob, MSGI1)

    def __init__(
        self,
        binary=None,
        toolchain: str = "auto",
        ndk: str | None = None,
        remote_root: str = REMOTE_ROOT,
        vulkan_binary=None,
    ):
        self.harness = NativeHarness(binary=binary, remote_root=remote_root, toolchain=toolchain, ndk=ndk)
        self.vulkan_harness = NativeHarness(
            binary=vulkan_binary, remote_root=remote_root, toolchain=toolchain, ndk=ndk, vulkan=True
        )

    def _for(self, runtime: str) -> NativeHarness:
        return self.vulkan_harness if runtime == "ncnn-vulkan" else self.harness

    def supports(self, runtime: str, description: dict) -> str | None:
        if runtime not in ("ncnn", "ncnn-vulkan"):
            tool = {"litert": "--tflite-benchmark PATH|auto", "onnxruntime": "--ort-perf-test PATH"}.get(runtime)
            where = "the device has no Python and " if not (description or {}).get("python") else ""
            how = (
                f"time {runtime} with its official binary ({tool})"
                if tool
                else "install python3 on the device (Termux) and use --harness python"
            )
            return f"{where}the native harness runs ncnn only: {how}"
        abi = (description or {}).get("abi") or ""
        if abi and not abi.startswith(("arm64", "aarch64")):
            return f"the native harness is built for arm64 but the device's ABI is {abi}: use --harness python"
        try:
            self._for(runtime).binary
        except MobilesegError as exc:
            return str(exc)
        return None

    def prepare(self, device) -> None:
        """Push the CPU harness when it is built; the Vulkan variant is pushed by its first cell (a device measured
        on ncnn-vulkan alone needs no CPU harness; supports() said which binary is missing)."""
        try:
            self.harness.binary
        except MobilesegError:
            return
        self.harness.prepare(device)

    def run(
        self,
        device,
        cell,
        artifact: dict,
        *,
        mask: str | None,
        warmup: int,
        repeats,
        min_time,
        timeout: float = 3600.0,
        sampling=None,
    ):
        if not artifact.get("weights"):
            raise NativeHarnessError(
                f"the ncnn artifact of {cell.label() if hasattr(cell, 'label') else cell} has "
                "no .bin weights: re-export it with --formats ncnn"
            )
        if mask and "taskset" not in (artifact.get("tools") or ["taskset"]):
            mask = None  # no taskset on this device: the record's affinity shows the CPUs actually allowed
        return self._for(cell.runtime).execute(
            device,
            artifact["dir"],
            artifact["model"],
            artifact["weights"],
            artifact["input"],
            threads=cell.threads,
            warmup=warmup,
            repeats=repeats,
            min_time=min_time,
            precision=cell.precision,
            mask=mask,
            input_name=artifact.get("input_name"),
            output_name=artifact.get("output_name"),
            timeout=timeout,
            tag=f"{cell.runtime}_{cell.precision}_t{cell.threads}",
            sampling=sampling,
        )
