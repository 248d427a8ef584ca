"""``AdbTarget``: contract 5 on a phone/board over ADB, or on the emulated ARM64 device.

Per cell: push the export folder's artifact and reference input (skipped when the device already has the same
sha256) under ``/data/local/tmp/mobileseg/<export folder>/``, run a *harness driver* pinned with ``taskset`` to one
big core, pull the timings and the output, and let the runner compare the output with the PyTorch reference on the
host (so the parity figures are those of the device's ARM kernels).

The drivers live in the device layer (the seam is described in :mod:`mobileseg.device.python_harness`):
:class:`~mobileseg.device.python_harness.PythonHarnessDriver` (the device's python3),
:class:`~mobileseg.device.native.NativeHarnessDriver` (the C++ ncnn harness, for phones without Python; chosen with
``harness="native"`` or when the device has no Python) and the official binaries'
:class:`~mobileseg.device.official_tools.OfficialToolDriver`.
"""

from __future__ import annotations

import posixpath
import time
from pathlib import Path

from ... import formats
from ... import manifest as _manifest
from ...device import marks as _marks
from ...device import probe as _probe
from ...device.adb_direct import StorageFullError, sha256_file
from ...device.transport import DeviceTransport
from ...device.python_harness import PythonHarnessDriver
from ...errors import MissingDependencyError, MobilesegError
from ...results.paths import slug
from . import CellRun, Target

WORKDIR = _probe.WORKDIR


def official_tool_drivers(tflite_benchmark=None, ort_perf_test=None) -> dict:
    """Drivers of the official binaries, by the runtime they time (``--tflite-benchmark PATH|auto``,
    ``--ort-perf-test PATH``); a missing file is one clear error. ``auto``: the binary ``mobileseg tools fetch
    tflite-benchmark`` put in the cache."""
    if not tflite_benchmark and not ort_perf_test:
        return {}
    from ...device.official_tools import ORT_TOOL, TFLITE_TOOL, OfficialToolDriver

    drivers = {}
    if tflite_benchmark:
        version = None
        if str(tflite_benchmark).lower() == "auto":  # the official prebuilt fetched by mobileseg tools fetch
            from ...device import tool_fetch

            tflite_benchmark = tool_fetch.cached_binary("tflite-benchmark")
            version = (tool_fetch.cached("tflite-benchmark") or {}).get("version")
        drivers["litert"] = OfficialToolDriver(TFLITE_TOOL, tflite_benchmark, version=version)
    if ort_perf_test:
        drivers["onnxruntime"] = OfficialToolDriver(ORT_TOOL, ort_perf_test)
    return drivers


def _note(text: str) -> None:
    import sys

    print(f"mobileseg: {text}", file=sys.stderr)


