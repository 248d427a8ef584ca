"""The official benchmark binaries: TFLite's ``benchmark_model`` and ONNX Runtime's ``onnxruntime_perf_test``.

The user supplies the binaries built for the device (``--tflite-benchmark PATH``, ``--ort-perf-test PATH``); they are
pushed once (sha256-checked) and run at the cell's thread count under the same ``taskset`` pinning as the harnesses.
They report timings only, so their records say ``parity: {"checked": false}``.

What each tool reports (parsed from their documented output):

- ``benchmark_model`` prints one ``count=N first=.. curr=.. min=.. max=.. avg=.. std=..`` line (microseconds) for the
  warm-up runs and one for the timed runs, then ``Inference timings in us: Init: .., First inference: ..,
  Warmup (avg): .., Inference (avg): ..``. No per-iteration times: ``samples_ms`` stays empty and ``stats_ms`` holds
  what the tool summarised (no median: it prints none).
- ``onnxruntime_perf_test MODEL RESULT_FILE`` appends one CSV line per run to RESULT_FILE
  (``model,seconds,peak_working_set,cpu_usage,run_index``) and prints ``Total inference requests``,
  ``Average inference time cost: X ms``, ``Min/Max/P50/P90/P95/P99/P999 Latency: X s`` (older releases:
  ``Total iterations:N``, ``Average time cost:X ms``, ``P50 Latency is Xsec``). The per-run CSV gives every sample.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import tempfile
from pathlib import Path

from .. import formats
from ..errors import MobilesegError
from . import marks
from ..results.stats import STATS_KEYS
from .harness_driver import HarnessDriver
from .native import REMOTE_ROOT, push_checked, sha256_file

TFLITE_TOOL = "benchmark_model"
ORT_TOOL = "onnxruntime_perf_test"
TOOL_RUNTIMES = {TFLITE_TOOL: "litert", ORT_TOOL: "onnxruntime"}  # the runtime each binary times


class OfficialToolError(MobilesegError):
    """An official benchmark binary is missing, failed, or printed nothing we can read."""


_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def _stats(summary: dict) -> dict:
    return {k: summary.get(k) for k in STATS_KEYS}


# -- benchmark_model --------------------------------------------------------------------------------------------------


def parse_benchmark_model(text: str) -> dict:
    """Timings from ``benchmark_model`` output (stdout and stderr together).

    Returns ``{tool, samples_ms: [], stats_ms, warmup {count, first_ms, mean_ms}, init_ms, threads, settings}``.
    """
    runs = []
    for m in re.finditer(r"count=(\d+)((?:\s+\w+=" + _NUM + r")+)", text):
        fields = {k: float(v) for k, v in re.findall(r"(\w+)=" + _NUM, m.group(0))}
        runs.append(fields)
    summary = re.search(r"Inference timings in us:(.*)", text)
    if not runs or not summary:
        tail = text.strip().splitlines()[-3:] if text.strip() else ["no output"]
        raise OfficialToolError(
            f"{TFLITE_TOOL} printed no timings (last lines: {' | '.join(tail)}): run it by hand "
            "on the device to see why (wrong --graph, unsupported op, wrong architecture)"
        )
    us = {k.strip().lower(): float(v) for k, v in re.findall(r"([A-Za-z][A-Za-z ()]*?):\s*" + _NUM, summary.group(1))}
    timed = runs[-1]
    warm = runs[0] if len(runs) > 1 else None
    ms = lambda v: None if v is None else v / 1000.0  # noqa: E731 - the tool prints microseconds
    stats = _stats(
        {
            "mean": ms(timed.get("avg")),
            "stdev": ms(timed.get("std")),
            "min": ms(timed.get("min")),
            "max": ms(timed.get("max")),
            "count": int(timed["count"]),
        }
    )
    settings = {}
    for label, key in (
        ("Num threads", "num_threads"),
        ("Use xnnpack", "use_xnnpack"),
        ("Allow fp16", "allow_fp16"),
        ("#threads used for CPU inference", "cpu_threads"),
    ):
        m = re.search(re.escape(label) + r"\s*:\s*\[([^\]]*)\]", text)
        if m:
            settings[key] = m.group(1).strip()
    threads = settings.get("num_threads") or settings.get("cpu_threads")
    return {
        "tool": TFLITE_TOOL,
        "samples_ms": [],
        "stats_ms": stats,
        "warmup": {
            "count": int(warm["count"]) if warm else None,
            "first_ms": ms(us.get("first inference")),
            "mean_ms": ms(us.get("warmup (avg)")),
        },
        "init_ms": ms(us.get("init")),
        "inference_avg_ms": ms(us.get("inference (avg)")),
        "threads": int(threads) if threads and threads.lstrip("-").isdigit() else None,
        "settings": settings,
    }


# -- onnxruntime_perf_test --------------------------------------------------------------------------------------------


def parse_perf_test_results(text: str) -> list[float]:
    """Per-run times (ms) from the RESULT_FILE of ``onnxruntime_perf_test`` (CSV lines ``model,seconds,...``)."""
    samples = []
    for line in text.splitlines():
        parts = line.strip().split(",")
        if len(parts) >= 2:
            try:
                samples.append(float(parts[1]) * 1000.0)
            except ValueError:
                continue
    return samples


def parse_perf_test(stdout: str, result_file: str | None = None) -> dict:
    """Timings from ``onnxruntime_perf_test`` stdout and (when given) its per-run result file."""

    def grab(*patterns):
        for p in patterns:
            m = re.search(p, stdout)
            if m:
                return float(m.group(1))
        return None

    lat = {}
    for name in ("Min", "Max", "P50", "P90", "P95", "P99", "P999"):
        v = grab(rf"{name} Latency:\s*{_NUM}\s*s\b", rf"{name} Latency is\s*{_NUM}\s*sec")
        if v is not None:
            lat[name.lower()] = v * 1000.0
    count = grab(r"Total inference requests:\s*(\d+)", r"Total iterations:\s*(\d+)", r"\bRuns:\s*(\d+)")
    mean = grab(rf"Average inference time cost:\s*{_NUM}\s*ms", rf"Average time cost:\s*{_NUM}\s*ms")
    samples = parse_perf_test_results(result_file) if result_file else []
    if not samples and mean is None and not lat:
        tail = stdout.strip().splitlines()[-3:] if stdout.strip() else ["no output"]
        raise OfficialToolError(
            f"{ORT_TOOL} printed no timings (last lines: {' | '.join(tail)}): run it by hand on "
            "the device to see why (model path, missing input data, wrong architecture)"
        )
    if samples:
        from ..results.stats import summarize

        stats = _stats(summarize(samples))
    else:
        stats = _stats(
            {
                "median": lat.get("p50"),
                "p90": lat.get("p90"),
                "mean": mean,
                "min": lat.get("min"),
                "max": lat.get("max"),
                "count": int(count) if count is not None else None,
            }
        )
    first = grab(rf"First inference time cost:\s*{_NUM}\s*ms")
    init = grab(rf"Session creation time cost:\s*{_NUM}\s*s")
    return {
        "tool": ORT_TOOL,
        "samples_ms": samples,
        "stats_ms": stats,
        "tool_percentiles_ms": lat,
        "tool_mean_ms": mean,
        "warmup": {"count": 1, "first_ms": first, "mean_ms": first},
        "init_ms": None if init is None else init * 1000.0,
        "threads": None,
        "settings": {},
    }


# -- running them on the device ---------------------------------------------------------------------------------------


class OfficialTool:
    """One user-supplied official benchmark binary on one device."""

    def __init__(self, kind: str, binary, remote_root: str = REMOTE_ROOT):
        if kind not in (TFLITE_TOOL, ORT_TOOL):
            raise OfficialToolError(f"unknown official tool {kind!r}: {TFLITE_TOOL} or {ORT_TOOL}")
        self.kind = kind
        self.binary = Path(binary).expanduser()
        flag = "--tflite-benchmark" if kind == TFLITE_TOOL else "--ort-perf-test"
        if not self.binary.is_file():
            raise OfficialToolError(f"{flag} {binary}: no such file; give the path of {kind} built for the device")
        self.remote_root = remote_root.rstrip("/")
        self.remote_binary: str | None = None

    @property
    def runtime(self) -> str:
        return TOOL_RUNTIMES[self.kind]

    @property
    def fmt(self) -> str:
        return formats.runtime_format(self.runtime)

    def prepare(self, device) -> str:
        if self.remote_binary is None:
            remote = f"{self.remote_root}/bin/{self.kind}-{sha256_file(self.binary)[:12]}"
            push_checked(device, self.binary, remote, mode="755")
            self.remote_binary = remote
        return self.remote_binary

    def command(
        self,
        remote_model: str,
        threads: int,
        warmup: int,
        repeats: int | None,
        min_time: float | None,
        result_file: str | None = None,
    ) -> str:
        q = shlex.quote
        if self.kind == TFLITE_TOOL:
            args = [
                q(self.remote_binary or ""),
                f"--graph={q(remote_model)}",
                f"--num_threads={int(threads)}",
                f"--warmup_runs={max(int(warmup), 1)}",
                "--warmup_min_secs=0",
            ]
            if repeats:
                args += [f"--num_runs={int(repeats)}", "--min_secs=0"]
            else:
                args += ["--num_runs=3", f"--min_secs={float(min_time or 1.0)}"]
        else:
            # -I: generated inputs (timings only); -x/-y: intra/inter-op threads; -m times -r N: a fixed count.
            n = int(repeats) if repeats else 0
            mode = ["-m", "times", "-r", str(n)] if n else ["-m", "duration", "-t", str(max(1, round(min_time or 1)))]
            args = [
                q(self.remote_binary or ""),
                "-e",
                "cpu",
                "-I",
                "-x",
                str(int(threads)),
                "-y",
                "1",
                *mode,
                q(remote_model),
                q(result_file or ""),
            ]
        return " ".join(args)

    def execute(self, device, remote_dir: str, cmd: str, result_file: str | None, timeout: float) -> dict:
        """Run ``cmd`` in ``remote_dir`` on the device and parse the tool's output (and its result file)."""
        if result_file:
            device.shell(f"rm -f {shlex.quote(result_file)}", timeout=60)
        rc, out = device.shell(f"cd {shlex.quote(remote_dir)} && {cmd} 2>&1", timeout=timeout)
        if rc != 0:
            raise OfficialToolError(
                f"{self.kind} failed on the device (exit {rc}): {out.strip()[-300:] or 'no output'}"
            )
        if self.kind == TFLITE_TOOL:
            return parse_benchmark_model(out)
        with tempfile.TemporaryDirectory(prefix="mobileseg-ort-") as tmp:
            local = Path(tmp) / "results.csv"
            device.pull(result_file, str(local))
            return parse_perf_test(out, local.read_text())


