"""The 95% interval of the median: exact ranks against the binomial tables, and coverage on known distributions."""

import math

import numpy as np
import pytest

from mobileseg.results.stats import median_ci, median_ci_ranks, sorted_halfwidth_rel


def _coverage_by_hand(j: int, n: int) -> float:
    """P(j <= B <= n - j), B ~ Binomial(n, 1/2), with exact integers."""
    return sum(math.comb(n, i) for i in range(j, n - j + 1)) / 2**n


@pytest.mark.parametrize("n", [6, 7, 10, 20, 31, 50, 100, 257])
def test_ranks_are_the_widest_level_keeping_ones(n):
    lo, hi, coverage = median_ci_ranks(n)
    j = lo + 1  # 1-based order statistic
    assert hi == n - j
    assert coverage == pytest.approx(_coverage_by_hand(j, n), rel=1e-9)
    assert coverage >= 0.95
    if j + 1 <= (n + 1) // 2:  # one rank further in would drop below 95%
        assert _coverage_by_hand(j + 1, n) < 0.95


def test_known_table_values_and_too_few_samples():
    assert median_ci_ranks(20)[:2] == (5, 14)  # x(6)..x(15), the textbook n = 20 interval
    assert median_ci_ranks(5) is None  # 1 - 2/32 = 0.9375 < 0.95
    ci = median_ci([1.0, 2.0, 3.0])
    assert ci["median_ci_low"] is None and ci["median_ci_halfwidth_rel"] is None


def test_interval_fields_of_a_sample():
    ci = median_ci(list(range(1, 21)))
    assert (ci["median_ci_low"], ci["median_ci_high"]) == (6.0, 15.0)
    assert ci["median_ci_halfwidth_rel"] == pytest.approx(max(10.5 - 6, 15 - 10.5) / 10.5)
    assert sorted_halfwidth_rel([float(v) for v in range(1, 21)]) == ci["median_ci_halfwidth_rel"]


# Known distributions and their true medians; skewed and heavy-tailed ones are what latencies look like.
DISTRIBUTIONS = {
    "normal": (lambda rng, n: rng.normal(10.0, 1.0, n), 10.0),
    "lognormal": (lambda rng, n: rng.lognormal(1.0, 0.5, n), math.exp(1.0)),
    "exponential": (lambda rng, n: 5.0 + rng.exponential(2.0, n), 5.0 + 2.0 * math.log(2.0)),
    "pareto-tail": (lambda rng, n: 8.0 * (1.0 + rng.pareto(1.5, n)), 8.0 * 2 ** (1 / 1.5)),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("n", [12, 40, 200])
def test_coverage_on_500_seeded_trials(name, n):
    draw, true_median = DISTRIBUTIONS[name]
    rng = np.random.default_rng(1234 + n)
    covered = 0
    for _ in range(500):
        ci = median_ci(draw(rng, n))
        covered += ci["median_ci_low"] <= true_median <= ci["median_ci_high"]
    assert covered / 500 >= 0.90, f"{name}, n={n}: {covered}/500 intervals cover the true median"


def test_a_wrong_interval_would_fail_the_coverage_check():
    # The check can fail: the central p45..p55 band (a "too tight" interval) covers far less often.
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(500):
        x = np.sort(rng.lognormal(1.0, 0.5, 40))
        covered += np.percentile(x, 45) <= math.exp(1.0) <= np.percentile(x, 55)
    assert covered / 500 < 0.90
