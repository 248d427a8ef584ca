"""Model files written by other tools (never by mobileseg): torch.onnx.export, litert_torch.convert and pnnx called
directly on a small seeded module, for the --artifact tests (host and emulated device)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SIZE = 32  # input H = W


def tiny_net(nhwc: bool = False):
    """A seeded 3-channel conv net with 5 output classes at 1/2 resolution (NHWC input when ``nhwc``)."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 5, 1))

        def forward(self, x):
            if nhwc:
                x = x.permute(0, 3, 1, 2)
            return self.body(x)

    torch.manual_seed(0)
    return Tiny().eval()


def example(nhwc: bool = False):
    import torch

    shape = (1, SIZE, SIZE, 3) if nhwc else (1, 3, SIZE, SIZE)
    return torch.from_numpy(np.random.default_rng(1).standard_normal(shape).astype(np.float32))


def write_onnx(folder, name="tiny.onnx", dynamic=False) -> Path:
    import torch

    path = Path(folder) / name
    kw = {"dynamic_axes": {"img": {2: "h", 3: "w"}}} if dynamic else {}
    torch.onnx.export(
        tiny_net(),
        (example(),),
        str(path),
        input_names=["img"],
        output_names=["out"],
        dynamo=False,
        opset_version=17,
        **kw,
    )
    return path


def write_tflite(folder, name="tiny.tflite", nhwc=False) -> Path:
    import litert_torch

    path = Path(folder) / name
    litert_torch.convert(tiny_net(nhwc), (example(nhwc),)).export(str(path))
    return path


def write_ncnn(folder, stem="tiny") -> Path:
    import pnnx

    folder = Path(folder).resolve()
    work = folder / "pnnx-work"
    work.mkdir(exist_ok=True)
    cwd = os.getcwd()
    try:  # pnnx writes its side files beside the .pt
        os.chdir(work)
        pnnx.export(
            tiny_net(),
            str(work / f"{stem}.pt"),
            (example(),),
            fp16=False,
            ncnnparam=str(folder / f"{stem}.ncnn.param"),
            ncnnbin=str(folder / f"{stem}.ncnn.bin"),
        )
    finally:
        os.chdir(cwd)
    return folder / f"{stem}.ncnn.param"


def write_custom_op_onnx(folder, name="custom.onnx") -> Path:
    """An ONNX graph with a node of a custom domain ('my.ops::Sparkle') that onnxruntime does not implement."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, SIZE, SIZE])
    node = helper.make_node("Sparkle", ["x"], ["y"], domain="my.ops")
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.ops", 1)],
    )
    path = Path(folder) / name
    onnx.save(model, str(path))
    return path


def torch_output(nhwc: bool, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return tiny_net(nhwc)(torch.from_numpy(x)).numpy()


def write_custom_op_tflite(tflite_path, name="custom.tflite") -> Path:
    """A copy of a litert_torch-written ``.tflite`` whose first operator code is made the custom op 'Sparkle'
    (LiteRT: "Encountered unresolved custom op: Sparkle")."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(Path(tflite_path).read_bytes(), 0))
    code = model.operatorCodes[0]
    code.builtinCode = code.deprecatedBuiltinCode = 32  # BuiltinOperator.CUSTOM
    code.customCode = "Sparkle"
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    path = Path(tflite_path).parent / name
    path.write_bytes(b.Output())
    return path
