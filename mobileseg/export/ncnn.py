"""ncnn export via pnnx: TorchScript trace -> pnnx -> ``model.ncnn.param`` + ``model.ncnn.bin``.

pnnx writes many side files (.pt, pnnx.param/bin, python and onnx dumps): it works in a temporary folder and only
the ncnn pair is kept. pnnx defaults to fp16 weights: ``fp16=False`` for fp32 (docs/converters.md). Layer types
that ncnn cannot run (pnnx leaves them as ``pnnx.*``/``torch.*``/``F.*`` layers) are reported as a converter failure
naming the op, instead of an artifact that will not load.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter

from ..errors import require
from ..formats import FORMATS
from ..runtimes.ncnn_param import Layer, read_layers, read_param  # noqa: F401  (quantize_ncnn reads them here)
from ._util import require_cheap, Converted, ConverterFailure, captured_output, log_tail, package_version, workdir

CONVERTER = "pnnx"


def converter_versions() -> dict:
    return {"pnnx": package_version("pnnx"), "ncnn": package_version("ncnn")}


def check_available() -> None:
    """Raise MissingDependencyError naming the extra when a package is absent (without importing it: fast)."""
    require_cheap("pnnx", "ncnn", "ncnn export")
    require_cheap("ncnn", "ncnn", "ncnn export")


def convert(model, example, out_dir: str, precision: str = "fp32", log=None, **_) -> Converted:
    import torch

    pnnx = require("pnnx", "ncnn", "ncnn export")
    version = package_version("pnnx")
    fp16 = precision == "fp16"
    with workdir("pnnx") as tmp:
        log_path = os.path.join(tmp, "pnnx.log")
        cwd = os.getcwd()
        paths = {k: os.path.join(tmp, f"model.{k.replace('ncnn', 'ncnn.')}") for k in ("ncnnparam", "ncnnbin")}
        failure = None
        try:
            os.chdir(tmp)
            with captured_output(log_path), torch.no_grad():
                pnnx.export(
                    model,
                    os.path.join(tmp, "model.pt"),
                    (example,),
                    fp16=fp16,
                    ncnnparam=paths["ncnnparam"],
                    ncnnbin=paths["ncnnbin"],
                    ncnnpy=os.path.join(tmp, "model_ncnn.py"),
                )
        except Exception as exc:
            # pnnx writes the ncnn pair, then imports a Python dump of the graph named after the module's children:
            # an nn.Sequential at the top (children "0", "1"...) makes that dump a SyntaxError while the pair is
            # complete (and parity-checked like any other)
            dump = isinstance(exc, SyntaxError) and str(getattr(exc, "filename", "")).endswith("_pnnx.py")
            if not (dump and all(os.path.isfile(p) for p in paths.values())):
                failure = exc
        finally:
            os.chdir(cwd)
        if failure is not None:
            raise ConverterFailure(
                f"pnnx {version} failed: {type(failure).__name__}: "
                f"{str(failure).splitlines()[0][:200]} (log: {log_tail(log_path, 3)})"
            ) from failure
        if not (os.path.isfile(paths["ncnnparam"]) and os.path.isfile(paths["ncnnbin"])):
            raise ConverterFailure(f"pnnx {version} wrote no ncnn model ({log_tail(log_path, 4, 'error')})")
        layers = read_param(paths["ncnnparam"])
        hist = dict(sorted(Counter(t for t, *_ in layers).items()))
        foreign = {t: c for t, c in hist.items() if "." in t}
        if foreign:
            ops = ", ".join(f"{t} x{c}" for t, c in foreign.items())
            raise ConverterFailure(
                f"pnnx {version} left layers ncnn cannot run: {ops} (no ncnn equivalent for "
                f"these ops at this pnnx version)"
            )
        inputs = [n for t, n, _, outs in layers if t == "Input" for n in outs]
        consumed = {b for _, _, ins, _ in layers for b in ins}
        outputs = [b for _, _, _, outs in layers for b in outs if b not in consumed]
        dst_param, dst_bin = (os.path.join(out_dir, name) for name in FORMATS["ncnn"].files)
        shutil.move(paths["ncnnparam"], dst_param)
        shutil.move(paths["ncnnbin"], dst_bin)
    info = {"weights_dtype": "fp16" if fp16 else "fp32", "pnnx_fp16": fp16, "layers": len(layers)}
    return Converted(
        [dst_param, dst_bin], inputs[0] if inputs else "in0", outputs[-1] if outputs else "out0", hist, info
    )
