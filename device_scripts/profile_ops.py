#!/usr/bin/env python3
"""On-device per-op profile of ONE artifact (``bench --profile`` with the device Python harness).

Runs ON the device beside ``harness.py`` and imports nothing from mobileseg. It writes per-op milliseconds per run,
and mobileseg.bench.profile turns them into the profile schema (the same rules as on the host): onnxruntime's own
profiler (its kernel events), and ncnn layer by layer (each layer's output blob extracted in order from one extractor
kept out of light mode, minus the cost of one extract of a blob already computed).

    python3 profile_ops.py --runtime onnxruntime|ncnn --model M [--weights W] --input input.npy --out ops.json
                           [--runs 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def onnxruntime_ops(args, x):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(args.model, sess_options=so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(args.runs + 1):
            sess.run(None, feed)
        with open(sess.end_profiling()) as f:
            return {"source": "onnxruntime-profiler", "events": json.load(f)}


def ncnn_ops(args, x):
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = args.threads
    for switch in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, switch, False)
    net.load_param(args.model)
    net.load_model(args.weights)
    layers = net.layers()
    data = np.ascontiguousarray(x[0] if x.ndim == 4 else x, dtype=np.float32)
    times, types, costs = {}, {}, []
    for run in range(args.runs + 1):
        ex = net.create_extractor()
        ex.set_light_mode(False)
        ex.input(net.input_names()[0], ncnn.Mat(data))
        for layer in layers:
            if layer.type == "Input" or not layer.tops:
                continue
            t0 = time.perf_counter_ns()
            _ret, mat = ex.extract(int(layer.tops[0]))
            ms = (time.perf_counter_ns() - t0) / 1e6
            del mat
            if run:
                times.setdefault(layer.name, []).append(ms)
                types[layer.name] = layer.type
        if run:
            t0 = time.perf_counter_ns()
            _ret, mat = ex.extract(int(layers[-1].tops[0]))
            costs.append((time.perf_counter_ns() - t0) / 1e6)
            del mat
        del ex
    return {
        "source": "ncnn-layer-extract",
        "times": times,
        "types": types,
        "extract_overhead_ms": sorted(costs)[len(costs) // 2],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtime", required=True, choices=["onnxruntime", "ncnn"])
    p.add_argument("--model", required=True)
    p.add_argument("--weights", default=None)
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    x = np.ascontiguousarray(np.load(args.input), dtype=np.float32)
    out = (onnxruntime_ops if args.runtime == "onnxruntime" else ncnn_ops)(args, x)
    out["runs"] = args.runs
    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