class AdbTarget(Target):
    """A device over ADB (contract 5). Open with :meth:`open` (``adb``, ``adb:SERIAL``, ``adb:HOST:PORT``)."""

    kind = "adb"
    _by_serial = False  # set by distinguish(): the adb serial joins the device id

    def __init__(
        self,
        device: DeviceTransport,
        cpu: int | None = None,
        harness: str = "auto",
        run_timeout: float = 1800.0,
        cooldown_poll_s: float = 2.0,
        tool_drivers: dict | None = None,
    ):
        self.device = device
        self.run_timeout = float(run_timeout)
        self.cooldown_poll_s = cooldown_poll_s
        self._desc = _probe.probe(device)
        d = self._desc
        info = dict(device.transport_info()) if hasattr(device, "transport_info") else {}
        if info:  # which transport measured it: adb-server (and where the server is) or adb-direct
            d["transport"] = info.pop("transport")
            d["serial"] = info.pop("serial", d.get("serial"))
            d["adb"] = info
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
        d["mark"] = _marks.place(device)  # read back by every cell: its files are this device's (device/marks.py)
        # Official benchmark binaries (user-supplied) replace the harness for their runtime: litert, onnxruntime.
        self.tool_drivers = dict(tool_drivers or {})
        self.driver = self._choose_driver(harness)
        d["harness"] = self.driver.name
        if self.tool_drivers:
            d["official_tools"] = {rt: drv.name for rt, drv in sorted(self.tool_drivers.items())}
        self._prepared_drivers: set = set()
        self._pushed: dict = {}

    @classmethod
    def open(
        cls,
        device_arg: str = "adb",
        cpu=None,
        harness: str = "auto",
        key_path=None,
        connect_timeout: float = 10.0,
        run_timeout: float = 1800.0,
        tflite_benchmark=None,
        ort_perf_test=None,
        adb_transport: str = "auto",
        notes=None,
        adb_servers=None,
        **_ignored,
    ) -> "AdbTarget":
        """The one device ``device_arg`` names (see :mod:`mobileseg.device.selection`), through ``adb_transport``
        (auto, server, direct); ``notes(text)`` receives what the user should know (default: printed on stderr)."""
        from ...device.selection import open_devices

        tools = official_tool_drivers(tflite_benchmark, ort_perf_test)  # a bad path fails before connecting
        devices, msgs = open_devices(
            device_arg, transport=adb_transport, connect_timeout=connect_timeout, key_path=key_path, servers=adb_servers
        )
        for m in msgs:
            (notes or _note)(m)
        if len(devices) > 1:
            for dev in devices:
                dev.close()
            from . import TargetError

            raise TargetError(
                f"--device {device_arg} names {len(devices)} devices "
                f"({', '.join(d.serial for d in devices)}): one target measures one device; mobileseg "
                "bench measures several in parallel (mobileseg.bench.fleet.run_on_devices)"
            )
        return cls.on_device(devices[0], cpu=cpu, harness=harness, run_timeout=run_timeout, tool_drivers=tools)

    @classmethod
    def on_device(cls, device: DeviceTransport, **kw) -> "AdbTarget":
        """The target on an opened transport device; the device is closed if probing it fails."""
        try:
            return cls(device, **kw)
        except BaseException:
            device.close()
            raise

    def driver_for(self, runtime: str):
        """The driver that measures ``runtime``: its official binary when one was given, else the harness."""
        return self.tool_drivers.get(runtime) or self.driver

    def _choose_driver(self, harness: str):
        want = (harness or "auto").lower()
        if want in ("python", "device-python") and not self._desc.get("python"):
            raise MobilesegError(
                "--harness python cannot run on this device because it has no python3 (stock "
                "Android has none): use --harness native (ncnn) or --harness auto"
            )
        if want in ("python", "device-python") or (want == "auto" and self._desc.get("python")):
            return PythonHarnessDriver()
        if want in ("native", "native-ncnn", "auto"):
            from ...device import native  # looked up at call time: tests swap the driver class

            return native.NativeHarnessDriver()
        raise MobilesegError(f"unknown harness '{harness}': use auto, python or native")

    # -- contract 5 -------------------------------------------------------------------------------------------
    def describe(self) -> dict:
        return dict(self._desc)

    def device_id(self) -> str:
        """``adb-[emu-]<phone model>-<short id>``: the id hashes the device's serial number (``ro.serialno``, else a
        USB serial), or for a TCP device without one its model, SoC and cores, so two phones of one model differ.
        After :meth:`distinguish` the adb serial is hashed in too (two such devices measured in one run)."""
        from ..env import short_id

        d = self._desc
        tag = "emu-" if self.emulated and "emu" not in slug(d.get("model"), "device", 48) else ""
        serial = d.get("serialno") or (d.get("serial") if ":" not in str(d.get("serial") or ":") else None)
        stable = serial or "|".join(str(d.get(k)) for k in ("model", "soc", "cores"))
        if self._by_serial:  # and the lab's server (mobileseg.device.lab): one serial may be on two hosts
            stable = f"{stable}|{d.get('serial')}"
            if (d.get("adb") or {}).get("adb_server_source", "").startswith("--"):
                stable += f"@{d['adb'].get('adb_server')}"
        return f"adb-{tag}{slug(d.get('model'), 'device', 48)}-{short_id(stable)}"

    def distinguish(self) -> None:
        """Tell this device from another one with the same id (two emulated devices) by its adb serial."""
        self._by_serial = True

    def check_runtime(self, runtime: str) -> None:
        why = self.driver_for(runtime).supports(runtime, self._desc)
        if why:
            raise MissingDependencyError(why)

    def state(self) -> dict:
        return _probe.state(self.device)

    def _remote_dir(self, export_dir) -> str:
        return posixpath.join(WORKDIR, Path(export_dir).resolve().name)

    def prepare(self, export_dir, fmt, manifest: dict | None = None) -> None:
        export_dir = Path(export_dir)
        if manifest is None:  # the loop passes the manifest it holds; other callers may not have read it
            _, manifest = _manifest.load(export_dir)
        files = _manifest.relative_files(_manifest.format_entry(manifest, fmt))
        if not files:
            raise MobilesegError(
                f"the export {export_dir} has no '{fmt}' artifact: export it first (mobileseg export --formats {fmt})"
            )
        _manifest.verify_files(str(export_dir), manifest, _manifest.format_entry(manifest, fmt), fmt)
        driver = self.driver_for(formats.host_runtime(fmt))
        local = [export_dir / p for p in files]
        if driver.needs_input:  # the official binaries generate their own input
            local.append(export_dir / _manifest.REFERENCE_INPUT)
        need = sum(p.stat().st_size for p in local if p.exists())
        free = self._desc.get("storage_free_bytes")
        if free is not None and need > free:
            raise StorageFullError(
                f"the device has {free / 1e6:.0f} MB free under {WORKDIR} but the {fmt} artifact "
                f"needs {need / 1e6:.0f} MB: free space on the device and run again"
            )
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
        entry = _manifest.format_entry(manifest, fmt) or {}
        files = _manifest.relative_files(entry)
        rdir = self._remote_dir(export_dir)
        model = formats.model_file(fmt, files) or (files[0] if files else None)
        weights = formats.side_file(fmt, files)
        return {
            "dir": rdir,
            "model": posixpath.join(rdir, model) if model else None,
            "model_file": model,
            "weights": posixpath.join(rdir, weights) if weights else None,
            "input": posixpath.join(rdir, _manifest.REFERENCE_INPUT),
            "input_name": entry.get("input_name"),
            "output_name": entry.get("output_name"),
            "tools": self._desc.get("tools") or [],
        }

    def run_cell(self, cell, export_dir, manifest, warmup, repeats, min_time, sampling=None):
        mask = self._desc.get("pin_mask") if cell.threads == 1 else self._desc.get("big_core_mask")
        driver = self.driver_for(cell.runtime)
        # --target-ci: the device harnesses apply the rule themselves; the official binaries take a fixed count
        adaptive = {"sampling": sampling} if sampling is not None and driver.adaptive_sampling else {}
        if sampling is not None and not adaptive and repeats is None:
            repeats = sampling.min_repeats
        samples, output, info = driver.run(
            self.device,
            cell,
            self._artifact(export_dir, manifest, cell.format),
            mask=mask,
            warmup=warmup,
            repeats=repeats,
            min_time=min_time,
            timeout=self.run_timeout,
            **adaptive,
        )
        got = info.get("device_mark")
        if got is None:  # a driver that does not read the mark itself: read it on the device now
            got = _marks.split(self.device.shell(_marks.readback() + "true", 60)[1])[0]
        _marks.check(self._desc.get("mark"), got, self._desc.get("serial") or "the device", f"the cell {cell.label()}")
        out_spec = (manifest.get("output") or {}).get("shape")
        if output is not None and out_spec and output.size == int(__import__("numpy").prod(out_spec)):
            output = output.reshape(out_spec)
        settings = dict(info.get("settings") or {})
        settings["device_pin_mask"] = mask
        parity = info.get("parity") or {}
        return CellRun(
            samples_ms=samples,
            output=output,
            runtime_version=info.get("runtime_version"),
            runtime_settings=settings,
            affinity=list(info.get("affinity") or []),
            harness=driver.name,
            overhead_ms=info.get("overhead_ms"),
            stats_ms=info.get("stats_ms") if output is None else None,
            parity_note=parity.get("reason") if output is None else None,
            load_ms=info.get("load_ms"),
            first_run_ms=info.get("first_run_ms"),
            memory=info.get("memory"),
            sampling=_device_sampling(info, sampling, adaptive),
        )

    def profile(self, cell, export_dir, manifest) -> dict:
        """The per-op profile of ``cell`` from its driver (the Python harness's profile_ops.py, benchmark_model's
        op profiling), in the schema of :mod:`mobileseg.bench.profile`."""
        from ..profile import read_device_profile

        driver = self.driver_for(cell.runtime)
        mask = self._desc.get("pin_mask") if cell.threads == 1 else self._desc.get("big_core_mask")
        try:
            got = driver.op_profile(
                self.device,
                cell,
                self._artifact(export_dir, manifest, cell.format),
                mask=mask,
                timeout=self.run_timeout,
            )
        except MobilesegError as exc:  # a profiler failure must not lose the measured cell
            return {"unavailable": f"the profiler failed: {exc}"}
        return {"unavailable": driver.no_profile(cell.runtime)} if got is None else read_device_profile(*got)

    def intermediates(self, export_dir, cell):
        """``(tensors, device label)``: every intermediate tensor of ``cell`` as the device computes it, through
        its driver (:mod:`mobileseg.numerics.device_capture`); one sentence where the driver cannot return them."""
        from ...numerics.device_capture import capture

        driver = self.driver_for(cell.runtime)
        export_dir, man = _manifest.load(export_dir)
        self.prepare(export_dir, cell.format, man)
        label = f"adb:{self._desc.get('serial') or self.device_id()}"
        return capture(
            self.device,
            driver,
            self._desc,
            self._artifact(export_dir, man, cell.format),
            export_dir,
            cell.runtime,
            cell.precision,
            label,
        )

    def cooldown(self, reference_state, timeout_s) -> dict:
        """Wait until the CPU zone is back within 2 C of ``reference_state`` (or ``timeout_s`` passed)."""
        ref_temps = (reference_state or {}).get("temps_c") or {}
        zone = _probe.cpu_zone(ref_temps)
        if zone is None:
            return {
                "limit_s": float(timeout_s),
                "waited_s": 0.0,
                "reached": None,
                "why": "the device reports no CPU temperature",
            }
        t0 = time.monotonic()
        deadline = t0 + float(timeout_s)
        while True:
            now = self.state().get("temps_c", {}).get(zone)
            if now is None or now <= ref_temps[zone] + 2.0 or time.monotonic() >= deadline:
                return {
                    "limit_s": float(timeout_s),
                    "waited_s": round(time.monotonic() - t0, 3),
                    "zone": zone,
                    "start_c": ref_temps[zone],
                    "end_c": now,
                    "reached": now is None or now <= ref_temps[zone] + 2.0,
                }
            time.sleep(self.cooldown_poll_s)

    def close(self) -> None:
        self.device.close()


def _device_sampling(info: dict, sampling, adaptive: dict) -> dict | None:
    """The record's ``sampling`` of a device cell: the rule plus what the device harness reported at its stop."""
    if sampling is None:
        return None
    if not adaptive:
        return {
            "rule": "repeats",
            "repeats": sampling.min_repeats,
            "note": "this harness takes a fixed count: --target-ci was not applied",
        }
    return {**sampling.record(), **(info.get("sampling") or {})}
