"""Reading model files other tools wrote: what a ``.onnx``, ``.tflite``, ``.ncnn.param`` (+ ``.bin``) or ``.pte``
says about its input (name, shape, dtype, layout), output and ops, and which of its ops the runtime lacks. Used by
:mod:`mobileseg.bench.artifact`, which stages the file for the bench."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import formats
from ..errors import MobilesegError

# The suffix of a file given with --artifact -> its format (the table's user_suffixes; the longest match wins).
SUFFIXES = formats.user_suffixes()
ONNX_STANDARD_DOMAINS = ("", "ai.onnx")  # ops of any other domain (com.microsoft, ai.onnx.ml, ...): onnxruntime judges


class ArtifactError(MobilesegError):
    """A file given with --artifact / --input / --reference cannot be used (missing, unreadable, not a model...)."""


@dataclass
class ArtifactInfo:
    """What a model file says about itself."""

    path: Path
    format: str
    files: list  # [model file, side file (ncnn .bin)]
    input_name: str | None
    input_shape: list  # ints, or None for a dynamic dimension (filled by --input-shape)
    input_dtype: str
    output_name: str | None = None
    output_shape: list | None = None
    ops: dict = field(default_factory=dict)  # op type -> count
    custom_ops: list = field(default_factory=list)  # custom ops the runtime cannot resolve (it was asked)
    notes: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def layout(self) -> str:
        return guess_layout(self.input_shape, self.format)


def format_of(path) -> str | None:
    name = Path(path).name.lower()
    for suffix, fmt in SUFFIXES:
        if name.endswith("." + suffix):
            return fmt
    return None


def check_file(path, what: str) -> Path:
    """``path`` as a readable file, or one sentence saying what is wrong with it."""
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise ArtifactError(f"{what} '{p}' does not exist; check the path")
    if p.is_dir():
        raise ArtifactError(f"{what} '{p}' is a folder, not a file; give the file itself")
    if not os.access(p, os.R_OK):
        raise ArtifactError(f"{what} '{p}' cannot be read (permission denied); make it readable")
    return p


def guess_layout(shape, fmt: str) -> str:
    """``NCHW`` or ``NHWC`` for a 4-D image input, from where its channel dimension (1..4) sits; ties go to the
    format's own convention (TFLite NHWC, the others NCHW)."""
    if not shape or len(shape) != 4:
        return "NCHW"
    c_first, c_last = shape[1], shape[3]
    small = lambda v: v is not None and 1 <= v <= 4  # noqa: E731
    if small(c_last) and not small(c_first):
        return "NHWC"
    if small(c_first) and not small(c_last):
        return "NCHW"
    return formats.layout(fmt)


# -- reading each format ---------------------------------------------------------------------------------------
def _dim(v):
    return int(v) if isinstance(v, int) and v > 0 else None


def _inspect_onnx(path: Path) -> ArtifactInfo:
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is None:  # onnxruntime alone still tells the input (not the ops)
        ort = _require("onnxruntime", "onnx", path)
        try:
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ArtifactError(_onnx_load_sentence(path, exc)) from None
        i, o = sess.get_inputs(), sess.get_outputs()
        _single_input(path, [x.name for x in i])
        dtype = {
            "tensor(float)": "float32",
            "tensor(float16)": "float16",
            "tensor(uint8)": "uint8",
            "tensor(int8)": "int8",
            "tensor(int64)": "int64",
            "tensor(int32)": "int32",
        }.get(i[0].type, i[0].type)
        return ArtifactInfo(
            path,
            "onnx",
            [path],
            i[0].name,
            [_dim(d) for d in i[0].shape],
            dtype,
            o[0].name,
            [_dim(d) for d in o[0].shape],
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ArtifactError(
            f"'{path}' is not an ONNX model onnx can read ({_first_line(exc)}); give a .onnx file "
            "written by torch.onnx.export or another exporter"
        ) from None
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    _single_input(path, [i.name for i in inputs])
    if not inputs or not g.output:
        raise ArtifactError(f"'{path}' has no graph input or output; it is not a runnable model")

    def shape(vi):
        return [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in vi.type.tensor_type.shape.dim
        ]

    elem = inputs[0].type.tensor_type.elem_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else "float32"
    ops: dict = {}
    custom = []
    for node in _onnx_nodes(g):
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        ops[key] = ops.get(key, 0) + 1
        if node.domain not in ONNX_STANDARD_DOMAINS and key not in custom:
            custom.append(key)
    info = ArtifactInfo(
        path, "onnx", [path], inputs[0].name, shape(inputs[0]), dtype, g.output[0].name, shape(g.output[0]), ops, custom
    )
    if custom:  # the runtime is the judge: a com.microsoft op (say) that onnxruntime implements is fine
        info.custom_ops = _onnx_unresolved(path, custom)
        resolved = [c for c in custom if c not in info.custom_ops]
        if resolved:
            info.notes.append(
                f"{path.name} uses the custom op{'s' if len(resolved) > 1 else ''} "
                f"{', '.join(resolved)}, which onnxruntime implements"
            )
    if len(g.output) > 1:
        info.notes.append(f"{path.name} has {len(g.output)} outputs: the first, '{g.output[0].name}', is compared")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in g.initializer):
        info.notes.append(f"{path.name} keeps weights in side files: they are read from beside the original file")
        info.files = [path] + _external_files(model, path)
    return info


