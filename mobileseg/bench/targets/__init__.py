"""Bench targets (contract 5): where cells are measured. ``open_target("local" | "adb" | "adb:HOST:PORT" |
"adb:SERIAL", **options)`` returns a :class:`Target`; the runner talks to nothing else.

``LocalTarget`` (this host, :mod:`.local`) runs the runtime adapters in-process; ``AdbTarget`` (:mod:`.adb`) drives
a phone or the emulated ARM device over ADB through the device layer (:mod:`mobileseg.device`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import MobilesegError, TargetLostError  # noqa: F401  (TargetLostError: re-exported)


class TargetError(MobilesegError):
    """The target cannot be opened or used as asked (bad --device, --cpu...)."""


@dataclass
class CellRun:
    """What a target returns for one measured cell."""

    samples_ms: list
    output: object  # np.ndarray: the output of the last timed call (for parity); None: timings only
    runtime_version: str | None = None
    runtime_settings: dict = field(default_factory=dict)
    affinity: list = field(default_factory=list)
    harness: str = "python-inproc"
    overhead_ms: float | None = None
    # Harnesses that give timings only (the official benchmark binaries): their own summary when they print no
    # per-iteration samples ({median, p10, p90, mean, stdev, min, max, count}, None where the tool says nothing),
    # and why parity was not checked (output=None).
    stats_ms: dict | None = None
    parity_note: str | None = None
    # Per cell (every harness): load/initialisation time, the first call after the load, peak memory with its
    # definition (mobileseg.bench.memory), and the sampling rule that stopped the loop (mobileseg.bench.sampling).
    load_ms: float | None = None
    first_run_ms: float | None = None
    memory: dict | None = None
    sampling: dict | None = None


class Target:
    """Interface of a bench target; see docs/ARCHITECTURE.md, contract 5."""

    kind: str = ""
    emulated: bool = False

    def describe(self) -> dict:  # -> record["device"]
        raise NotImplementedError

    def device_id(self) -> str:
        """Short name of the device used in cell keys and result file names (e.g. ``host-amd-epyc-3f09a1``)."""
        d = self.describe()
        return str(d.get("serial") or d.get("model") or self.kind)

    def check_runtime(self, runtime: str) -> None:
        """Raise a clear error if ``runtime`` cannot run on this target (called for every runtime before a run)."""

    def state(self) -> dict:
        return {}

    def prepare(self, export_dir, fmt, manifest: dict | None = None) -> None:
        """Make the export's ``fmt`` artifact (and its input) available where the cell runs (pushed to a device)."""

    def run_cell(self, cell, export_dir, manifest, warmup, repeats, min_time, sampling=None) -> CellRun:
        """``sampling``: a :class:`mobileseg.bench.sampling.SamplingRule` when ``--target-ci`` asks for adaptive
        sampling (passed only then, so targets written before it keep working)."""
        raise NotImplementedError

    def cooldown(self, reference_state, timeout_s) -> dict | None:
        """Wait (at most ``timeout_s``) until the device is back to ``reference_state``'s temperature; what it did
        (``{limit_s, waited_s, reached, ...}``) becomes the next record's ``cooldown``."""
        return None

    def distinguish(self) -> None:
        """Tell this target from another one of a several-device run that has the same :meth:`device_id` (two
        emulated devices): a target that can, folds something unique (its adb serial) into its id."""

    def reference_rate(self, note=None) -> dict | None:
        """This target's single-thread SGEMM rate (the reference of a record's achieved GFLOP/s, ``sgemm``), or
        None where it measures none; ``note(text)`` tells the user it is being measured."""
        return None

    def intermediates(self, export_dir, cell):
        """``(tensors, device label)`` of the cell's intermediate tensors as this target computes them, for
        per-layer parity; ``(None, "host")``: the host captures them itself (:mod:`mobileseg.numerics`)."""
        return None, "host"

    def profile(self, cell, export_dir, manifest) -> dict:
        """The per-op profile of ``cell`` (:mod:`mobileseg.bench.profile`'s schema), in its own pass after the
        timed runs; ``{"unavailable": why}`` where this target has no profiler for it."""
        return {"unavailable": f"the {self.kind or 'this'} target takes no per-op profile"}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _is_host(device_arg: str) -> bool:
    return (device_arg or "local").strip() in ("local", "host")


def check_target_options(device_arg: str, options: dict) -> None:
    """Refuse, in one sentence, a ``--device`` that names no target and the options its target cannot honour (the
    one home of these rules: :func:`open_target` and the bench settings both call it)."""
    arg = (device_arg or "local").strip()
    if not (_is_host(arg) or arg == "adb" or arg.startswith(("adb:", "adb@"))):
        raise TargetError(
            f"unknown device '{device_arg}': use --device local, adb, adb:SERIAL (a serial adb devices "
            "lists, or HOST:PORT), adb:S1,S2, adb:all or adb@SERVER[/SERIAL] (several adb servers)"
        )
    if options.get("adb_servers") and "adb@" not in arg:  # declared servers that no device names: never dropped
        raise TargetError(
            f"--adb-server declares the adb servers of a lab, which --device adb@NAME[/SERIAL] names: "
            f"--device {arg} names none (use adb@NAME, or drop --adb-server)"
        )
    if not _is_host(arg):
        return
    if (options.get("adb_transport") or "auto") != "auto":
        raise TargetError(
            f"--adb-transport {options['adb_transport']} chooses how ADB devices are reached: on the "
            "host there is none (drop it, or use --device adb)"
        )
    harness = (options.get("harness") or "auto").lower()
    if harness not in ("auto", "python", "python-inproc"):
        raise TargetError(
            f"--harness {harness} runs on ADB devices only: on the host the runtimes run in this "
            "Python process (use --harness auto, or --device adb)"
        )
    tools = [
        f
        for f, k in (("--tflite-benchmark", "tflite_benchmark"), ("--ort-perf-test", "ort_perf_test"))
        if options.get(k)
    ]
    if tools:
        raise TargetError(
            f"{' and '.join(tools)} run official binaries built for a phone: use them with "
            "--device adb (on the host the runtimes' Python packages are timed)"
        )


def open_target(device_arg: str = "local", **options) -> Target:
    """Open the target named by ``--device``: ``local``, ``adb``, ``adb:HOST:PORT`` or ``adb:SERIAL`` (one device;
    several, ``adb:S1,S2`` / ``adb:all``, run in parallel through :mod:`mobileseg.bench.fleet`)."""
    check_target_options(device_arg, options)
    arg = (device_arg or "local").strip()
    if _is_host(arg):
        from .local import LocalTarget

        for k in ("adb_transport", "adb_servers", "harness", "tflite_benchmark", "ort_perf_test"):
            options.pop(k, None)  # checked above: only their defaults reach here
        return LocalTarget(**options)
    from .adb import AdbTarget

    return AdbTarget.open(arg, **options)


__all__ = ["CellRun", "Target", "TargetError", "TargetLostError", "check_target_options", "open_target"]
