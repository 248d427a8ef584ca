"""TFLite export via litert-torch (no TensorFlow needed); fp32 weights by default, fp16 weights with ``fp16``.

The interpreter used for parity and timing is ai-edge-litert (``mobileseg.runtimes.litert``).
"""

from __future__ import annotations

import os
from collections import Counter

from ..errors import require
from ..formats import FORMATS
from ._util import require_cheap, Converted, ConverterFailure, captured_output, log_tail, package_version, workdir

CONVERTER = "litert-torch"


def converter_versions() -> dict:
    return {"litert-torch": package_version("litert-torch"), "ai-edge-litert": package_version("ai-edge-litert")}


def check_available() -> None:
    """Raise MissingDependencyError naming the extra when a package is absent (without importing it: fast)."""
    require_cheap("litert_torch", "tflite", "TFLite export")
    require_cheap("ai_edge_litert.interpreter", "tflite", "TFLite export")


def warm_up() -> None:
    """Import the converter (seconds: it pulls in jax), e.g. in a child process while the model is being built."""
    require("litert_torch", "tflite", "TFLite export")


def op_histogram(path: str) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path)
    return dict(sorted(Counter(op["op_name"] for op in interp._get_ops_details()).items()))


def _fp16_config():
    from litert_torch.generative.quantize import quant_recipes

    return quant_recipes.full_fp16_recipe()


def convert(model, example, out_dir: str, precision: str = "fp32", log=None, **_) -> Converted:
    import torch

    version = package_version("litert-torch")
    with workdir("litert") as tmp:
        log_path = os.path.join(tmp, "litert.log")
        try:
            with captured_output(log_path), torch.no_grad():
                litert_torch = require("litert_torch", "tflite", "TFLite export")
                kw = {"quant_config": _fp16_config()} if precision == "fp16" else {}
                edge = litert_torch.convert(model, (example,), **kw)
                path = os.path.join(out_dir, FORMATS["tflite"].model_file)
                edge.export(path)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise ConverterFailure(
                f"litert-torch {version} failed: {type(exc).__name__}: {first} ({log_tail(log_path, 2, 'error')})"
            ) from exc
    try:
        hist = op_histogram(path)
    except Exception as exc:  # the file does not load: a converter failure
        raise ConverterFailure(f"litert-torch {version} wrote a model ai-edge-litert cannot load: {exc}") from exc
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path)
    in_name = interp.get_input_details()[0]["name"]
    out_name = interp.get_output_details()[0]["name"]
    info = {"weights_dtype": "fp16" if precision == "fp16" else "fp32"}
    return Converted([path], in_name, out_name, hist, info)
