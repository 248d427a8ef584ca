"""Run one format's conversion in a child process (``python -m mobileseg.export._worker JOB_DIR FORMAT``).

``export_model`` uses it to convert to TFLite (the slowest converter, single-threaded) while ONNX and ncnn convert in
the parent: on a 2-core host the two run side by side. The child starts before the model is built and imports the
converter meanwhile (litert-torch takes seconds). The job folder holds ``job.json`` (format, output folder,
precision, names), ``model.pt`` (the exact nn.Module, pickled) and ``input.npy``; the child writes ``result.json``:
the :class:`~mobileseg.export._util.Converted` fields, or ``{"error": ...}`` for a converter failure.
"""
from __future__ import annotations

import json
import os
import sys


def run_job(job_dir: str, fmt: str, wait_s: float = 600.0) -> dict:
    """Import what ``fmt`` needs first (while the parent builds the model), then wait for ``job.json``."""
    import time
    from importlib import import_module

    import numpy as np
    import torch

    from ._util import ConverterFailure

    torch.set_num_threads(1)
    mod = import_module(f"mobileseg.export.{fmt}")
    if hasattr(mod, "warm_up"):
        mod.warm_up()
    parent = os.getppid()
    deadline = time.monotonic() + wait_s
    job_path = os.path.join(job_dir, "job.json")
    while not os.path.isfile(job_path):  # written last, by rename, once model.pt and input.npy are in place
        if os.path.isfile(os.path.join(job_dir, "cancel")) or os.getppid() != parent or time.monotonic() > deadline:
            return {"error": "cancelled before the job arrived"}
        time.sleep(0.05)
    with open(job_path) as f:
        job = json.load(f)
    model = torch.load(os.path.join(job_dir, "model.pt"), weights_only=False).eval()
    x = torch.from_numpy(np.load(os.path.join(job_dir, "input.npy")))
    try:
        conv = mod.convert(model, x, job["out_dir"], precision=job["precision"], input_name=job["input_name"],
                           output_name=job["output_name"])
    except ConverterFailure as exc:
        return {"error": str(exc)}
    return {"files": conv.files, "input_name": conv.input_name, "output_name": conv.output_name,
            "op_histogram": conv.op_histogram, "info": conv.info}


def main(argv=None) -> int:
    job_dir, fmt = (argv or sys.argv[1:])[:2]
    result = run_job(job_dir, fmt)
    tmp = os.path.join(job_dir, "result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, os.path.join(job_dir, "result.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
