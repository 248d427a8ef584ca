"""``AdbTarget``: contract 5 on a phone/board over ADB, or on the emulated ARM64 device.

Per cell: push the export folder's artifact and reference input (skipped when the device already has the same
sha256) under ``/data/local/tmp/mobileseg/<export folder>/``, run a *harness driver* pinned with ``taskset`` to one
big core, pull the timings and the output, and let the runner compare the output with the PyTorch reference on the
host (so the parity figures are those of the device's ARM kernels).

Harness drivers are the seam between the transport and what runs on the device. A driver has
``name`` (the record's ``harness``), ``supports(runtime, description) -> str | None`` (None, or why not),
``prepare(device)`` and ``run(device, cell, artifact, *, mask, warmup, repeats, min_time, timeout) -> (samples_ms,
output ndarray, info dict)``. :class:`PythonHarnessDriver` (``device_scripts/harness.py`` under the device's
python3) is here; the native C++ ncnn harness for phones without Python plugs in as
``mobileseg.device.native.NativeHarnessDriver`` (chosen with ``harness="native"`` or when the device has no Python).
"""
from __future__ import annotations

import json
import posixpath
import re
import shlex
import tempfile
import time
from pathlib import Path

from ..resources import project_path
from ..errors import MissingDependencyError, MobilesegError
from . import probe as _probe
from ..bench.targets import Target
from .adb import AdbDevice, AdbError, StorageFullError, sha256_file

WORKDIR = _probe.WORKDIR
HARNESS = project_path("device_scripts", "harness.py")
RUNTIME_MODULES = {"ncnn": ("ncnn",), "onnxruntime": ("onnxruntime",), "litert": ("ai_edge_litert", "tflite_runtime")}
RUNTIME_PIP = {"ncnn": "ncnn", "onnxruntime": "onnxruntime", "litert": "ai-edge-litert"}


class HarnessError(MobilesegError):
    """The on-device harness failed or crashed for one cell."""


class PythonHarnessDriver:
    """``device_scripts/harness.py`` run by the device's own python3 (ARM Linux boards, Termux, the emulator)."""

    name = "device-python"

    def __init__(self, python: str = "python3"):
        self.python = python
        self.remote = posixpath.join(WORKDIR, "harness.py")

    def supports(self, runtime: str, description: dict) -> str | None:
        py = description.get("python")
        if not py:
            return "the device has no python3 (use the native harness: --harness native)"
        mods = set(py.get("modules") or [])
        if runtime not in RUNTIME_MODULES:
            return f"the device harness does not run '{runtime}'"
        if not mods & set(RUNTIME_MODULES[runtime]):
            return (f"the device's Python lacks the '{RUNTIME_PIP[runtime]}' package: install it on the device "
                    f"(pip install {RUNTIME_PIP[runtime]}) or leave the runtime out with --runtimes")
        if "numpy" not in mods:
            return "the device's Python lacks numpy: install it on the device (pip install numpy)"
        return None

    def prepare(self, device: AdbDevice) -> None:
        if not HARNESS.exists():
            raise HarnessError(f"the device harness {HARNESS} is missing from this checkout: reinstall mobileseg")
        device.push(HARNESS, self.remote)

    def run(self, device: AdbDevice, cell, artifact: dict, *, mask: str | None, warmup: int, repeats, min_time,
            timeout: float):
        import numpy as np

        rdir = artifact["dir"]
        tag = f"{cell.runtime}_t{cell.threads}"
        out_npy, timings = posixpath.join(rdir, f"out_{tag}.npy"), posixpath.join(rdir, f"timings_{tag}.json")
        args = ["--runtime", cell.runtime, "--model", artifact["model"], "--input", artifact["input"],
                "--output", out_npy, "--timings", timings, "--threads", str(cell.threads), "--warmup", str(warmup),
                "--precision", cell.precision]
        if artifact.get("weights"):
            args += ["--weights", artifact["weights"]]
        if repeats is not None:
            args += ["--repeats", str(int(repeats))]
        elif min_time is not None:
            args += ["--min-time", str(float(min_time))]
        for key in ("input_name", "output_name"):
            if artifact.get(key) and cell.runtime != "litert":
                args += [f"--{key.replace('_', '-')}", artifact[key]]
        pin = f"taskset {mask} " if mask and "taskset" in (artifact.get("tools") or []) else ""
        cmd = (f"cd {shlex.quote(rdir)} && rm -f {shlex.quote(out_npy)} {shlex.quote(timings)} && "
               f"{pin}{self.python} {shlex.quote(self.remote)} {' '.join(shlex.quote(a) for a in args)}")
        rc, log = device.shell(cmd, timeout)
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
        return [float(v) for v in info["samples_ms"]], output, info


FORMAT_RUNTIMES = {"onnx": "onnxruntime", "tflite": "litert", "ncnn": "ncnn"}


