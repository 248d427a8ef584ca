"""Runtime side: every intermediate tensor of an artifact, run by its own runtime on the reference input.

The capture is the runtime adapter's ``intermediates`` (:mod:`mobileseg.runtimes`; the base class refuses for a
runtime without one); this module checks the artifact is there and reads what a device harness saved.

Each tensor carries the runtime's name for it and the op type, values as the runtime holds them (LiteRT keeps
NHWC); :mod:`.match` aligns layouts.
"""

from __future__ import annotations

import os

import numpy as np

from .. import formats
from ..formats import FORMATS, RUNTIMES
from ..runtimes import get_runtime
from ..runtimes.capture import RuntimeTensor
from ..runtimes.onnxruntime import all_outputs_model  # noqa: F401  (device_capture pushes its order to devices)


def capture(runtime: str, export_dir: str, x: np.ndarray, precision: str = "fp32") -> list[RuntimeTensor]:
    fmt = RUNTIMES[runtime].format
    files = [os.path.join(export_dir, f) for f in FORMATS[fmt].files]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        from ..manifest import ArtifactError

        raise ArtifactError(
            f"{export_dir} has no {fmt} artifact ({os.path.basename(missing[0])} is missing): "
            f"export it with `mobileseg export ... --formats torch,{fmt}`"
        )
    from .. import manifest as _manifest

    if os.path.isfile(os.path.join(export_dir, _manifest.FILE)):  # a damaged file: one sentence, not a traceback
        _manifest.artifact_paths(export_dir, None, fmt)
    return get_runtime(runtime).intermediates(files, x, precision)


def from_npz(path: str, runtime: str, order=None) -> list[RuntimeTensor]:
    """The tensors a device harness saved (``--intermediates``); ``order``: the ONNX output -> node names."""
    with np.load(path, allow_pickle=False) as z:
        names = [str(n) for n in z["__names__"]]
        ops = [str(o) for o in z["__ops__"]]
        values = [z[f"t{i:04d}"] for i in range(len(names))]
    layout = formats.layout(runtime)
    if runtime == "onnxruntime" and order:
        got = dict(zip(names, values))
        return [RuntimeTensor(i, n, op, np.asarray(got[out])) for i, (out, n, op) in enumerate(order) if out in got]
    return [RuntimeTensor(i, n, op, v, layout) for i, (n, op, v) in enumerate(zip(names, ops, values))]
