"""Summary statistics of per-iteration latencies (milliseconds).

Percentiles use linear interpolation between order statistics (numpy's default, "type 7"), so p50 equals the usual
median; ``stdev`` is the sample standard deviation (n - 1 in the denominator; 0.0 for a single sample).
"""
from __future__ import annotations

import math


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, by linear interpolation."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def summarize(samples_ms) -> dict:
    """``{median, p10, p90, mean, stdev, min, max, count}`` of the samples (all kept, none discarded)."""
    values = sorted(float(v) for v in samples_ms)
    n = len(values)
    if n == 0:
        raise ValueError("no samples to summarize")
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {"median": percentile(values, 50), "p10": percentile(values, 10), "p90": percentile(values, 90),
            "mean": mean, "stdev": math.sqrt(var), "min": values[0], "max": values[-1], "count": n}
