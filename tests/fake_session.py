"""A fake runtime for the measurement tests: a known load allocation, a known per-call allocation and a known,
busy-waited call time (so the memory definitions and the sampling rules are checked against known truths)."""

from __future__ import annotations

import json
import mmap
import os
import time

import numpy as np

MB = 2**20


def _resident(mb: int) -> mmap.mmap:
    """``mb`` MB of fresh anonymous pages, every page written (resident). Not numpy: after earlier tests freed
    memory, malloc can serve an allocation from pages that are already resident, and RSS would not grow."""
    m = mmap.mmap(-1, max(mb, 1) * MB)
    if mb:
        view = np.frombuffer(m, dtype=np.uint8)
        view[:: mmap.PAGESIZE] = 1
        del view
    return m


class FakeSession:
    def __init__(self, load_mb: int, run_mb: int, call_ms, settings=None, sleep: bool = False):
        self.sleep = sleep  # sleep instead of busy-waiting: off the CPU, so a shared core stretches it least
        self.weights = _resident(load_mb)
        self.run_mb = run_mb
        self.call_ms = call_ms  # a number, or a callable returning the next call's milliseconds
        self.settings = settings or {"fake": True}

    def run(self, x):
        if self.run_mb:
            _resident(self.run_mb).close()  # transient, unmapped before the call returns
        ms = self.call_ms() if callable(self.call_ms) else self.call_ms
        if self.sleep:
            time.sleep(ms / 1e3)
            return x[:, :1]
        end = time.perf_counter_ns() + int(ms * 1e6)
        while time.perf_counter_ns() < end:  # busy wait: the call takes (at least) ms
            pass
        return x[:, :1]

    def close(self):
        if self.weights is not None:
            self.weights.close()
        self.weights = None


class FakeRuntime:
    name = "fake"
    format = "onnx"

    def __init__(self, load_mb=0, run_mb=0, call_ms=1.0, load_ms=0.0):
        self.load_mb, self.run_mb, self.call_ms, self.load_ms = load_mb, run_mb, call_ms, load_ms

    def version(self):
        return "0"

    def check(self):
        return None

    def load(self, export_dir, fmt_entry, threads=1, precision="fp32"):
        time.sleep(self.load_ms / 1e3)
        return FakeSession(self.load_mb, self.run_mb, self.call_ms)


def first_slow(first_ms, then_ms):
    """call_ms for a session whose first call takes first_ms and every later one then_ms."""
    calls = []

    def next_ms():
        calls.append(1)
        return first_ms if len(calls) == 1 else then_ms

    return next_ms


class Cell:
    def __init__(self, runtime="onnxruntime", fmt="onnx"):
        self.runtime, self.format, self.threads, self.precision, self.graph = runtime, fmt, 1, "fp32", "logits"
        self.model, self.resolution = "fake", (8, 8)

    def label(self):
        return "fake 8x8"


def export_dir(tmp_path, h=8):
    """A minimal export folder: reference input/output and a manifest naming an onnx artifact."""
    ref = tmp_path / "reference"
    ref.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).standard_normal((1, 3, h, h), dtype=np.float32)
    np.save(ref / "input.npy", x)
    np.save(ref / "output.npy", x[:, :1])
    man = {
        "schema_version": 1,
        "model": "fake",
        "resolution": [h, h],
        "graph": "logits",
        "precision": "fp32",
        "formats": {"onnx": {"ok": True, "files": [{"path": "model.onnx", "sha256": "ab" * 32}]}},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    return tmp_path, man


def use_fake_runtime(monkeypatch, runtime: FakeRuntime) -> None:
    import mobileseg.runtimes as runtimes

    monkeypatch.setattr(runtimes, "get_runtime", lambda name: runtime)
    os.environ.setdefault("MOBILESEG_FAKE", "1")
