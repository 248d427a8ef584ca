"""ncnn adapter (pnnx-converted ``.param``/``.bin``).

Facts that change the numbers (docs/converters.md): ``ncnn.Mat(ndarray)`` does not copy, so the input array is kept
alive on the session until extraction is done; ncnn silently uses fp16 storage/arithmetic where the CPU has it
unless the ``use_fp16_*``/``use_bf16_*`` switches are set, so they are always set explicitly from ``precision``.
The same session runs on a Vulkan device when given one (``ncnn-vulkan``, :mod:`mobileseg.runtimes.ncnn_vulkan`).
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import require
from .. import formats
from .base import Runtime, Session, check_threads, output_shape
from .capture import RuntimeTensor
from .ncnn_param import read_param

_FP16_SWITCHES = ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic")


class NcnnSession(Session):
    def __init__(
        self,
        param: str,
        binary: str,
        threads: int,
        precision: str,
        input_name: str | None,
        output_name: str | None,
        out_shape,
        out_dtype,
        vulkan_device: int | None = None,
    ):
        ncnn = require("ncnn", "ncnn", "running ncnn artifacts")
        self._ncnn = ncnn
        net = ncnn.Net()
        opt = net.opt
        opt.num_threads = threads  # on Vulkan: the CPU threads of layers without a shader
        opt.use_vulkan_compute = vulkan_device is not None
        if vulkan_device is not None:
            net.set_vulkan_device(vulkan_device)  # explicitly, not ncnn's default pick among several GPUs
        fp16 = precision == "fp16"
        for s in _FP16_SWITCHES:
            setattr(opt, s, fp16)
        opt.use_bf16_storage = False
        if net.load_param(param) != 0:
            raise RuntimeError(f"ncnn cannot load {param} (an unsupported layer? see the export manifest)")
        if net.load_model(binary) != 0:
            raise RuntimeError(f"ncnn cannot load weights {binary}")
        self._net = net
        self.input_name = input_name or net.input_names()[0]
        self.output_name = output_name or net.output_names()[0]
        self._out_shape = out_shape
        self._out_dtype = np.dtype(out_dtype) if out_dtype else None
        self._keep = None
        self.settings = {
            "threads": threads,
            "vulkan": vulkan_device is not None,
            "light_mode": True,
            **{s: fp16 for s in _FP16_SWITCHES},
            "use_bf16_storage": False,
            "use_packing_layout": bool(opt.use_packing_layout),
            "use_winograd_convolution": bool(opt.use_winograd_convolution),
            "use_sgemm_convolution": bool(opt.use_sgemm_convolution),
        }

    def run(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 4:
            if x.shape[0] != 1:
                raise ValueError(f"ncnn runs batch 1 only, got input of shape {list(x.shape)}")
            x = x[0]
        # ncnn.Mat wraps this buffer without copying: hold it on self until the output has been copied out.
        self._keep = np.ascontiguousarray(x, dtype=np.float32)
        ex = self._net.create_extractor()
        try:
            ex.set_light_mode(True)
            ex.input(self.input_name, self._ncnn.Mat(self._keep))
            ret, mat = ex.extract(self.output_name)
            if ret != 0:
                raise RuntimeError(f"ncnn extract of '{self.output_name}' failed (code {ret})")
            out = np.array(mat, copy=True)
        finally:
            # A Ctrl-C here keeps this frame alive in its traceback; the extractor and its blobs would then outlive
            # close()'s net.clear() and ncnn aborts with "pool allocator destroyed too early". Drop them now.
            ex = mat = None
            self._keep = None
        if self._out_shape is not None and out.size == int(np.prod(self._out_shape)):
            out = out.reshape(self._out_shape)
        else:
            out = out[None]
        if self._out_dtype is not None and out.dtype != self._out_dtype:
            out = np.rint(out).astype(self._out_dtype) if self._out_dtype.kind in "iu" else out.astype(self._out_dtype)
        return out

    def close(self) -> None:
        if self._net is not None:
            self._net.clear()
            self._net = None


class NcnnRuntime(Runtime):
    name = "ncnn"

    def vulkan(self) -> tuple[int | None, dict]:
        """The Vulkan device index to run on (None: the CPU) and what to record about it."""
        return None, {}

    def version(self) -> str:
        return require("ncnn", "ncnn", "running ncnn artifacts").__version__

    def load(self, export_dir_or_manifest, fmt_entry=None, threads: int = 1, precision: str = "fp32") -> NcnnSession:
        threads = check_threads(threads)
        _, man, entry, paths = self.artifact(export_dir_or_manifest, fmt_entry)
        param, binary = paths[0], formats.side_file(self.format, paths)
        out = man.get("output") or {}
        index, device = self.vulkan()
        sess = NcnnSession(
            param,
            binary,
            threads,
            precision,
            entry.get("input_name"),
            entry.get("output_name"),
            output_shape(man),
            out.get("dtype"),
            vulkan_device=index,
        )
        sess.settings["precision"] = precision
        sess.settings.update(device)
        return sess

    def intermediates(self, files, x, precision="fp32") -> list[RuntimeTensor]:
        """Every layer's output blob, extracted from one extractor out of light mode (``Split`` copies skipped), with
        the fp16 switches of ``precision`` (on this adapter's Vulkan device, if it has one)."""
        param, binary = files[0], files[1]
        index, _ = self.vulkan()
        sess = NcnnSession(param, binary, 1, precision, None, None, None, None, vulkan_device=index)
        ncnn = sess._ncnn
        layers = read_param(param)
        out = []
        keep = np.ascontiguousarray(x[0] if x.ndim == 4 else x, dtype=np.float32)
        ex = sess._net.create_extractor()
        try:
            ex.set_light_mode(False)
            ex.input(sess.input_name, ncnn.Mat(keep))
            for typ, name, _ins, outs in layers:
                if typ in ("Input", "Split"):
                    continue
                for blob in outs:
                    ret, mat = ex.extract(blob)
                    if ret != 0:
                        continue
                    out.append(RuntimeTensor(len(out), f"{name}:{blob}", typ, np.array(mat, copy=True)))
        finally:
            ex = mat = None
            sess.close()
        return out

    def op_profile(self, export_dir, fmt_entry, x, runs, threads=1) -> dict:
        """Each layer timed by extracting its output blobs in order from one extractor out of light mode (the ncnn
        wheel has no NCNN_BENCHMARK), fp32 on the CPU; raw, as the device's ``profile_ops.py`` writes it, plus the
        cost of one extract of a blob already computed (``extract_overhead_ms``, the median of 21, median over the
        runs) and one whole inference timed the usual way (``whole_inference_ms``)."""
        ncnn = require("ncnn", "ncnn", "running ncnn artifacts")
        param, weights = self.entry_files(export_dir, fmt_entry)
        net = ncnn.Net()
        net.opt.num_threads = threads
        for switch in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
            setattr(net.opt, switch, False)
        net.load_param(str(param))
        net.load_model(str(weights))
        layers = net.layers()
        input_name = (fmt_entry or {}).get("input_name") or net.input_names()[0]
        data = np.ascontiguousarray(x[0] if x.ndim == 4 else x, dtype=np.float32)
        times, types, overheads, wholes = {}, {}, [], []
        for run in range(runs + 1):  # the first pass is a warm-up
            ex = net.create_extractor()
            ex.set_light_mode(False)  # keep every blob: each extract then computes only the layers not yet run
            ex.input(input_name, ncnn.Mat(data))
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
            if run:  # what one extract of an already computed blob costs: the binding's share of every layer's time
                costs = []
                for _ in range(21):
                    t0 = time.perf_counter_ns()
                    _ret, mat = ex.extract(int(layers[-1].tops[0]))
                    costs.append((time.perf_counter_ns() - t0) / 1e6)
                    del mat
                overheads.append(sorted(costs)[10])
            del ex  # an extractor's blobs must go before the net's allocators do
            if run:  # a whole inference the usual way, for scale
                ex = net.create_extractor()
                ex.set_light_mode(True)
                ex.input(input_name, ncnn.Mat(data))
                t0 = time.perf_counter_ns()
                _ret, mat = ex.extract(net.output_names()[0])
                wholes.append((time.perf_counter_ns() - t0) / 1e6)
                del mat, ex
        return {
            "source": "ncnn-layer-extract",
            "runs": runs,
            "times": times,
            "types": types,
            "extract_overhead_ms": sorted(overheads)[len(overheads) // 2],
            "whole_inference_ms": sorted(wholes)[len(wholes) // 2],
        }
