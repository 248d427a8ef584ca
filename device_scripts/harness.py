#!/usr/bin/env python3
"""On-device latency harness: runs ONE artifact with ncnn (CPU or Vulkan), onnxruntime, LiteRT or ExecuTorch and times
each call.

Runs ON the device (an ARM Linux board, Android with Termux, or the emulated ARM64 device); imports nothing from
mobileseg, only numpy and the runtime's package. The host pushes it with the artifact and the reference input,
launches it pinned with ``taskset <mask>``, then pulls the timings JSON and the output .npy.

    python3 harness.py --runtime ncnn --model model.ncnn.param --weights model.ncnn.bin \
        --input input.npy --output output.npy --timings timings.json --threads 1 --warmup 3 --repeats 20

Timing: ``time.perf_counter_ns()`` around the runtime call only (input preparation is outside the timed region);
the overhead of an empty timed call is measured the same way and reported apart. The runtime settings that change
numerics (fp16 switches, thread counts, optimisation level) are the same as the host's adapters in
``mobileseg.runtimes`` and are reported in the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
import traceback

import numpy as np


def vulkan_device(ncnn):
    """The Vulkan device ncnn-vulkan runs on and its record fields (as mobileseg.runtimes.ncnn_vulkan writes them)."""
    hint = ("install a GPU driver, or Mesa's software Vulkan driver lavapipe "
            "(apt-get install mesa-vulkan-drivers on Debian/Ubuntu)")
    if ncnn.get_gpu_count() < 1:
        raise RuntimeError(f"ncnn finds no Vulkan device: {hint}")
    index = int(os.environ.get("MOBILESEG_VULKAN_DEVICE") or ncnn.get_default_gpu_index())
    info = ncnn.get_gpu_info(index)
    name, kind, api = str(info.device_name()), int(info.type()), int(info.api_version())
    if ncnn.get_gpu_device(index) is None:
        raise RuntimeError(f"the Vulkan driver of '{name}' fails to create the device: {hint}")
    soft = next((d for k, d in (("llvmpipe", "lavapipe (Mesa)"), ("swiftshader", "SwiftShader")) if k in name.lower()),
                None)
    fields = {"vulkan_device": name, "vulkan_device_index": index,
              "vulkan_device_type": {0: "discrete", 1: "integrated", 2: "virtual", 3: "cpu"}.get(kind, "other"),
              "vulkan_vendor_id": int(info.vendor_id()), "vulkan_driver": soft or hex(int(info.vendor_id())),
              "vulkan_driver_version": int(info.driver_version()),
              "vulkan_api_version": f"{(api >> 22) & 0x7F}.{(api >> 12) & 0x3FF}.{api & 0xFFF}",
              "vulkan_software": bool(kind == 3 or soft)}
    return index, fields


def mesa_version():
    """The Mesa release of the installed Vulkan drivers, from Debian's changelog (None elsewhere: the ncnn binding
    exposes no driver-info string, and lavapipe's driverVersion is 1)."""
    import gzip

    try:
        with gzip.open("/usr/share/doc/mesa-vulkan-drivers/changelog.Debian.gz", "rt") as f:
            m = re.match(r"mesa \(([\d.]+)", f.readline())
    except OSError:
        return None
    return m.group(1) if m else None


def fp16_refusal(fields):
    """Why fp16 cannot run on this Vulkan device (one sentence), or None. Checked before any shader is compiled: a
    driver that cannot compile ncnn's fp16 shaders aborts the whole process (SIGABRT) instead of failing one call."""
    name = fields["vulkan_device"]
    llvm = re.search(r"LLVM (\d+)[.\d]*", name)
    if "llvmpipe" in name.lower() and llvm and int(llvm.group(1)) <= 15 and platform.machine() == "aarch64":
        # measured with Debian 12's arm64 mesa-vulkan-drivers (Mesa 22.3.6, LLVM 15.0.6), which also reports no fp16
        # arithmetic (ncnn's fp16-p/s/u/a=1/1/1/0): LLVM's AArch64 instruction selection aborts on fp16 storage
        return (f"fp16 is unsupported by this driver build: lavapipe of Mesa {mesa_version() or '(version unknown)'} "
                f"with {llvm.group(0)} on aarch64 aborts compiling ncnn's fp16 shaders (LLVM cannot select "
                "'v4f32 = fp_extend v4i16'); use fp32")
    return None


def load_ncnn(args, vulkan=False):
    import ncnn

    net = ncnn.Net()
    opt = net.opt
    opt.num_threads = args.threads
    opt.use_vulkan_compute = vulkan
    index, device = vulkan_device(ncnn) if vulkan else (None, {})
    fp16 = args.precision == "fp16"
    if vulkan:
        refusal = fp16_refusal(device) if fp16 else None
        if refusal:
            raise RuntimeError(refusal)
        net.set_vulkan_device(index)
    for switch in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic"):
        setattr(opt, switch, fp16)  # ncnn uses fp16 silently on ARMv8.2 unless told otherwise
    opt.use_bf16_storage = False
    if net.load_param(args.model) != 0 or net.load_model(args.weights) != 0:
        raise RuntimeError(f"ncnn cannot load {args.model} / {args.weights}")
    in_name = args.input_name or net.input_names()[0]
    out_name = args.output_name or net.output_names()[0]
    keep = {}

    def prepare(x):
        keep["x"] = np.ascontiguousarray(x[0] if x.ndim == 4 else x, dtype=np.float32)  # Mat does not copy
        return keep["x"]

    def run(x):
        ex = net.create_extractor()
        ex.set_light_mode(True)
        ex.input(in_name, ncnn.Mat(x))
        ret, mat = ex.extract(out_name)
        if ret != 0:
            raise RuntimeError(f"ncnn extract of '{out_name}' failed (code {ret})")
        return np.array(mat, copy=True)[None]

    settings = {"threads": args.threads, "vulkan": vulkan, "light_mode": True, "use_fp16_packed": fp16,
                "use_fp16_storage": fp16, "use_fp16_arithmetic": fp16, "use_bf16_storage": False,
                "use_packing_layout": bool(opt.use_packing_layout),
                "use_winograd_convolution": bool(opt.use_winograd_convolution),
                "use_sgemm_convolution": bool(opt.use_sgemm_convolution), "precision": args.precision, **device}
    return prepare, run, ncnn.__version__, settings, net.clear


