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
    hint = (
        "install a GPU driver, or Mesa's software Vulkan driver lavapipe "
        "(apt-get install mesa-vulkan-drivers on Debian/Ubuntu)"
    )
    if ncnn.get_gpu_count() < 1:
        raise RuntimeError(f"ncnn finds no Vulkan device: {hint}")
    index = int(os.environ.get("MOBILESEG_VULKAN_DEVICE") or ncnn.get_default_gpu_index())
    info = ncnn.get_gpu_info(index)
    name, kind, api = str(info.device_name()), int(info.type()), int(info.api_version())
    if ncnn.get_gpu_device(index) is None:
        raise RuntimeError(f"the Vulkan driver of '{name}' fails to create the device: {hint}")
    soft = next(
        (d for k, d in (("llvmpipe", "lavapipe (Mesa)"), ("swiftshader", "SwiftShader")) if k in name.lower()), None
    )
    fields = {
        "vulkan_device": name,
        "vulkan_device_index": index,
        "vulkan_device_type": {0: "discrete", 1: "integrated", 2: "virtual", 3: "cpu"}.get(kind, "other"),
        "vulkan_vendor_id": int(info.vendor_id()),
        "vulkan_driver": soft or hex(int(info.vendor_id())),
        "vulkan_driver_version": int(info.driver_version()),
        "vulkan_api_version": f"{(api >> 22) & 0x7F}.{(api >> 12) & 0x3FF}.{api & 0xFFF}",
        "vulkan_software": bool(kind == 3 or soft),
    }
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
        return (
            f"fp16 is unsupported by this driver build: lavapipe of Mesa {mesa_version() or '(version unknown)'} "
            f"with {llvm.group(0)} on aarch64 aborts compiling ncnn's fp16 shaders (LLVM cannot select "
            "'v4f32 = fp_extend v4i16'); use fp32"
        )
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

    settings = {
        "threads": args.threads,
        "vulkan": vulkan,
        "light_mode": True,
        "use_fp16_packed": fp16,
        "use_fp16_storage": fp16,
        "use_fp16_arithmetic": fp16,
        "use_bf16_storage": False,
        "use_packing_layout": bool(opt.use_packing_layout),
        "use_winograd_convolution": bool(opt.use_winograd_convolution),
        "use_sgemm_convolution": bool(opt.use_sgemm_convolution),
        "precision": args.precision,
        **device,
    }
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

    settings = {
        "threads": args.threads,
        "intra_op_threads": args.threads,
        "inter_op_threads": 1,
        "execution_mode": "sequential",
        "graph_optimization_level": "all",
        "providers": ["CPUExecutionProvider"],
        "precision": args.precision,
    }
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
        if (
            tuple(x.shape) != tuple(inp["shape"])
            and x.ndim == 4
            and tuple(x.transpose(0, 2, 3, 1).shape) == tuple(inp["shape"])
        ):
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return x

    def run(x):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"]).copy()

    settings = {
        "threads": args.threads,
        "interpreter": package,
        "xnnpack": True,
        "op_resolver": "auto (builtin ops + default XNNPACK delegate)",
        "weights": args.precision,
        "compute": "fp32",
    }
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

    settings = {
        "threads": args.threads,
        "threadpool_threads": int(portable_lib._threadpool_get_thread_count()),
        "backend": "XNNPACK delegate (+ portable kernels)",
        "precision": args.precision,
        "program_dtype": "float16" if half else "float32",
    }
    return prepare, run, version("executorch"), settings, lambda: None


LOADERS = {
    "ncnn": load_ncnn,
    "executorch": load_executorch,
    "ncnn-vulkan": lambda args: load_ncnn(args, vulkan=True),
    "onnxruntime": load_onnxruntime,
    "litert": load_litert,
}


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


# -- per-cell figures beside the timings (the host's mobileseg.bench.memory / .sampling, copied: this script imports
#    nothing from mobileseg) ----------------------------------------------------------------------------------------
MEMORY_DEFINITION = (
    "peak_rss_growth_mb = peak RSS over load + runs (VmHWM, reset before the load) - RSS before the "
    "load; load_rss_growth_mb = RSS after load - RSS before; pss_mb = Pss of /proc/self/smaps_rollup "
    "after the runs; MB = 2^20 bytes"
)


def proc_kb(path, field):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_figures(rss0, rss_loaded, resettable):
    import resource

    peak = proc_kb("/proc/self/status", "VmHWM")
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mb = lambda kb: None if kb is None else round(kb / 1024.0, 2)  # noqa: E731
    out = {
        "definition": MEMORY_DEFINITION,
        "rss_before_mb": mb(rss0),
        "peak_rss_mb": mb(peak),
        "source": "VmHWM reset through /proc/self/clear_refs"
        if resettable
        else "VmHWM of this fresh process (clear_refs refused: the peak includes Python's start-up)",
    }
    if rss0 is not None and peak is not None:
        out["peak_rss_growth_mb"] = mb(max(0, peak - rss0))
    if rss0 is not None and rss_loaded is not None:
        out["load_rss_growth_mb"] = mb(rss_loaded - rss0)
    pss = proc_kb("/proc/self/smaps_rollup", "Pss")
    out["pss_mb"] = mb(pss)
    if pss is None:
        out["pss_note"] = "/proc/self/smaps_rollup is not readable here (kernel < 4.14, or not exposed)"
    return out


