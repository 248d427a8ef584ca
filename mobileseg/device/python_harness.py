"""The Python harness driver: ``device_scripts/harness.py`` run by the device's own python3 over ADB (the driver
seam, and what a driver can do, is :class:`mobileseg.device.harness_driver.HarnessDriver`)."""

from __future__ import annotations

import json
import posixpath
import shlex
import tempfile
from pathlib import Path

from .. import formats
from ..errors import MobilesegError
from ..resources import project_path
from . import marks
from .adb_direct import AdbError
from .harness_driver import HarnessDriver
from .probe import WORKDIR

HARNESS = project_path("device_scripts", "harness.py")
PROFILER = project_path("device_scripts", "profile_ops.py")


class HarnessError(MobilesegError):
    """The on-device harness failed or crashed for one cell."""


class PythonHarnessDriver(HarnessDriver):
    """``device_scripts/harness.py`` run by the device's own python3 (ARM Linux boards, Termux, the emulator)."""

    name = "device-python"
    adaptive_sampling = True  # applies --target-ci / --max-time on the device (harness.py --target-ci)
    intermediates = "npz"  # harness.py --intermediates FILE.npz

    def __init__(self, python: str = "python3"):
        self.python = python
        self.remote = posixpath.join(WORKDIR, "harness.py")

    def supports(self, runtime: str, description: dict) -> str | None:
        py = description.get("python")
        if not py:
            return "the device has no python3 (use the native harness: --harness native)"
        mods = set(py.get("modules") or [])
        row = formats.RUNTIMES.get(runtime)
        if row is None or not row.device_modules:
            return f"the device harness does not run '{runtime}'"
        if not mods & set(row.device_modules):
            return (
                f"the device's Python lacks the '{row.device_pip}' package: install it on the device "
                f"(pip install {row.device_pip}) or leave the runtime out with --runtimes"
            )
        if "numpy" not in mods:
            return "the device's Python lacks numpy: install it on the device (pip install numpy)"
        return None

    def prepare(self, device) -> None:
        if not HARNESS.exists():
            raise HarnessError(f"the device harness {HARNESS} is missing from this checkout: reinstall mobileseg")
        device.push(HARNESS, self.remote)

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
        timeout: float,
        sampling=None,
    ):
        import numpy as np

        rdir = artifact["dir"]
        tag = f"{cell.runtime}_t{cell.threads}_{marks.run_token()}"  # this run's own files, even on shared storage
        out_npy, timings = posixpath.join(rdir, f"out_{tag}.npy"), posixpath.join(rdir, f"timings_{tag}.json")
        args = [
            "--runtime",
            cell.runtime,
            "--model",
            artifact["model"],
            "--input",
            artifact["input"],
            "--output",
            out_npy,
            "--timings",
            timings,
            "--threads",
            str(cell.threads),
            "--warmup",
            str(warmup),
            "--precision",
            cell.precision,
            "--mark-file",
            marks.MARK_FILE,
        ]
        if artifact.get("weights"):
            args += ["--weights", artifact["weights"]]
        if repeats is not None:
            args += ["--repeats", str(int(repeats))]
        elif min_time is not None:
            args += ["--min-time", str(float(min_time))]
        if sampling is not None:  # adaptive: harness.py applies mobileseg.bench.sampling's rule on the device
            args += [
                "--target-ci",
                str(sampling.target_ci),
                "--max-time",
                str(sampling.max_time),
                "--min-repeats",
                str(sampling.min_repeats),
            ]
            args = [a for i, a in enumerate(args) if not (a == "--repeats" or (i and args[i - 1] == "--repeats"))]
        for key in ("input_name", "output_name"):
            if artifact.get(key) and cell.runtime != "litert":
                args += [f"--{key.replace('_', '-')}", artifact[key]]
        pin = f"taskset {mask} " if mask and "taskset" in (artifact.get("tools") or []) else ""
        cmd = (
            f"cd {shlex.quote(rdir)} && "
            f"{pin}{self.python} {shlex.quote(self.remote)} {' '.join(shlex.quote(a) for a in args)}"
        )
        rc, log = device.shell(cmd, timeout)
        try:
            with tempfile.TemporaryDirectory(prefix="mobileseg-adb-") as tmp:
                info = None
                try:
                    info = json.loads(device.pull(timings, Path(tmp) / "timings.json").read_text())
                except (AdbError, ValueError, OSError):
                    pass
                if rc != 0 or not info or not info.get("ok"):
                    why = (info or {}).get("error") or _crash_reason(rc, log)
                    raise HarnessError(f"the device harness failed on {cell.label()} ({why})")
                output = np.load(device.pull(out_npy, Path(tmp) / "output.npy"))
        finally:
            marks.remove(device, out_npy, timings)
        return [float(v) for v in info["samples_ms"]], output, info

    def op_profile(self, device, cell, artifact: dict, *, mask: str | None, timeout: float = 3600.0, runs: int = 10):
        """``device_scripts/profile_ops.py``'s per-op times (onnxruntime, ncnn), read by ``profile_ops``."""
        raw = op_profile_raw(self, device, cell, artifact, mask=mask, runs=runs, timeout=timeout)
        return None if raw is None else ("profile_ops", raw)


def op_profile_raw(
    driver, device, cell, artifact: dict, *, mask: str | None, runs: int = 10, timeout: float = 3600.0
) -> dict | None:
    """Per-op times of one cell from ``device_scripts/profile_ops.py`` on the device (onnxruntime, ncnn), raw:
    :func:`mobileseg.bench.profile.from_device` turns them into the profile schema. None for other runtimes."""
    if cell.runtime not in ("onnxruntime", "ncnn"):
        return None
    remote = posixpath.join(WORKDIR, "profile_ops.py")
    device.push(PROFILER, remote)
    rdir = artifact["dir"]
    out = posixpath.join(rdir, f"ops_{cell.runtime}_t{cell.threads}_{marks.run_token()}.json")
    args = [
        "--runtime",
        cell.runtime,
        "--model",
        artifact["model"],
        "--input",
        artifact["input"],
        "--out",
        out,
        "--runs",
        str(int(runs)),
        "--threads",
        str(cell.threads),
    ]
    if artifact.get("weights"):
        args += ["--weights", artifact["weights"]]
    pin = f"taskset {mask} " if mask and "taskset" in (artifact.get("tools") or []) else ""
    rc, log = device.shell(
        f"cd {shlex.quote(rdir)} && {pin}{driver.python} {shlex.quote(remote)} "
        f"{' '.join(shlex.quote(a) for a in args)}",
        timeout,
    )
    if rc != 0:
        raise HarnessError(f"the device profiler failed on {cell.label()} ({_crash_reason(rc, log)})")
    try:
        with tempfile.TemporaryDirectory(prefix="mobileseg-ops-") as tmp:
            return json.loads(device.pull(out, Path(tmp) / "ops.json").read_text())
    finally:
        marks.remove(device, out)


def _crash_reason(rc: int, log: str) -> str:
    tail = " ".join(log.strip().splitlines()[-2:])[:300]
    if rc >= 128 or rc in (132, 134, 135, 136, 137, 139):
        sig = {132: "SIGILL", 134: "SIGABRT", 135: "SIGBUS", 136: "SIGFPE", 137: "SIGKILL", 139: "SIGSEGV"}.get(rc)
        return f"it crashed with exit {rc}{' (' + sig + ')' if sig else ''}{': ' + tail if tail else ''}"
    return f"exit {rc}: {tail}" if tail else f"exit {rc}"
