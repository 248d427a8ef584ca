"""ExecuTorch export (``model.pte``): ``torch.export`` -> ``to_edge_transform_and_lower`` with the XNNPACK
partitioner -> ``to_executorch``; run by the ExecuTorch Python runtime (``mobileseg.runtimes.executorch``).

ExecuTorch is PyTorch's own on-device runtime: no second graph format to translate into, the same ATen ops lowered
to XNNPACK kernels (what its Android and iOS apps run). fp32 keeps the module as it is; fp16 converts the module and
the example to half before export, so the program's input and output are fp16 and XNNPACK runs fp16 kernels (the
adapter casts the float32 input and the output). Ops XNNPACK does not take stay on ExecuTorch's portable CPU
kernels: the op histogram counts ``executorch_call_delegate`` (XNNPACK subgraphs) and every op left outside them.
Facts and measurements: docs/converters.md, "ExecuTorch".
"""

from __future__ import annotations

import os
from collections import Counter

from ..errors import require
from ..formats import FORMATS
from ._util import Converted, ConverterFailure, captured_output, log_tail, package_version, require_cheap, workdir

CONVERTER = "executorch"


def converter_versions() -> dict:
    return {"executorch": package_version("executorch")}


def check_available() -> None:
    require_cheap("executorch", "executorch", "ExecuTorch export")


def warm_up() -> None:
    require("executorch.exir", "executorch", "ExecuTorch export")


def _histogram(edge) -> dict:
    nodes = edge.exported_program().graph.nodes
    names = []
    for n in nodes:
        if n.op != "call_function":
            continue
        t = n.target
        name = getattr(t, "__name__", None) or str(t)
        names.append(name.replace("aten.", "").split(".")[0] if "aten" in str(t) else name)
    return dict(sorted(Counter(names).items()))


def convert(
    model,
    example,
    out_dir: str,
    precision: str = "fp32",
    input_name: str = "input",
    output_name: str = "logits",
    log=None,
) -> Converted:
    import copy

    import torch

    require("executorch.exir", "executorch", "ExecuTorch export")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    version = package_version("executorch")
    module, x = model.eval(), example
    if precision == "fp16":
        module, x = copy.deepcopy(module).half().eval(), example.half()
    path = os.path.join(out_dir, FORMATS["executorch"].model_file)
    with workdir("executorch") as tmp:
        log_path = os.path.join(tmp, "executorch.log")
        try:
            with captured_output(log_path), torch.no_grad():
                exported = torch.export.export(module, (x,))
                edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
                hist = _histogram(edge)
                program = edge.to_executorch()
        except Exception as exc:
            raise ConverterFailure(
                f"executorch {version} failed: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''} "
                f"(log: {log_tail(log_path, 3)})"
            ) from exc
    with open(path, "wb") as f:
        f.write(program.buffer)
    outside = {k: v for k, v in hist.items() if k not in ("executorch_call_delegate", "getitem")}
    info = {
        "weights_dtype": precision,
        "backend": "XNNPACK (XnnpackPartitioner)",
        "delegates": hist.get("executorch_call_delegate", 0),
        "ops_outside_delegates": outside,
        "program_dtype": "float16" if precision == "fp16" else "float32",
    }
    return Converted([path], input_name, output_name, hist, info)
