"""``per_layer``: capture both sides, match them, and build the report (the one entry point of this package)."""

from __future__ import annotations

import os

import numpy as np

from .. import manifest as _manifest
from ..formats import FORMATS, RUNTIMES, host_runtime
from ..parity import layer_min_rms, layer_rel_l2_limit
from . import layer_report as _report
from .match import match
from .torch_capture import capture as torch_capture
from .torch_capture import load_module


def per_layer(
    export_dir: str,
    fmt: str,
    precision: str | None = None,
    runtime: str | None = None,
    tensors=None,
    device: str = "host",
) -> dict:
    """The per-layer report of the ``fmt`` artifact in ``export_dir`` (see :mod:`mobileseg.numerics`).

    ``tensors``: runtime tensors captured elsewhere (an ADB device); by default they are captured here with the
    format's host runtime (or ``runtime``).
    """
    export_dir, man = _manifest.load(export_dir)
    runtime = runtime or host_runtime(fmt)
    precision = precision or man.get("precision") or "fp32"
    res = "x".join(map(str, man.get("resolution") or [])) or "HxW"
    module = load_module(
        export_dir,
        f"mobileseg export --model {man.get('model')} --res {res} "
        f"--precision {man.get('precision') or 'fp32'} --formats torch,{fmt} "
        f"--out {export_dir}",
    )
    ref_input = os.path.join(export_dir, _manifest.REFERENCE_INPUT)
    if not os.path.isfile(ref_input):
        raise _manifest.ArtifactError(
            f"{export_dir} has no {_manifest.REFERENCE_INPUT} (the input the layers are "
            "compared on): re-run `mobileseg export --force` for this folder"
        )
    x = np.load(ref_input)
    cap = torch_capture(module, x)
    if tensors is None:
        from .runtime_capture import capture as runtime_capture

        tensors = runtime_capture(runtime, export_dir, x, precision)
    result = match(cap, tensors, runtime)
    limit = layer_rel_l2_limit(precision, runtime)
    return _report.build(
        cap,
        tensors,
        result,
        limit,
        min_rms=layer_min_rms(precision),
        meta={
            "model": man.get("model"),
            "resolution": man.get("resolution"),
            "export_dir": export_dir,
            "format": fmt,
            "runtime": runtime,
            "precision": precision,
            "export_precision": man.get("precision"),
            "graph": man.get("graph"),
            "device": device,
            "converter": ((man.get("formats") or {}).get(fmt) or {}).get("converter"),
        },
    )


def formats_with_capture() -> tuple[str, ...]:
    """Formats whose host runtime can return intermediates."""
    return tuple(f for f in FORMATS if f != "torch" and RUNTIMES[host_runtime(f)].format == f)
