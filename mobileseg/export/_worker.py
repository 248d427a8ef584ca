"""Run one format's conversion in a child process (``python -m mobileseg.export._worker JOB_DIR FORMAT``).

``export_model`` uses it to convert to TFLite (the slowest converter, single-threaded) while ONNX and ncnn convert in
the parent: on a 2-core host the two run side by side. The child starts before the model is built and imports the
converter meanwhile (litert-torch takes seconds). The job folder holds ``job.json`` (format, output folder,
precision, names), ``model.pt`` (the exact nn.Module, pickled) and ``input.npy``; the child writes ``result.json``:
the :class:`~mobileseg.export._util.Converted` fields, or ``{"error": ...}`` for a converter failure.
:class:`Worker` is the parent's side (spawn, submit, result, stop); :func:`run_job` the child's.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


class Worker:
    """A conversion in a child process (see :mod:`mobileseg.export._worker`): ``spawn``, ``submit``, ``result``."""

    def __init__(self, fmt, proc, job, log):
        self.fmt, self.proc, self.job, self.log, self.started = fmt, proc, job, log, None

    @classmethod
    def spawn(cls, fmt, say):
        import subprocess
        import sys
        import tempfile

        job = tempfile.TemporaryDirectory(prefix=f"mobileseg-{fmt}-job-")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        # the child's output goes to a file: a pipe nobody reads until the end could fill up and stall the child
        log = open(os.path.join(job.name, "worker.log"), "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mobileseg.export._worker", job.name, fmt],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        say(f"{fmt}: a child process (pid {proc.pid}) will convert it alongside the other formats")
        return cls(fmt, proc, job, log)

    def submit(self, module, x, out_dir, precision, out_name, say) -> bool:
        """Hand the model over; False (and the child stopped) when it cannot be, so the caller converts in-process."""
        import torch

        reason = None
        if any(type(m).__module__ == "__main__" for m in module.modules()):
            reason = "the model's classes live in __main__, a child cannot import them"
        else:
            try:
                torch.save(module, os.path.join(self.job.name, "model.pt"))
            except Exception as exc:
                reason = f"{type(exc).__name__} handing the model to a child process"
        if reason:
            say(f"{self.fmt}: converting in this process ({reason})")
            self.stop()
            return False
        np.save(os.path.join(self.job.name, "input.npy"), x)
        tmp = os.path.join(self.job.name, "job.json.tmp")
        with open(tmp, "w") as f:
            json.dump(
                {
                    "format": self.fmt,
                    "out_dir": out_dir,
                    "precision": precision,
                    "input_name": "input",
                    "output_name": out_name,
                    "sys_path": list(sys.path),
                },
                f,
            )
        from ._util import remove_stale_files

        remove_stale_files(out_dir, self.fmt)
        os.replace(tmp, os.path.join(self.job.name, "job.json"))
        self.started = time.perf_counter()
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                open(os.path.join(self.job.name, "cancel"), "w").close()
                self.proc.wait(timeout=2)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.job.cleanup()

    def result(self):
        from ._util import Converted, ConverterFailure

        try:
            self.proc.wait()
            self.log.close()
            path = os.path.join(self.job.name, "result.json")
            if self.proc.returncode != 0 or not os.path.isfile(path):
                with open(self.log.name, errors="replace") as f:
                    tail = " | ".join(ln.strip() for ln in f.read().splitlines() if ln.strip())[-300:]
                raise ConverterFailure(
                    f"the {self.fmt} conversion process exited with code {self.proc.returncode} ({tail})"
                )
            with open(path) as f:
                res = json.load(f)
        finally:
            self.job.cleanup()
        if "error" in res:
            raise ConverterFailure(res["error"])
        return Converted(res["files"], res["input_name"], res["output_name"], res["op_histogram"], res["info"])


def run_job(job_dir: str, fmt: str, wait_s: float = 600.0) -> dict:
    """Import what ``fmt`` needs first (while the parent builds the model), then wait for ``job.json``."""
    import time
    from importlib import import_module

    import numpy as np
    import torch

    from ._util import ConverterFailure

    torch.set_num_threads(1)
    from ..formats import FORMATS

    mod = import_module(f"mobileseg.export.{FORMATS[fmt].converter}")
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
    # the parent's import path: a user's module (export --model pkg.mod:fn) imports here as it did there
    sys.path.extend(p for p in job.get("sys_path") or [] if p not in sys.path)
    model = torch.load(os.path.join(job_dir, "model.pt"), weights_only=False).eval()
    x = torch.from_numpy(np.load(os.path.join(job_dir, "input.npy")))
    try:
        conv = mod.convert(
            model,
            x,
            job["out_dir"],
            precision=job["precision"],
            input_name=job["input_name"],
            output_name=job["output_name"],
        )
    except ConverterFailure as exc:
        return {"error": str(exc)}
    return {
        "files": conv.files,
        "input_name": conv.input_name,
        "output_name": conv.output_name,
        "op_histogram": conv.op_histogram,
        "info": conv.info,
    }


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