def load_onnxruntime(args):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if args.threads > 1 else "0")
    sess = ort.InferenceSession(args.model, sess_options=so, providers=["CPUExecutionProvider"])
    in_name = args.input_name or sess.get_inputs()[0].name
    out_name = args.output_name or sess.get_outputs()[0].name
    feed = {}

    def prepare(x):
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(x):
        feed[in_name] = x
        return sess.run([out_name], feed)[0]

    settings = {"threads": args.threads, "intra_op_threads": args.threads, "inter_op_threads": 1,
                "execution_mode": "sequential", "graph_optimization_level": "all",
                "providers": ["CPUExecutionProvider"], "precision": args.precision}
    return prepare, run, ort.__version__, settings, lambda: None


def load_litert(args):
    try:
        from ai_edge_litert import interpreter as tfl
        package = "ai-edge-litert"
    except Exception:  # tflite_runtime where that is what imports (numpy-1 boards)
        import tflite_runtime.interpreter as tfl
        package = "tflite-runtime"
    try:
        from importlib.metadata import version
        ver = version(package)
    except Exception:
        ver = getattr(tfl, "__version__", "unknown")
    interp = tfl.Interpreter(model_path=args.model, num_threads=args.threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]

    def prepare(x):
        x = np.ascontiguousarray(x, dtype=inp["dtype"])
        if tuple(x.shape) != tuple(inp["shape"]) and x.ndim == 4 and tuple(x.transpose(0, 2, 3, 1).shape) == tuple(
                inp["shape"]):
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return x

    def run(x):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"]).copy()

    settings = {"threads": args.threads, "interpreter": package, "xnnpack": True,
                "op_resolver": "auto (builtin ops + default XNNPACK delegate)", "weights": args.precision,
                "compute": "fp32"}
    return prepare, run, ver, settings, lambda: None


def load_executorch(args):
    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    from importlib.metadata import version

    portable_lib._unsafe_reset_threadpool(args.threads)
    program = Runtime.get().load_program(args.model)
    method = program.load_method("forward")
    half = int(program.metadata("forward").input_tensor_meta(0).dtype()) == 5  # ScalarType Half

    def prepare(x):
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return t.half() if half else t

    def run(x):
        return method.execute([x])[0].float().numpy()

    settings = {"threads": args.threads, "threadpool_threads": int(portable_lib._threadpool_get_thread_count()),
                "backend": "XNNPACK delegate (+ portable kernels)", "precision": args.precision,
                "program_dtype": "float16" if half else "float32"}
    return prepare, run, version("executorch"), settings, lambda: None


LOADERS = {"ncnn": load_ncnn, "executorch": load_executorch, "ncnn-vulkan": lambda args: load_ncnn(args, vulkan=True), "onnxruntime": load_onnxruntime, "litert": load_litert}


def empty_call_overhead_ms(n: int = 2000) -> float:
    def nothing(x):
        return x

    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        nothing(None)
        samples.append(time.perf_counter_ns() - t0)
    samples.sort()
    return samples[len(samples) // 2] / 1e6


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtime", required=True, choices=sorted(LOADERS))
    p.add_argument("--model", required=True, help=".onnx, .tflite or ncnn .param")
    p.add_argument("--weights", default=None, help="ncnn .bin")
    p.add_argument("--input", required=True, help="input .npy (N x 3 x H x W float32)")
    p.add_argument("--output", required=True, help="where to write the output .npy")
    p.add_argument("--timings", required=True, help="where to write the timings JSON")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--min-time", type=float, default=None, help="seconds of timed calls instead of --repeats")
    p.add_argument("--max-repeats", type=int, default=10000)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--input-name", default=None)
    p.add_argument("--output-name", default=None)
    args = p.parse_args(argv)
    result = {"ok": False, "runtime": args.runtime, "python": platform.python_version(), "numpy": np.__version__,
              "machine": platform.machine(), "pid": os.getpid()}
    try:
        t0 = time.perf_counter()
        prepare, run, version, settings, close = LOADERS[args.runtime](args)
        result.update(runtime_version=version, settings=settings, load_s=time.perf_counter() - t0)
        x = prepare(np.load(args.input))
        for _ in range(max(0, args.warmup)):
            out = run(x)
        samples = []
        start = time.perf_counter()
        repeats = args.repeats if args.repeats is not None else (None if args.min_time else 20)
        while True:
            t = time.perf_counter_ns()
            out = run(x)
            samples.append((time.perf_counter_ns() - t) / 1e6)
            if repeats is not None and len(samples) >= repeats:
                break
            if repeats is None and (time.perf_counter() - start >= args.min_time or len(samples) >= args.max_repeats):
                break
        np.save(args.output, np.asarray(out))
        close()
        affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        result.update(ok=True, samples_ms=samples, warmup=args.warmup, affinity=affinity,
                      overhead_ms=empty_call_overhead_ms(), output_shape=list(np.shape(out)))
        code = 0
    except Exception as exc:  # reported to the host as one line plus the traceback
        result.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:])
        code = 3
    with open(args.timings, "w") as f:
        json.dump(result, f)
    if code:
        print(f"harness error: {result['error']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