def _onnx_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:  # If/Loop/Scan bodies
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _onnx_nodes(sub)


def _external_files(model, path: Path) -> list:
    names = []
    for t in model.graph.initializer:
        for kv in t.external_data:
            if kv.key == "location" and kv.value not in names:
                names.append(kv.value)
    return [check_file(path.parent / n, "the ONNX weights file") for n in names]


def _onnx_unresolved(path: Path, custom: list) -> list:
    """Which of ``custom`` (``domain::Op``) onnxruntime cannot load ``path`` with (all of them without onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return list(custom)
    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        text = str(exc)
        named = [c for c in custom if re.search(rf"\b{re.escape(c.split('::')[-1])}\b", text)]
        return named or list(custom)
    return []


def _onnx_load_sentence(path: Path, exc) -> str:
    text = str(exc)
    m = (
        re.search(r"([\w.]+:)?(\w+)\(-?\d+\) is not a registered function/op", text)
        or re.search(r"implementation for (\w+)\(", text)
        or re.search(r"[Oo]p type not registered '(\w+)'", text)
    )
    if m:
        op = m.group(m.lastindex)
        return f"'{path.name}' uses the op '{op}', which onnxruntime does not have; re-export it without that op"
    return f"onnxruntime cannot load '{path}' ({_first_line(exc)})"


_TFLITE_TYPES = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    6: "bool",
    7: "int16",
    9: "int8",
    10: "float64",
}
_TFLITE_CUSTOM = 32  # BuiltinOperator.CUSTOM


def _inspect_tflite(path: Path) -> ArtifactInfo:
    schema = _require("ai_edge_litert.schema_py_generated", "tflite", path)
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ArtifactError(
            f"'{path}' is not a TFLite flatbuffer (no TFL3 identifier); give a .tflite file written "
            "by litert_torch.convert or the TFLite converter"
        )
    try:
        model = schema.Model.GetRootAsModel(data, 0)
        sg = model.Subgraphs(0)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        ops: dict = {}
        custom = []
        codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
        for i in range(sg.OperatorsLength()):
            oc = codes[sg.Operators(i).OpcodeIndex()]
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            if code == _TFLITE_CUSTOM:
                name = (oc.CustomCode() or b"?").decode()
                if name not in custom:
                    custom.append(name)
            else:
                name = names.get(code, str(code))
            ops[name] = ops.get(name, 0) + 1
        _single_input(path, [sg.Tensors(sg.Inputs(i)).Name().decode() for i in range(sg.InputsLength())])
        t_in, t_out = sg.Tensors(sg.Inputs(0)), sg.Tensors(sg.Outputs(0))
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"'{path}' is not a TFLite model LiteRT's schema can read ({_first_line(exc)})") from None

    def shape(t):
        sig = [int(v) for v in t.ShapeSignatureAsNumpy()] if t.ShapeSignatureLength() else []
        dims = [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else []
        return [None if s < 0 else d for s, d in zip(sig, dims)] if sig else dims

    info = ArtifactInfo(
        path,
        "tflite",
        [path],
        t_in.Name().decode(),
        shape(t_in),
        _TFLITE_TYPES.get(t_in.Type(), str(t_in.Type())),
        t_out.Name().decode(),
        shape(t_out),
        ops,
        custom,
    )
    if custom:  # the runtime is the judge: MediaPipe's Convolution2DTransposeBias (say) is registered in LiteRT
        info.custom_ops = _tflite_unresolved(path, custom)
        resolved = [c for c in custom if c not in info.custom_ops]
        if resolved:
            info.notes.append(
                f"{path.name} uses the custom op{'s' if len(resolved) > 1 else ''} "
                f"{', '.join(resolved)}, which LiteRT resolves"
            )
    if None in info.input_shape:
        info.notes.append(
            f"{path.name} has a dynamic input signature; LiteRT runs it at its stored shape "
            f"{[int(v) for v in t_in.ShapeAsNumpy()]}"
        )
        info.input_shape = [int(v) for v in t_in.ShapeAsNumpy()]
    return info


def _tflite_unresolved(path: Path, custom: list) -> list:
    """Which of ``custom`` LiteRT's Interpreter cannot resolve in ``path`` (it loads and allocates the model)."""
    from ..errors import MissingDependencyError
    from ..runtimes.litert import _interpreter_module

    try:
        mod, _ = _interpreter_module()
    except MissingDependencyError:
        return list(custom)
    try:
        mod.Interpreter(model_path=str(path), num_threads=1).allocate_tensors()
    except Exception as exc:  # "Encountered unresolved custom op: Sparkle."
        named = re.findall(r"unresolved custom op: ([^\s.]+)", str(exc))
        return [c for c in custom if c in named] or list(custom)
    return []


