"""int8 export: the calibration, the per-format quantizer, and what the manifest records about them.

:func:`int8_job` is called by ``export_model`` for ``precision="int8"``: it refuses formats that cannot be
quantized here (one sentence), reads the calibration set (:mod:`.calibration`) and returns an :class:`Int8Job`
whose ``convert`` dispatches to ``quantize_<format>``. The manifest gets a top-level ``int8`` entry (calibration
source, image count, sha256, layers kept in float); each format entry's ``info.int8`` holds that format's scheme,
calibration method and the ops left in float.

Parity of int8 artifacts is judged on a procedural image (:func:`Int8Job.parity_input`, never one of the
calibration images) against the fp32 PyTorch output: the uniform-noise input of fp32 exports lies outside every
range a real calibration records, so it would measure the noise, not the quantization.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import formats as _formats
from . import calibration as _calibration

PARITY_SEED = 99  # the procedural image parity is judged on (synthetic calibration uses another seed)


def int8_formats() -> tuple[str, ...]:
    return tuple(f for f, row in _formats.FORMATS.items() if "int8" in row.precisions)


# what an int8 export may also write unquantized: the BN-folded fp32 module its int8 artifacts are judged against
# (``mobileseg parity --per-layer`` compares their layers with it)
REFERENCE_FORMAT = "torch"


def artifact_precision(fmt: str, precision: str) -> str:
    """The precision the ``fmt`` artifact of a ``precision`` export is written in (the reference stays fp32)."""
    return "fp32" if precision == "int8" and fmt == REFERENCE_FORMAT else precision


@dataclass
class Int8Job:
    spec: object
    resolution: tuple
    calibration: object
    keep_float: list = field(default_factory=list)

    def cache_fields(self) -> dict:
        return {"calibration_sha256": self.calibration.sha256, "keep_float": list(self.keep_float)}

    def manifest_entry(self) -> dict:
        return {
            "calibration": self.calibration.record(),
            "keep_float": list(self.keep_float),
            "parity_input": f"procedural image (mobileseg.export.synthetic, seed {PARITY_SEED}), not a "
            "calibration image; reference = the fp32 PyTorch output",
        }

    def parity_input(self) -> np.ndarray:
        from . import synthetic

        h, w = self.resolution
        img = synthetic.sample(np.random.default_rng(PARITY_SEED), max(h, w))[0]
        return _calibration.preprocess(img, (h, w), self.spec.mean, self.spec.std)[None]

    def convert(self, fmt: str, module, example, out_dir: str, output_name: str, say):
        from importlib import import_module

        mod = import_module(f"{__package__}.quantize_{fmt}")
        say(f"{fmt}: int8 with {mod.CONVERTER}, calibrated on {self.calibration.source} ...")
        return mod.convert(
            module,
            example,
            out_dir,
            self.calibration,
            keep_float=self.keep_float,
            input_name="input",
            output_name=output_name,
            log=say,
        )


def save_host_output(out_dir: str, fmt: str, out, runtime: str) -> dict:
    """Keep the host runtime's int8 output for the parity input: devices' int8 outputs are compared with it."""
    import os

    rel = f"reference/int8-{fmt}-host-output.npy"
    np.save(os.path.join(out_dir, rel), np.asarray(out))
    return {"path": rel, "runtime": runtime}


def int8_job(job, calib=None, calib_count=None, keep_float=None) -> Int8Job | None:
    """The :class:`Int8Job` of an export (None unless ``job.precision`` is int8); user errors in one sentence."""
    from ._util import ExportError

    keep = [k for k in (keep_float.split(",") if isinstance(keep_float, str) else (keep_float or [])) if k.strip()]
    if job.precision != "int8":
        if calib is not None or calib_count is not None or keep:
            raise ExportError("--calib, --calib-count and --int8-keep-float apply to --precision int8 only")
        return None
    bad = [f for f in job.formats if f not in int8_formats() and f != REFERENCE_FORMAT]
    if bad:
        raise ExportError(
            f"int8 is not available for {', '.join(bad)} (its converter cannot quantize): use "
            f"--formats {','.join(int8_formats())} (and {REFERENCE_FORMAT} for the fp32 reference)"
        )
    _calibration.check_folder(calib)
    cal = _calibration.load(calib, job.resolution, job.spec.mean, job.spec.std, calib_count)
    job.say(f"int8: calibration set {cal.source} (sha256 {cal.sha256[:12]})")
    return Int8Job(job.spec, job.resolution, cal, keep)
