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


STATS_KEYS = ("median", "p10", "p90", "mean", "stdev", "min", "max", "count")  # a record's stats_ms, in order


def summarize(samples_ms) -> dict:
    """``{median, p10, p90, mean, stdev, min, max, count}`` of the samples (all kept, none discarded)."""
    values = sorted(float(v) for v in samples_ms)
    n = len(values)
    if n == 0:
        raise ValueError("no samples to summarize")
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {
        "median": percentile(values, 50),
        "p10": percentile(values, 10),
        "p90": percentile(values, 90),
        "mean": mean,
        "stdev": math.sqrt(var),
        "min": values[0],
        "max": values[-1],
        "count": n,
    }


# -- the 95% confidence interval of the median ------------------------------------------------------------------
#
# Distribution-free (order statistics): for n independent draws of a continuous distribution, the number of samples
# below the true median is Binomial(n, 1/2), so [x_(j), x_(n+1-j)] (1-based order statistics) covers the median with
# probability P(j <= B <= n - j), whatever the distribution. We take the largest j whose coverage is still >= 95%;
# the exact coverage is recorded (it is >= 0.95, e.g. 0.9586 for n = 20). Fewer than 6 samples cannot give 95%
# (j = 1 covers 1 - 2/2^n = 0.9375 at n = 5): the interval is then None. The assumption is independence: timing
# samples drift and come in bursts, so the interval is as honest as the samples are independent (docs/measurement.md).

CI_LEVEL = 0.95
CI_METHOD = "order-statistics"


def _binom_half_cdf(k: int, n: int) -> float:
    """P(B <= k) for B ~ Binomial(n, 1/2), in log space so that n = 100000 does not overflow."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    log_half_n = -n * math.log(2.0)
    lg = math.lgamma
    terms = [lg(n + 1) - lg(i + 1) - lg(n - i + 1) + log_half_n for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


_RANKS: dict = {}


def median_ci_ranks(n: int, level: float = CI_LEVEL) -> tuple[int, int, float] | None:
    """``(lo, hi, coverage)``: 0-based indices into the sorted samples of the distribution-free interval of the
    median and its exact coverage (>= ``level``), or None when ``n`` samples are too few for that level."""
    key = (n, level)
    if key in _RANKS:
        return _RANKS[key]
    out = None
    if n >= 1:
        # coverage(j) = 1 - 2 P(B <= j - 1) decreases with j: bisect for the largest j with coverage >= level
        lo_j, hi_j = 1, (n + 1) // 2
        if 1.0 - 2.0 * _binom_half_cdf(0, n) >= level:
            while lo_j < hi_j:
                mid = (lo_j + hi_j + 1) // 2
                if 1.0 - 2.0 * _binom_half_cdf(mid - 1, n) >= level:
                    lo_j = mid
                else:
                    hi_j = mid - 1
            j = lo_j
            out = (j - 1, n - j, 1.0 - 2.0 * _binom_half_cdf(j - 1, n))
    _RANKS[key] = out
    return out


def median_ci(samples_ms, level: float = CI_LEVEL) -> dict:
    """The ``stats_ms`` fields of the median's interval: ``median_ci_low``, ``median_ci_high`` (ms, None when too
    few samples), ``median_ci_level`` (the level asked), ``median_ci_coverage`` (exact, >= the level),
    ``median_ci_method`` and ``median_ci_halfwidth_rel``: max(median - low, high - median) / median, the wider side
    of the interval relative to the median (what ``--target-ci`` compares with)."""
    values = sorted(float(v) for v in samples_ms)
    ranks = median_ci_ranks(len(values), level)
    out = {
        "median_ci_low": None,
        "median_ci_high": None,
        "median_ci_level": level,
        "median_ci_coverage": None,
        "median_ci_method": CI_METHOD,
        "median_ci_halfwidth_rel": None,
    }
    if ranks is None:
        return out
    lo, hi, coverage = ranks
    med = percentile(values, 50)
    out.update(median_ci_low=values[lo], median_ci_high=values[hi], median_ci_coverage=round(coverage, 6))
    out["median_ci_halfwidth_rel"] = halfwidth_rel(med, values[lo], values[hi])
    return out


def halfwidth_rel(median: float, low: float, high: float) -> float | None:
    """The wider half of ``[low, high]`` around ``median``, relative to the median (None for a median of 0)."""
    if not median:
        return None
    return max(median - low, high - median) / abs(median)


def sorted_halfwidth_rel(sorted_values: list[float], level: float = CI_LEVEL) -> float | None:
    """:func:`median_ci`'s relative half-width of already sorted samples (cheap: the sampling loop calls it)."""
    ranks = median_ci_ranks(len(sorted_values), level)
    if ranks is None:
        return None
    return halfwidth_rel(percentile(sorted_values, 50), sorted_values[ranks[0]], sorted_values[ranks[1]])
