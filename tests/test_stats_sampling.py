"""--target-ci: the loop stops at the first check where the median's interval is tight enough, or at --max-time."""

import numpy as np
import pytest

from mobileseg.bench.sampling import SamplingRule, sample_until
from mobileseg.errors import MobilesegError
from mobileseg.results.stats import median_ci, sorted_halfwidth_rel


class FakeClock:
    """A clock that the fake call advances by the next seeded duration: the loop sees exactly those timings."""

    def __init__(self, durations_ms):
        self.now, self.durations = 0, iter(durations_ms)

    def __call__(self):
        return self.now

    def call(self, _):
        self.now += int(next(self.durations) * 1e6)


def _run(durations, **rule):
    clock = FakeClock(durations)
    r = SamplingRule(**rule)
    samples, _ = sample_until(clock.call, None, r, clock=clock)
    return samples, r


def test_stops_at_the_first_check_within_the_target():
    rng = np.random.default_rng(3)
    durations = 10.0 * rng.lognormal(0.0, 0.05, 100000)  # ~5% spread: needs a few hundred samples for 1%
    samples, rule = _run(durations, target_ci=1.0, max_time=1e6)
    n = len(samples)
    assert rule.state["reached"] is True
    assert sorted_halfwidth_rel(sorted(samples)) * 100 <= 1.0
    assert median_ci(samples)["median_ci_halfwidth_rel"] * 100 == pytest.approx(rule.state["halfwidth_pct"], abs=1e-3)
    # the check before the stop (5% fewer samples) was still too wide: it did not stop late ...
    checks = [10]
    while checks[-1] < n:
        checks.append(max(checks[-1] + 1, int(checks[-1] * 1.05)))
    assert checks[-1] == n
    assert sorted_halfwidth_rel(sorted(samples[: checks[-2]])) * 100 > 1.0
    assert 50 < n < 5000  # ... nor early


def test_a_quiet_cell_stops_at_the_minimum_count():
    samples, rule = _run([5.0 + 1e-4 * i for i in range(1000)], target_ci=1.0, max_time=1e6)
    assert len(samples) == 10 and rule.state["reached"]
    samples, rule = _run([5.0] * 1000, target_ci=1.0, max_time=1e6, repeats=30)  # --repeats: the minimum
    assert len(samples) == 30


def test_max_time_stops_a_noisy_cell_and_says_the_target_was_missed():
    rng = np.random.default_rng(4)
    samples, rule = _run(10.0 * rng.lognormal(0.0, 0.8, 100000), target_ci=0.1, max_time=2.0)
    assert rule.state["reached"] is False
    assert 1.9 <= sum(samples) / 1e3 <= 2.2  # 2 s of (fake) wall time, plus the call that crossed it
    assert rule.state["halfwidth_pct"] > 0.1
    rec = rule.record()
    assert rec["rule"] == "target-ci" and rec["target_ci_pct"] == 0.1 and rec["max_time_s"] == 2.0


@pytest.mark.parametrize(
    "bad", [{"target_ci": 0}, {"target_ci": -1}, {"target_ci": 1, "max_time": 0}, {"target_ci": 1, "min_time": 2.0}]
)
def test_bad_rules_are_one_sentence(bad):
    with pytest.raises(MobilesegError):
        SamplingRule(**bad)


def test_device_harness_interval_matches_the_host_one():
    from device_harness import load_harness

    harness = load_harness()
    rng = np.random.default_rng(5)
    for n in (6, 7, 20, 101, 400):
        x = sorted(rng.lognormal(1.0, 0.4, n).tolist())
        assert harness.median_ci_halfwidth(x) == pytest.approx(sorted_halfwidth_rel(x), rel=1e-12)
    assert harness.median_ci_halfwidth([1.0] * 5) is None
