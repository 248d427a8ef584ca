"""``HarnessDriver``: the one base of what runs a bench cell on an ADB device (the seam below the ADB target).

A driver has ``name`` (the record's ``harness``), ``supports(runtime, description) -> None or why not``,
``prepare(device)`` (push what the driver itself needs) and ``run(device, cell, artifact, *, mask, warmup, repeats,
min_time, timeout[, sampling]) -> (samples_ms, output ndarray or None, info dict)``; the target pushes the artifact
(and, when ``needs_input``, the reference input) before ``run``. What else a driver can do is a method or an
attribute here, with the base's answer "cannot": the target asks, never checks which driver it holds.

* ``adaptive_sampling``: it applies ``--target-ci`` on the device (else it takes a fixed count);
* ``op_profile(...)``: a per-op profile pass, ``(parser, raw)`` or None (``no_profile(runtime)`` says why);
* ``intermediates``: the form of the intermediate tensors it can return for per-layer parity (``"npz"``:
  ``device_scripts/harness.py --intermediates``; ``"msgi"``: the native harness's file), None where it cannot;
* ``needs_input``: whether it reads the pushed reference input (the official binaries make their own).

The drivers: :class:`mobileseg.device.python_harness.PythonHarnessDriver`,
:class:`mobileseg.device.native.NativeHarnessDriver`, :class:`mobileseg.device.official_tools.OfficialToolDriver`.
``device`` is a :class:`mobileseg.device.transport.DeviceTransport`; ``cell`` anything with ``runtime``,
``threads``, ``precision`` and ``label()``.
"""

from __future__ import annotations


class HarnessDriver:
    """The base of the device harness drivers (see the module doc); every capability answers "cannot" here."""

    name = ""
    needs_input = True
    adaptive_sampling = False
    intermediates: str | None = None

    def supports(self, runtime: str, description: dict) -> str | None:
        """None when this driver can run ``runtime`` on the device ``description`` describes, else why not."""
        return None

    def prepare(self, device) -> None:
        """Push what the driver itself needs (once per run; the target remembers)."""

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
        raise NotImplementedError

    def op_profile(self, device, cell, artifact: dict, *, mask: str | None, timeout: float = 3600.0, runs: int = 10):
        """``(parser, raw)`` of a per-op profile pass (``parser``: ``"profile_ops"`` or ``"benchmark_model"``, the
        reader in :mod:`mobileseg.bench.profile`), or None where this driver has no profiler for the cell."""
        return None

    def no_profile(self, runtime: str) -> str:
        """Why :meth:`op_profile` gave nothing for ``runtime`` (the record's ``profile.unavailable``)."""
        return (
            f"the {self.name} harness takes no per-op profile of {runtime}: on a device, per-op profiles come "
            "from the device Python harness (onnxruntime, ncnn) or benchmark_model (--tflite-benchmark)"
        )
