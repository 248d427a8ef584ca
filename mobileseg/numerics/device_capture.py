"""Per-layer capture on an ADB device: the device harness runs the artifact once and returns every intermediate
tensor, pulled back as one file.

* Python harness (``device_scripts/harness.py --intermediates FILE.npz``): ncnn, onnxruntime, LiteRT. For ONNX the
  host adds every node output as a graph output and pushes that model (the device needs no ``onnx`` package).
* Native ncnn harness (``harness --intermediates FILE``): every blob in one binary file (``MSGI1``: per tensor its
  name, layer type, dims and float32 data), read by :func:`read_native`.
* The official binaries (benchmark_model, onnxruntime_perf_test) time only: one sentence says so.

The ADB target calls :func:`capture` with its transport, the cell's driver and the artifact's paths on the device
(``AdbTarget.intermediates``), so this module needs nothing from the bench layer above it.
"""

from __future__ import annotations

import json
import os
import posixpath
import shlex
import struct
import tempfile
from pathlib import Path

import numpy as np

from ..errors import MobilesegError
from ..device import marks
from .runtime_capture import RuntimeTensor, all_outputs_model, from_npz

ONNX_ALL_OUTPUTS = "model.all_outputs.onnx"


class NoIntermediatesError(MobilesegError):
    """The device (its harness or runtime) cannot return intermediate tensors."""


def capture(
    dev,
    driver,
    description: dict,
    art: dict,
    export_dir: str,
    runtime: str,
    precision: str,
    label: str,
    timeout: float = 3600.0,
):
    """``(tensors, label)``: every intermediate tensor of one artifact run once on the device ``dev`` by
    ``driver`` (the ADB target has pushed ``art``, its paths there); one sentence where the driver cannot."""
    kind = driver.intermediates
    if kind is None:
        raise NoIntermediatesError(
            f"the {driver.name} binary times only and cannot return intermediate tensors: "
            "per-layer analysis needs the Python harness (--harness python) or, for ncnn, "
            "the native harness"
        )
    why = driver.supports(runtime, description)
    if why:
        raise NoIntermediatesError(f"this device cannot return {runtime} intermediate tensors: {why}")
    rdir = art["dir"]
    with tempfile.TemporaryDirectory(prefix="mobileseg-numerics-") as tmp:
        order = None
        model = art["model"]
        if runtime == "onnxruntime":
            import onnx

            m, order = all_outputs_model(os.path.join(export_dir, art["model_file"]))
            local = os.path.join(tmp, ONNX_ALL_OUTPUTS)
            onnx.save(m, local)
            model = posixpath.join(rdir, ONNX_ALL_OUTPUTS)
            dev.push(local, model)
        token = marks.run_token()  # this run's own files, even on storage another device shares
        status = posixpath.join(rdir, f"intermediates_{runtime}_{token}.json")
        if kind == "npz":
            out = posixpath.join(rdir, f"intermediates_{runtime}_{token}.npz")
            args = [
                "--runtime",
                runtime,
                "--model",
                model,
                "--input",
                art["input"],
                "--output",
                posixpath.join(rdir, f"intermediates_out_{token}.npy"),
                "--timings",
                status,
                "--threads",
                "1",
                "--precision",
                precision,
                "--intermediates",
                out,
            ]
            if art.get("weights"):
                args += ["--weights", art["weights"]]
            cmd = f"{driver.python} {shlex.quote(driver.remote)} {' '.join(shlex.quote(a) for a in args)}"
        else:
            out = posixpath.join(rdir, f"intermediates_ncnn_{token}.bin")
            q = shlex.quote
            binary = driver.harness.prepare(dev)  # pushed once (sha256-checked); its path on the device
            cmd = (
                f"{q(binary)} --param {q(model)} --bin {q(art['weights'])} --input "
                f"{q(art['input'])} --input-name {q(art.get('input_name') or 'in0')} "
                f"--fp16 {int(precision == 'fp16')} --threads 1 --timings {q(status)} --intermediates {q(out)}"
            )
        rc, log = dev.shell(f"cd {shlex.quote(rdir)} && {cmd}", timeout)
        info = {}
        try:
            try:
                info = json.loads(dev.pull(status, Path(tmp) / "status.json").read_text())
            except (OSError, ValueError, MobilesegError):
                pass
            if rc != 0 or not info.get("ok"):
                why = info.get("error") or " ".join(str(log).strip().splitlines()[-2:])[:300] or f"exit {rc}"
                raise NoIntermediatesError(
                    f"the device harness could not return the {runtime} intermediate tensors ({why})"
                )
            local = dev.pull(out, Path(tmp) / os.path.basename(out))
        finally:
            marks.remove(dev, out, status, posixpath.join(rdir, f"intermediates_out_{token}.npy"))
        tensors = from_npz(str(local), runtime, order) if kind == "npz" else read_native(str(local))
    return tensors, label


MAGIC = b"MSGI1\n"


def read_native(path: str) -> list[RuntimeTensor]:
    """The native harness's file: ``MSGI1\\n``, then per tensor: u32 name length, name, u32 type length, type,
    u32 dims, dims x u32 (ncnn's c, h, w order), float32 data."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise NoIntermediatesError(f"{path} is not a native-harness intermediates file")
    pos, out = len(MAGIC), []

    def u32():
        nonlocal pos
        (v,) = struct.unpack_from("<I", data, pos)
        pos += 4
        return v

    def text():
        nonlocal pos
        n = u32()
        pos += n
        return data[pos - n : pos].decode()

    while pos < len(data):
        name, op = text(), text()
        dims = [u32() for _ in range(u32())]
        count = int(np.prod(dims)) if dims else 0
        value = np.frombuffer(data, dtype="<f4", count=count, offset=pos).reshape(dims).copy()
        pos += 4 * count
        out.append(RuntimeTensor(len(out), name, op, value))
    return out
