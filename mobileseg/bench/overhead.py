"""What the harness itself costs, and how fast this core multiplies matrices.

* ``time_calls`` is THE timing loop of the local harness: warm-up calls (not kept), then timed calls, each bracketed
  by ``time.perf_counter_ns`` around the call only; every sample is kept.
* ``measure_overhead`` runs that same loop around an empty call: its median is what the loop adds to every sample.
* ``measure_sgemm`` times a square fp32 matrix product on one thread, the reference rate that a model's achieved
  MAC rate is compared against.
"""

from __future__ import annotations

import time

_NS_PER_MS = 1e6


def time_calls(
    fn,
    arg,
    warmup: int,
    repeats: int | None = None,
    min_time: float | None = None,
    min_repeats: int = 3,
    max_repeats: int = 100000,
):
    """Call ``fn(arg)`` ``warmup`` times, then time it ``repeats`` times (or until ``min_time`` seconds of timed
    calls and at least ``min_repeats`` calls). Returns ``(samples_ms, last_result)``."""
    if repeats is None and min_time is None:
        raise ValueError("give repeats or min_time")
    result = None
    for _ in range(warmup):
        result = fn(arg)
    clock = time.perf_counter_ns
    samples = []
    total_ns = 0
    budget_ns = None if min_time is None else int(min_time * 1e9)
    while True:
        t0 = clock()
        result = fn(arg)
        t1 = clock()
        samples.append((t1 - t0) / _NS_PER_MS)
        total_ns += t1 - t0
        n = len(samples)
        if repeats is not None and n >= repeats:
            break
        if budget_ns is not None and total_ns >= budget_ns and n >= min_repeats:
            break
        if n >= max_repeats:
            break
    return samples, result


def timed_cell(fn, arg, warmup: int, repeats=None, min_time=None, sampling=None):
    """One cell's calls after the load: the first call timed on its own (the first-inference time; it counts as one
    of the ``warmup`` runs, or is one extra untimed run when ``warmup`` is 0), the rest of the warm-up, then the
    timed calls (:func:`time_calls`, or :func:`mobileseg.bench.sampling.sample_until` for ``--target-ci``).
    Returns ``(samples_ms, last_result, first_run_ms)``."""
    t0 = time.perf_counter_ns()
    fn(arg)
    first_ms = (time.perf_counter_ns() - t0) / _NS_PER_MS
    rest = max(0, int(warmup) - 1)
    if sampling is not None and sampling.adaptive:
        from .sampling import sample_until

        for _ in range(rest):
            fn(arg)
        samples, result = sample_until(fn, arg, sampling)
    else:
        samples, result = time_calls(fn, arg, rest, repeats, min_time)
    return samples, result, first_ms


def _empty(_):
    return None


def measure_overhead(repeats: int = 2000) -> float:
    """Median cost (ms) of one timed iteration of :func:`time_calls` around an empty call."""
    from ..results.stats import summarize

    samples, _ = time_calls(_empty, None, warmup=100, repeats=repeats)
    return summarize(samples)["median"]


def measure_sgemm(n: int = 1024, min_time: float = 1.0, warmup: int = 2) -> dict:
    """Single-thread fp32 SGEMM rate of the calling core: C = A @ B with A, B n x n.

    Uses torch (its MKL/oneDNN/OpenBLAS sgemm) with ``torch.set_num_threads(1)`` and numpy (its BLAS); the caller is
    expected to be pinned to one core already. Rates count one multiply-accumulate per (i, j, k): ``n**3 / t``
    (``gflop_s`` is twice that). The best of the two libraries is the reference ``macs_per_s``.
    """
    import numpy as np

    out = {"n": n, "dtype": "float32", "threads": 1, "libraries": {}}
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    try:
        import torch

        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            with torch.inference_mode():
                samples, _ = time_calls(lambda _: torch.mm(ta, tb), None, warmup, min_time=min_time)
        finally:
            torch.set_num_threads(prev)
        out["libraries"]["torch"] = _rate(samples, n, f"torch {torch.__version__}")
    except ImportError:
        pass
    samples, _ = time_calls(lambda _: a @ b, None, warmup, min_time=min_time)
    out["libraries"]["numpy"] = _rate(samples, n, f"numpy {np.__version__}")
    best = max(out["libraries"].values(), key=lambda r: r["macs_per_s"])
    out.update(
        best=best["library"],
        macs_per_s=best["macs_per_s"],
        gflop_s=2 * best["macs_per_s"] / 1e9,
        median_ms=best["median_ms"],
    )
    return out


def _rate(samples, n, library) -> dict:
    from ..results.stats import summarize

    s = summarize(samples)
    return {
        "library": library,
        "median_ms": s["median"],
        "count": s["count"],
        "macs_per_s": n**3 / (s["median"] / 1e3),
        "gflop_s": 2 * n**3 / (s["median"] / 1e3) / 1e9,
    }