def official_tool_drivers(tflite_benchmark=None, ort_perf_test=None) -> dict:
    """Drivers of the user-supplied official binaries, by the runtime they time (``--tflite-benchmark``,
    ``--ort-perf-test``); a missing file is one clear error."""
    if not tflite_benchmark and not ort_perf_test:
        return {}
    from .official_tools import ORT_TOOL, TFLITE_TOOL, OfficialToolDriver

    drivers = {}
    if tflite_benchmark:
        drivers["litert"] = OfficialToolDriver(TFLITE_TOOL, tflite_benchmark)
    if ort_perf_test:
        drivers["onnxruntime"] = OfficialToolDriver(ORT_TOOL, ort_perf_test)
    return drivers


def _crash_reason(rc: int, log: str) -> str:
    tail = " ".join(log.strip().splitlines()[-2:])[:300]
    if rc >= 128 or rc in (132, 134, 135, 136, 137, 139):
        sig = {132: "SIGILL", 134: "SIGABRT", 135: "SIGBUS", 136: "SIGFPE", 137: "SIGKILL", 139: "SIGSEGV"}.get(rc)
        return f"it crashed with exit {rc}{' (' + sig + ')' if sig else ''}{': ' + tail if tail else ''}"
    return f"exit {rc}: {tail}" if tail else f"exit {rc}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", (text or "device").lower()).strip("-")[:48] or "device"


