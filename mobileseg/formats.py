"""The one table of artifact formats and runtimes: every other list of them is read from here.

In the spirit of ultralytics' ``export_formats()``: a row per format (what the exporter writes) and a row per
runtime (what runs it, on the host and on a device). Export, the runtime registry, suites, eval, the ADB target and
its harness drivers, the CLI choices and the docs read these rows; nothing else names a format's files, suffixes,
pip extra, device packages or argmax formulation. The module imports nothing (it is read where neither torch nor a
runtime is installed).

Adding a runtime for an existing format (say ``ncnn-vulkan``) is one :class:`RuntimeRow` here plus its adapter
module in ``mobileseg/runtimes/``. Adding a format (say ExecuTorch) is one :class:`FormatRow`, one converter module in
``mobileseg/export/`` and one adapter in ``mobileseg/runtimes/`` (plus a pip extra in pyproject.toml). A precision
(say ``int8``) is a value in the ``precisions`` of the rows whose converter and adapter handle it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GRAPHS = ("logits", "argmax")


@dataclass(frozen=True)
class FormatRow:
    """One artifact format.

    ``files``: what the converter writes in the export folder (the first is the model file a runtime opens);
    ``converter``: the module ``mobileseg.export.<converter>`` (``convert``, ``check_available``,
    ``converter_versions``, ``CONVERTER``); ``host_runtime``: the runtime that checks the artifact's parity at
    export; ``argmax``: the argmax formulation the converter can take (see ``mobileseg.export.graphs``);
    ``extra``: the pip extra with the converter and the host runtime ("" when torch alone suffices);
    ``layout``: the layout of the artifact's image input and tensors (``NHWC``: TFLite's converter transposes);
    ``user_suffixes``: the file endings ``bench --artifact`` takes for this format (a file another tool wrote;
    empty: the format is not benched from a user's file), longest first; ``convert_apart``: its converter is slow
    and single-threaded, so export runs it in a child process while the other formats convert.
    """

    name: str
    files: tuple[str, ...]
    converter: str
    host_runtime: str
    extra: str
    argmax: str = "argmax"
    precisions: tuple[str, ...] = ("fp32", "fp16")
    description: str = ""
    layout: str = "NCHW"
    user_suffixes: tuple[str, ...] = ()
    convert_apart: bool = False

    @property
    def suffixes(self) -> tuple[str, ...]:
        """File-name endings of the artifact files, e.g. ``(".ncnn.param", ".ncnn.bin")``."""
        return tuple(f[f.index(".") :] for f in self.files)

    @property
    def model_file(self) -> str:
        return self.files[0]

    @property
    def weights_file(self) -> str:
        """The file that holds the weights (the model file itself where the format keeps them in one file)."""
        return self.files[-1]


@dataclass(frozen=True)
class RuntimeRow:
    """One runtime. ``adapter``: ``module:Class`` under ``mobileseg.runtimes``; ``extra``: its pip extra;
    ``device_modules``: the Python modules that provide it on a device (the first that imports is used) and
    ``device_pip``: the package to install there (empty: it does not run in the device harness); ``default``: in
    bench's runtime list when ``--runtimes`` is not given (``ncnn-vulkan`` is not: without a GPU its timings are a
    software driver's)."""

    name: str
    format: str
    adapter: str
    extra: str
    device_modules: tuple[str, ...] = ()
    device_pip: str = ""
    aliases: tuple[str, ...] = field(default=())
    default: bool = True
    # what runs it on a stock Android phone (no Python): the native harness, official binaries (timings only)
    phone_tools: tuple[str, ...] = ()
    label: str = ""  # its name in sentences (LiteRT), when not ``name``

    @property
    def title(self) -> str:
        return self.label or self.name


FORMATS: dict[str, FormatRow] = {
    row.name: row
    for row in (
        FormatRow(
            "torch",
            ("model.pt",),
            "pytorch",
            "torch",
            "",
            precisions=("fp32",),
            description="the BN-folded nn.Module export checked, saved with torch.save (the eager reference)",
        ),
        FormatRow(
            "onnx",
            ("model.onnx",),
            "onnx",
            "onnxruntime",
            "onnx",
            precisions=("fp32", "fp16", "int8"),
            description="torch.onnx (TorchScript exporter, opset 17) simplified with onnxsim, one file",
            user_suffixes=("onnx",),
        ),
        FormatRow(
            "ncnn",
            ("model.ncnn.param", "model.ncnn.bin"),
            "ncnn",
            "ncnn",
            "ncnn",
            argmax="min-index",
            precisions=("fp32", "fp16", "int8"),
            description="pnnx: graph (.param) and weights (.bin)",
            user_suffixes=("ncnn.param", "param"),
        ),
        FormatRow(
            "tflite",
            ("model.tflite",),
            "tflite",
            "litert",
            "tflite",
            precisions=("fp32", "fp16", "int8"),
            description="litert-torch (no TensorFlow needed)",
            layout="NHWC",
            user_suffixes=("tflite",),
            convert_apart=True,
        ),
        FormatRow(
            "executorch",
            ("model.pte",),
            "executorch",
            "executorch",
            "executorch",
            description="torch.export -> to_edge_transform_and_lower (XNNPACK partitioner) -> .pte",
            user_suffixes=("pte",),
        ),
    )
}

RUNTIMES: dict[str, RuntimeRow] = {
    row.name: row
    for row in (
        RuntimeRow("torch", "torch", "torch_eager:TorchRuntime", "", aliases=("pytorch", "torcheager")),
        RuntimeRow(
            "onnxruntime",
            "onnx",
            "onnxruntime:OnnxRuntime",
            "onnx",
            ("onnxruntime",),
            "onnxruntime",
            aliases=("ort",),
            phone_tools=("onnxruntime_perf_test (timings only)",),
        ),
        RuntimeRow("ncnn", "ncnn", "ncnn:NcnnRuntime", "ncnn", ("ncnn",), "ncnn", phone_tools=("native harness",)),
        # ncnn's compute shaders on a Vulkan device (a phone's GPU; lavapipe, Mesa's CPU driver, where there is none)
        RuntimeRow(
            "ncnn-vulkan",
            "ncnn",
            "ncnn_vulkan:NcnnVulkanRuntime",
            "ncnn",
            ("ncnn",),
            "ncnn",
            aliases=("vulkan", "ncnngpu"),
            default=False,
            phone_tools=("native harness, Vulkan build (NDK)",),
        ),
        RuntimeRow(
            "litert",
            "tflite",
            "litert:LiteRTRuntime",
            "tflite",
            ("ai_edge_litert", "tflite_runtime"),
            "ai-edge-litert",
            aliases=("tflite", "tfliteruntime", "aiedgelitert"),
            phone_tools=("benchmark_model (timings only)",),
            label="LiteRT",
        ),
        # PyTorch's own on-device runtime (XNNPACK delegate); measured when named: its export takes tens of seconds
        RuntimeRow(
            "executorch",
            "executorch",
            "executorch:ExecuTorchRuntime",
            "executorch",
            ("executorch",),
            "executorch",
            aliases=("et", "pte"),
            default=False,
            label="ExecuTorch",
        ),
    )
}

PRECISIONS = tuple(dict.fromkeys(p for row in FORMATS.values() for p in row.precisions))
# what `mobileseg export` converts when --formats is not given (torch is written when a bench or eval asks for it)
DEFAULT_EXPORT_FORMATS = ("onnx", "ncnn", "tflite")


def user_suffixes() -> tuple[tuple[str, str], ...]:
    """``(suffix, format)`` of the files ``bench --artifact`` takes, longest suffix first (.ncnn.param before
    .param)."""
    pairs = [(suf, row.name) for row in FORMATS.values() for suf in row.user_suffixes]
    return tuple(sorted(pairs, key=lambda p: -len(p[0])))


def layout(fmt_or_runtime: str) -> str:
    """The tensor layout of a format's artifacts (or of the format a runtime runs): ``NCHW`` or ``NHWC``."""
    rt = RUNTIMES.get(fmt_or_runtime)
    row = FORMATS.get(fmt_or_runtime) or (FORMATS.get(rt.format) if rt is not None else None)
    return row.layout if row is not None else "NCHW"


def runtime_format(runtime: str) -> str:
    """The artifact format ``runtime`` runs (``onnxruntime`` -> ``onnx``)."""
    return RUNTIMES[runtime].format


def host_runtime(fmt: str) -> str:
    """The runtime that checks ``fmt`` artifacts on the host (``tflite`` -> ``litert``)."""
    return FORMATS[fmt].host_runtime


def runtime_key(name: str) -> str | None:
    """The runtime a user-typed name means (case, ``-``/``_`` and aliases forgiven), or None."""
    key = str(name).strip().lower().replace("_", "").replace("-", "")
    for row in RUNTIMES.values():
        if key == row.name.replace("-", "") or key in row.aliases:
            return row.name
    return None


def default_runtimes() -> tuple[str, ...]:
    """What bench measures when ``--runtimes`` is not given (every installed one among these)."""
    return tuple(r.name for r in RUNTIMES.values() if r.default)


def device_runtimes() -> tuple[str, ...]:
    """Runtimes the on-device Python harness can run (those with device modules)."""
    return tuple(r.name for r in RUNTIMES.values() if r.device_modules)


def device_modules() -> tuple[str, ...]:
    """Every Python module that provides a runtime on a device (what the device probe looks for)."""
    return tuple(dict.fromkeys(m for r in RUNTIMES.values() for m in r.device_modules))


def model_file(fmt: str, files) -> str | None:
    """The model file among ``files`` (manifest paths) of a ``fmt`` artifact: the one a runtime opens."""
    want = FORMATS[fmt].suffixes[0]
    return next((f for f in files if str(f).endswith(want)), None)


def side_file(fmt: str, files) -> str | None:
    """The second artifact file (ncnn's .bin weights), or None for single-file formats."""
    suffixes = FORMATS[fmt].suffixes
    if len(suffixes) < 2:
        return None
    return next((f for f in files if str(f).endswith(suffixes[1])), None)


def support_rows() -> list[dict]:
    """Formats x runtimes x precisions x devices, one row per runtime, from the rows above (README's table)."""
    rows = []
    for rt in RUNTIMES.values():
        fmt = FORMATS[rt.format]
        rows.append(
            {
                "format": fmt.name,
                "files": " + ".join(f"`{f}`" for f in fmt.files),
                "runtime": f"`{rt.name}`",
                "precisions": ", ".join(fmt.precisions),
                "host": "yes",
                "ARM Linux / Termux (device Python)": f"yes (`{rt.device_pip}`)" if rt.device_modules else "-",
                "stock Android (no Python)": ", ".join(rt.phone_tools) or "-",
                "pip extra": f"`{rt.extra}`" if rt.extra else "(torch)",
                "in bench by default": "yes" if rt.default else "when named",
            }
        )
    return rows


def support_markdown() -> str:
    """:func:`support_rows` as the Markdown table README.md carries between its ``formats-table`` markers."""
    rows = support_rows()
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "| " + " | ".join("---" for _ in keys) + " |"]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