def median_ci_halfwidth(sorted_ms, level=0.95):
    """Relative half-width max(median - low, high - median) / median of the order-statistics interval of the
    median (mobileseg.results.stats.median_ci); None below 6 samples."""
    import math

    n = len(sorted_ms)
    if n < 6:
        return None

    def cov(j):  # P(j <= B <= n - j), B ~ Binomial(n, 1/2), 1-based j
        terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2.0) for i in range(j)]
        top = max(terms)
        return 1.0 - 2.0 * math.exp(top) * math.fsum(math.exp(t - top) for t in terms)

    lo, hi = 1, (n + 1) // 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cov(mid) >= level:
            lo = mid
        else:
            hi = mid - 1
    m = sorted_ms[(n - 1) // 2] if n % 2 else 0.5 * (sorted_ms[n // 2 - 1] + sorted_ms[n // 2])
    if not m:
        return None
    return max(m - sorted_ms[lo - 1], sorted_ms[n - lo] - m) / m


def _failed(result: dict, exc: BaseException) -> int:
    """Record an exception for the host (one line plus the traceback); the harness's exit code for it."""
    result.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:])
    return 3


def _write_result(result: dict, code: int, path: str) -> int:
    """Write the result file the host pulls back, say a failure on stderr, and return ``code``."""
    with open(path, "w") as f:
        json.dump(result, f)
    if code:
        print(f"harness error: {result['error']}", file=sys.stderr)
    return code


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
    p.add_argument(
        "--target-ci",
        type=float,
        default=None,
        help="sample until the median's 95%% interval is within this percent (relative half-width)",
    )
    p.add_argument("--max-time", type=float, default=30.0, help="seconds of sampling at most with --target-ci")
    p.add_argument("--min-repeats", type=int, default=10, help="samples before --target-ci is first checked")
    p.add_argument(
        "--intermediates",
        default=None,
        help="instead of timing: run once and save every intermediate tensor to this .npz",
    )
    p.add_argument(
        "--mark-file",
        default=None,
        help="the device's mark (a token the host wrote there): copied into the timings as device_mark, "
        "so the host knows the file was written on this device",
    )
    args = p.parse_args(argv)
    if args.intermediates:
        return intermediates_main(args)
    result = {
        "ok": False,
        "runtime": args.runtime,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "pid": os.getpid(),
    }
    if args.mark_file:
        try:
            with open(args.mark_file) as f:
                result["device_mark"] = f.read().strip()
        except OSError:
            result["device_mark"] = ""
    try:
        x_in = np.load(args.input)
        resettable = reset_peak()
        rss0 = proc_kb("/proc/self/status", "VmRSS")
        t0 = time.perf_counter()
        prepare, run, version, settings, close = LOADERS[args.runtime](args)
        load_s = time.perf_counter() - t0
        rss_loaded = proc_kb("/proc/self/status", "VmRSS")
        result.update(runtime_version=version, settings=settings, load_s=load_s, load_ms=round(load_s * 1e3, 3))
        x = prepare(x_in)
        t = time.perf_counter_ns()
        out = run(x)  # the first call after the load: timed alone, one of the warm-up runs
        result["first_run_ms"] = round((time.perf_counter_ns() - t) / 1e6, 3)
        for _ in range(max(0, args.warmup - 1)):
            out = run(x)
        samples = []
        start = time.perf_counter()
        repeats = args.repeats if args.repeats is not None else (None if args.min_time else 20)
        if args.target_ci is not None:
            repeats, ordered, next_check, hw = None, [], max(6, args.min_repeats), None
        while True:
            t = time.perf_counter_ns()
            out = run(x)
            samples.append((time.perf_counter_ns() - t) / 1e6)
            if args.target_ci is not None:  # mobileseg.bench.sampling's rule
                import bisect

                bisect.insort(ordered, samples[-1])
                n = len(samples)
                stop = time.perf_counter() - start >= args.max_time or n >= args.max_repeats
                if n >= next_check or stop:
                    hw = median_ci_halfwidth(ordered)
                    next_check = max(n + 1, int(n * 1.05))
                    if (hw is not None and hw * 100 <= args.target_ci) or stop:
                        result["sampling"] = {
                            "reached": hw is not None and hw * 100 <= args.target_ci,
                            "halfwidth_pct": None if hw is None else round(hw * 100, 4),
                            "elapsed_s": round(time.perf_counter() - start, 3),
                        }
                        break
                continue
            if repeats is not None and len(samples) >= repeats:
                break
            if repeats is None and (time.perf_counter() - start >= args.min_time or len(samples) >= args.max_repeats):
                break
        result["memory"] = memory_figures(rss0, rss_loaded, resettable)
        np.save(args.output, np.asarray(out))
        close()
        affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        result.update(
            ok=True,
            samples_ms=samples,
            warmup=args.warmup,
            affinity=affinity,
            overhead_ms=empty_call_overhead_ms(),
            output_shape=list(np.shape(out)),
        )
        code = 0
    except Exception as exc:  # reported to the host as one line plus the traceback
        code = _failed(result, exc)
    return _write_result(result, code, args.timings)