class AdbTarget(Target):
    """A device over ADB (contract 5). Open with :meth:`open` (``adb``, ``adb:SERIAL``, ``adb:HOST:PORT``)."""

    kind = "adb"

    def __init__(self, device: AdbDevice, cpu: int | None = None, harness: str = "auto", run_timeout: float = 1800.0,
                 cooldown_poll_s: float = 2.0, tool_drivers: dict | None = None):
        self.device = device
        self.run_timeout = float(run_timeout)
        self.cooldown_poll_s = cooldown_poll_s
        self._desc = _probe.probe(device)
        d = self._desc
        if cpu is not None:
            try:
                cpu = int(cpu)
            except (TypeError, ValueError):
                raise MobilesegError(f"--cpu must be a CPU index of the device, not {cpu!r}") from None
            if d.get("cores") and not 0 <= cpu < d["cores"]:
                raise MobilesegError(f"the device has CPUs 0-{d['cores'] - 1}: pass one of them with --cpu")
            d["pinned_cpu"], d["pin_mask"] = cpu, hex(1 << cpu)
            d["governor"] = d.get("governors", {}).get(str(cpu), d.get("governor"))
        self.emulated = bool(d.get("emulated"))
        # Official benchmark binaries (user-supplied) replace the harness for their runtime: litert, onnxruntime.
        self.tool_drivers = dict(tool_drivers or {})
        self.driver = self._choose_driver(harness)
        d["harness"] = self.driver.name
        if self.tool_drivers:
            d["official_tools"] = {rt: drv.name for rt, drv in sorted(self.tool_drivers.items())}
        self._prepared_drivers: set = set()
        self._pushed: dict = {}

    @classmethod
    def open(cls, device_arg: str = "adb", cpu=None, harness: str = "auto", key_path=None,
             connect_timeout: float = 10.0, run_timeout: float = 1800.0, tflite_benchmark=None, ort_perf_test=None,
             **_ignored) -> "AdbTarget":
        tools = official_tool_drivers(tflite_benchmark, ort_perf_test)  # a bad path fails before connecting
        dev = AdbDevice.open(device_arg, key_path=key_path, connect_timeout=connect_timeout)
        try:
            return cls(dev, cpu=cpu, harness=harness, run_timeout=run_timeout, tool_drivers=tools)
        except BaseException:
            dev.close()
            raise

    def driver_for(self, runtime: str):
        """The driver that measures ``runtime``: its official binary when one was given, else the harness."""
        return self.tool_drivers.get(runtime) or self.driver

    def _choose_driver(self, harness: str):
        want = (harness or "auto").lower()
        if want in ("python", "device-python") or (want == "auto" and self._desc.get("python")):
            return PythonHarnessDriver()
        if want in ("native", "native-ncnn", "auto"):
            try:
                from .native import NativeHarnessDriver
            except ImportError:
                raise MobilesegError("this device has no Python and the native ncnn harness is not part of this "
                                     "build: install python3 on the device (Termux) or update mobileseg") from None
            return NativeHarnessDriver()
        raise MobilesegError(f"unknown harness '{harness}': use auto, python or native")

    # -- contract 5 -------------------------------------------------------------------------------------------
    def describe(self) -> dict:
        return dict(self._desc)

    def device_id(self) -> str:
        tag = "emu-" if self.emulated and "emu" not in _slug(self._desc.get("model")) else ""
        return f"adb-{tag}{_slug(self._desc.get('model'))}"

    def check_runtime(self, runtime: str) -> None:
        why = self.driver_for(runtime).supports(runtime, self._desc)
        if why:
            raise MissingDependencyError(why)

    def state(self) -> dict:
        return _probe.state(self.device)

    def _remote_dir(self, export_dir) -> str:
        return posixpath.join(WORKDIR, Path(export_dir).resolve().name)

    def prepare(self, export_dir, fmt) -> None:
        export_dir = Path(export_dir)
        manifest = json.loads((export_dir / "manifest.json").read_text())
        entry = (manifest.get("formats") or {}).get(fmt) or {}
        files = [f["path"] if isinstance(f, dict) else f for f in entry.get("files") or []]
        if not files:
            raise MobilesegError(f"the export {export_dir} has no '{fmt}' artifact: export it first "
                                 f"(mobileseg export --formats {fmt})")
        driver = self.driver_for(FORMAT_RUNTIMES.get(fmt, fmt))
        local = [export_dir / p for p in files]
        if getattr(driver, "needs_input", True):  # the official binaries generate their own input
            local.append(export_dir / "reference" / "input.npy")
        need = sum(p.stat().st_size for p in local if p.exists())
        free = self._desc.get("storage_free_bytes")
        if free is not None and need > free:
            raise StorageFullError(f"the device has {free / 1e6:.0f} MB free under {WORKDIR} but the {fmt} artifact "
                                   f"needs {need / 1e6:.0f} MB: free space on the device and run again")
        if id(driver) not in self._prepared_drivers:  # each harness / binary is pushed once per run
            driver.prepare(self.device)
            self._prepared_drivers.add(id(driver))
        rdir = self._remote_dir(export_dir)
        for p in local:
            rel = p.relative_to(export_dir).as_posix()
            key = (str(p), p.stat().st_mtime_ns, p.stat().st_size)
            if self._pushed.get(rel) == key:  # pushed (and verified) earlier in this run
                continue
            self.device.push(p, posixpath.join(rdir, rel), local_sha256=sha256_file(p))
            self._pushed[rel] = key

    def _artifact(self, export_dir, manifest, fmt) -> dict:
        entry = (manifest.get("formats") or {}).get(fmt) or {}
        files = [f["path"] if isinstance(f, dict) else f for f in entry.get("files") or []]
        rdir = self._remote_dir(export_dir)
        model = next((f for f in files if f.endswith((".onnx", ".tflite", ".param"))), files[0] if files else None)
        weights = next((f for f in files if f.endswith(".bin")), None)
        return {"dir": rdir, "model": posixpath.join(rdir, model) if model else None,
                "weights": posixpath.join(rdir, weights) if weights else None,
                "input": posixpath.join(rdir, "reference", "input.npy"),
                "input_name": entry.get("input_name"), "output_name": entry.get("output_name"),
                "tools": self._desc.get("tools") or []}

    def run_cell(self, cell, export_dir, manifest, warmup, repeats, min_time):
        from ..bench.targets import CellRun

        mask = self._desc.get("pin_mask") if cell.threads == 1 else self._desc.get("big_core_mask")
        driver = self.driver_for(cell.runtime)
        samples, output, info = driver.run(
            self.device, cell, self._artifact(export_dir, manifest, cell.format), mask=mask, warmup=warmup,
            repeats=repeats, min_time=min_time, timeout=self.run_timeout)
        out_spec = (manifest.get("output") or {}).get("shape")
        if output is not None and out_spec and output.size == int(__import__("numpy").prod(out_spec)):
            output = output.reshape(out_spec)
        settings = dict(info.get("settings") or {})
        settings["device_pin_mask"] = mask
        parity = info.get("parity") or {}
        return CellRun(samples_ms=samples, output=output, runtime_version=info.get("runtime_version"),
                       runtime_settings=settings, affinity=list(info.get("affinity") or []),
                       harness=driver.name, overhead_ms=info.get("overhead_ms"),
                       stats_ms=info.get("stats_ms") if output is None else None,
                       parity_note=parity.get("reason") if output is None else None)

    def cooldown(self, reference_state, timeout_s) -> None:
        """Wait until the CPU zone is back within 2 C of ``reference_state`` (or ``timeout_s`` passed)."""
        ref_temps = (reference_state or {}).get("temps_c") or {}
        zone = _probe.cpu_zone(ref_temps)
        if zone is None or not timeout_s:
            return
        deadline = time.monotonic() + float(timeout_s)
        while True:
            now = self.state().get("temps_c", {}).get(zone)
            if now is None or now <= ref_temps[zone] + 2.0 or time.monotonic() >= deadline:
                self._desc["last_cooldown"] = {"zone": zone, "start_c": ref_temps[zone], "end_c": now,
                                               "reached": now is None or now <= ref_temps[zone] + 2.0}
                return
            time.sleep(self.cooldown_poll_s)

    def close(self) -> None:
        self.device.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