class OfficialToolDriver(HarnessDriver):
    """The harness driver (:class:`~mobileseg.device.harness_driver.HarnessDriver`) of an official binary.

    ``run`` returns ``(samples_ms, None, info)``: these tools give timings only, so there is no output to compare and
    ``info["parity"]`` is ``{"checked": False}``; ``info["stats_ms"]`` holds the tool's own summary when it printed
    no per-run times (``benchmark_model``).
    """

    needs_input = False  # the tools generate their own input (timings only)

    def __init__(self, kind: str, binary, remote_root: str = REMOTE_ROOT, version: str | None = None):
        self.tool = OfficialTool(kind, binary, remote_root)
        self.name = kind
        self.version = version  # e.g. nightly-2026-01-01 for a binary fetched by mobileseg tools fetch
        self._sha256: str | None = None

    def supports(self, runtime: str, description: dict) -> str | None:
        if runtime != self.tool.runtime:
            return f"{self.tool.kind} times {self.tool.runtime} models only, not '{runtime}'"
        return None

    def prepare(self, device) -> None:
        self.tool.prepare(device)

    def run(
        self, device, cell, artifact: dict, *, mask: str | None, warmup: int, repeats, min_time, timeout: float = 3600.0
    ):
        tool = self.tool
        tool.prepare(device)
        rdir = artifact["dir"]
        result_file = (
            posixpath.join(rdir, f"{ORT_TOOL}_t{cell.threads}_{marks.run_token()}.csv")  # this run's own
            if tool.kind == ORT_TOOL
            else None
        )
        cmd = tool.command(artifact["model"], cell.threads, warmup, repeats, min_time, result_file)
        affinity = []
        if mask and "taskset" in (artifact.get("tools") or ["taskset"]):
            cmd = f"taskset {mask} {cmd}"
            bits = int(str(mask), 16)
            affinity = [c for c in range(bits.bit_length()) if bits >> c & 1]
        try:
            info = tool.execute(device, rdir, cmd, result_file, timeout)
        finally:
            if result_file:
                marks.remove(device, result_file)
        if self._sha256 is None:
            self._sha256 = sha256_file(tool.binary)
        info.update(
            {
                "harness": tool.kind,
                "runtime": tool.runtime,
                "command": cmd,
                "affinity": affinity,
                "parity": {"checked": False, "reason": f"{tool.kind} reports timings only"},
                "settings": {
                    **info["settings"],
                    "threads": cell.threads,
                    "harness": tool.kind,
                    "binary": tool.binary.name,
                    "binary_sha256": self._sha256,
                    **({"binary_version": self.version} if self.version else {}),
                    "remote_binary": tool.remote_binary,
                    "warmup_runs": max(int(warmup), 1),
                },
            }
        )
        return list(info["samples_ms"]), None, info

    def op_profile_text(
        self, device, cell, artifact: dict, *, mask: str | None, runs: int = 10, timeout: float = 3600.0
    ) -> str | None:
        """benchmark_model's output with ``--enable_op_profiling=true`` (its operator-wise table; parsed by
        :func:`mobileseg.bench.profile.parse_benchmark_model`), or None for a tool without an op profiler."""
        tool = self.tool
        if tool.kind != TFLITE_TOOL:
            return None
        tool.prepare(device)
        cmd = tool.command(artifact["model"], cell.threads, 1, runs, None) + " --enable_op_profiling=true"
        if mask and "taskset" in (artifact.get("tools") or ["taskset"]):
            cmd = f"taskset {mask} {cmd}"
        rc, out = device.shell(f"cd {shlex.quote(artifact['dir'])} && {cmd} 2>&1", timeout=timeout)
        if rc != 0:
            raise OfficialToolError(f"{tool.kind} --enable_op_profiling failed (exit {rc}): {out.strip()[-300:]}")
        return out

    def op_profile(self, device, cell, artifact: dict, *, mask: str | None, timeout: float = 3600.0, runs: int = 10):
        """benchmark_model's op-profiling table (read by ``benchmark_model``); None for onnxruntime_perf_test."""
        text = self.op_profile_text(device, cell, artifact, mask=mask, runs=runs, timeout=timeout)
        return None if text is None else ("benchmark_model", text)