# -- intermediate tensors (mobileseg parity --per-layer --device adb:...): one run, every tensor, one .npz file ------
def intermediates_main(args) -> int:
    """Run the artifact once and save every intermediate tensor into ``args.intermediates`` (.npz: ``t0000``...
    in graph order, ``__names__`` and ``__ops__`` beside them); the JSON at ``--timings`` says ok or the error.

    ncnn: every layer's output blob (``Split`` copies skipped) from one extractor without light mode, with the same
    fp16 switches as a timed run; onnxruntime: every output of the model it is given (the host adds every node
    output as a graph output before pushing it); LiteRT: ``experimental_preserve_all_tensors``, float tensors in op
    order."""
    result = {"ok": False, "runtime": args.runtime, "mode": "intermediates", "machine": platform.machine()}
    try:
        x = np.load(args.input)
        names, ops, values = [], [], []
        if args.runtime in ("ncnn", "ncnn-vulkan"):
            import ncnn

            prepare, _run, version, settings, close = load_ncnn(args, vulkan=args.runtime == "ncnn-vulkan")
            net_layers = []
            with open(args.model) as f:
                for line in f.read().splitlines()[2:]:
                    parts = line.split()
                    if len(parts) >= 4:
                        n_in, n_out = int(parts[2]), int(parts[3])
                        net_layers.append((parts[0], parts[1], parts[4 + n_in : 4 + n_in + n_out]))
            net = close.__self__  # load_ncnn returns net.clear: the net itself
            keep = prepare(x)
            ex = net.create_extractor()
            ex.set_light_mode(False)
            ex.input(args.input_name or net.input_names()[0], ncnn.Mat(keep))
            for typ, lname, outs in net_layers:
                if typ in ("Input", "Split"):
                    continue
                for blob in outs:
                    ret, mat = ex.extract(blob)
                    if ret == 0:
                        names.append(f"{lname}:{blob}")
                        ops.append(typ)
                        values.append(np.array(mat, copy=True))
            ex = mat = None
            close()
        elif args.runtime == "onnxruntime":
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(args.model, sess_options=so, providers=["CPUExecutionProvider"])
            outs = [o.name for o in sess.get_outputs()]
            for name, value in zip(outs, sess.run(outs, {sess.get_inputs()[0].name: np.ascontiguousarray(x)})):
                names.append(name)
                ops.append("")
                values.append(np.asarray(value))
            version, settings = ort.__version__, {"threads": args.threads}
        elif args.runtime == "litert":
            try:
                from ai_edge_litert import interpreter as tfl
            except Exception:
                import tflite_runtime.interpreter as tfl
            interp = tfl.Interpreter(
                model_path=args.model, num_threads=args.threads, experimental_preserve_all_tensors=True
            )
            interp.allocate_tensors()
            inp = interp.get_input_details()[0]
            interp.set_tensor(inp["index"], np.ascontiguousarray(x, dtype=inp["dtype"]))
            interp.invoke()
            details = {d["index"]: d for d in interp.get_tensor_details()}
            seen = set()
            for op in interp._get_ops_details():
                for t in op["outputs"]:
                    d = details.get(int(t))
                    if d is None or t in seen or d["dtype"] != np.float32:
                        continue
                    seen.add(t)
                    names.append(d["name"])
                    ops.append(op["op_name"])
                    values.append(interp.get_tensor(int(t)).copy())
            version, settings = getattr(tfl, "__version__", "unknown"), {"threads": args.threads}
        else:
            raise RuntimeError(f"no intermediate capture for runtime {args.runtime}")
        arrays = {f"t{i:04d}": v for i, v in enumerate(values)}
        np.savez(args.intermediates, __names__=np.array(names), __ops__=np.array(ops), **arrays)
        result.update(ok=True, tensors=len(values), runtime_version=version, settings=settings)
        code = 0
    except Exception as exc:
        code = _failed(result, exc)
    return _write_result(result, code, args.timings)


if __name__ == "__main__":
    sys.exit(main())