def _inspect_ncnn(path: Path) -> ArtifactInfo:
    name = path.name
    stem = name[: -len(".ncnn.param")] if name.endswith(".ncnn.param") else name[: -len(".param")]
    candidates = [path.parent / f"{stem}.ncnn.bin", path.parent / f"{stem}.bin"]
    binary = next((c for c in candidates if c.exists()), None)
    if binary is None:
        raise ArtifactError(
            f"the ncnn weights of '{path}' are missing: put {candidates[0].name} (or {candidates[1].name}) beside it"
        )
    binary = check_file(binary, "the ncnn weights file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as exc:
        raise ArtifactError(f"'{path}' is not an ncnn text .param file ({_first_line(exc)})") from None
    if not lines or lines[0].strip() != "7767517":
        raise ArtifactError(
            f"'{path}' is not an ncnn .param file (its first line is not the magic 7767517); "
            "give the .param pnnx or ncnn's converters wrote"
        )
    ops: dict = {}
    inputs, in_shape, last_out = [], [None, None, None], None
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        kind, n_in, n_out = parts[0], int(parts[2]), int(parts[3])
        ops[kind] = ops.get(kind, 0) + 1
        tops = parts[4 + n_in : 4 + n_in + n_out]
        if kind == "Input":
            inputs += tops
            params = dict(p.split("=", 1) for p in parts[4 + n_in + n_out :] if "=" in p)
            w, h, c = (int(params.get(k, 0)) or None for k in ("0", "1", "2"))
            in_shape = [c, h, w]
        if tops:
            last_out = tops[0]
    _single_input(path, inputs)
    if not inputs:
        raise ArtifactError(f"'{path}' has no Input layer; it is not a runnable ncnn model")
    custom = [k for k in ops if not _ncnn_has_layer(k)]
    info = ArtifactInfo(path, "ncnn", [path, binary], inputs[0], [1] + in_shape, "float32", last_out, None, ops, custom)
    return info


def _ncnn_has_layer(kind: str) -> bool:
    try:
        import ncnn
    except ImportError:  # no ncnn on this host: pnnx's leftovers are the ops no ncnn build has
        return not re.match(r"(pnnx|torch|F|Tensor|aten|prim|nn)\.", kind)
    return ncnn.layer_to_index(kind) >= 0


def _inspect_pte(path: Path) -> ArtifactInfo:
    from ..runtimes.executorch import read_program_io

    io = read_program_io(str(path))
    return ArtifactInfo(
        path,
        "executorch",
        [path],
        io.get("input_name"),
        list(io["input_shape"]),
        io.get("input_dtype", "float32"),
        io.get("output_name"),
        io.get("output_shape"),
    )


_INSPECTORS = {"onnx": _inspect_onnx, "tflite": _inspect_tflite, "ncnn": _inspect_ncnn, "executorch": _inspect_pte}
RUNTIME_NAMES = {f: formats.RUNTIMES[row.host_runtime].title for f, row in formats.FORMATS.items()}  # for sentences


def _require(module: str, extra: str, path: Path):
    from ..errors import require

    return require(module, extra, f"reading {path.name}")


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _single_input(path: Path, names) -> None:
    if len(names) > 1:
        raise ArtifactError(
            f"'{path.name}' has {len(names)} inputs ({', '.join(names)}); mobileseg benches single-input image models"
        )


def read_info(path) -> ArtifactInfo:
    """What ``path`` says about itself, dynamic dimensions left as None (path and format errors raised)."""
    p = check_file(path, "the artifact")
    fmt = format_of(p)
    if fmt is None:
        raise ArtifactError(
            f"'{p.name}' is not a model file mobileseg can bench: give a .onnx, .tflite, "
            ".ncnn.param (with its .ncnn.bin) or .pte file"
        )
    return _INSPECTORS[fmt](p)
