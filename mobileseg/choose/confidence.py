"""Intervals for the median latency that stay valid however often the race looks at them.

A plain 95% interval looked at after every round is no longer 95%: a race that stops as soon as an interval clears
the budget picks up the optional-stopping bias racing methods (F-Race) are known for. We give a **confidence
sequence** built from the distribution-free order-statistics interval of the median
(:func:`mobileseg.results.stats.median_ci_ranks`) and a union bound:

* each candidate is looked at only at fixed sample counts ``n_k = ceil(first * growth**(k - 1))`` (10, 15, 23, 34,
  ...), and the interval at look ``k`` is computed from the candidate's first ``n_k`` samples;
* look ``k`` of one of ``K`` candidates uses the level ``1 - alpha / K * 6 / (pi^2 k^2)``; these error shares sum
  to ``alpha`` over every look of every candidate (sum of 1/k^2 = pi^2/6);
* so, whatever the race does with what it saw (which candidates it samples, when it stops), the probability that
  any interval it ever used misses its candidate's true median is at most ``alpha``; the running intersection of a
  candidate's intervals is then valid too, and is what the race uses.

The one assumption is the order-statistics interval's: the samples of one candidate are independent draws of one
distribution (docs/measurement.md). Drift (heat, load) breaks it; an empty running intersection is its symptom and
is reported (:attr:`Sequence.drifted`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..results.stats import median_ci_ranks, percentile

DEFAULT_ALPHA = 0.05
FIRST_LOOK = 10
GROWTH = 1.5


def look_sizes(first: int = FIRST_LOOK, growth: float = GROWTH, limit: int = 10**7):
    """The sample counts at which a candidate's interval is computed: ``first``, then growing by ``growth``."""
    n, k = first, 1
    while n <= limit:
        yield n
        k += 1
        n = max(n + 1, math.ceil(first * growth ** (k - 1)))


def next_look(n_have: int, first: int = FIRST_LOOK, growth: float = GROWTH) -> int:
    """The smallest look size above ``n_have`` samples."""
    for n in look_sizes(first, growth):
        if n > n_have:
            return n
    raise ValueError("no look size left")


def look_level(k: int, candidates: int, alpha: float = DEFAULT_ALPHA) -> float:
    """The confidence level of look ``k`` (1-based) of one of ``candidates`` candidates."""
    return 1.0 - alpha / max(1, candidates) * 6.0 / (math.pi**2 * k * k)


def interval_at(samples, level: float) -> tuple[float, float]:
    """The order-statistics interval of the median of ``samples`` at ``level`` (``(-inf, inf)`` when too few)."""
    values = sorted(samples)
    ranks = median_ci_ranks(len(values), level)
    if ranks is None:
        return -math.inf, math.inf
    return values[ranks[0]], values[ranks[1]]


@dataclass
class Sequence:
    """One candidate's confidence sequence: feed every sample in order; :attr:`low`/:attr:`high` is the running
    intersection of the intervals of every look taken so far. ``naive`` uses a plain ``1 - alpha`` interval at each
    look and no intersection: the uncorrected procedure, kept only to show (in the tests) why it is not used."""

    candidates: int
    alpha: float = DEFAULT_ALPHA
    first: int = FIRST_LOOK
    growth: float = GROWTH
    naive: bool = False
    samples: list = field(default_factory=list)
    looks: int = 0
    low: float = -math.inf
    high: float = math.inf
    drifted: bool = False
    _next: int = 0

    def __post_init__(self) -> None:
        self._next = self.first

    def add(self, values) -> bool:
        """Append samples; returns whether a look was taken (the interval may have moved)."""
        looked = False
        for v in values:
            self.samples.append(float(v))
            if len(self.samples) == self._next:
                self._look()
                looked = True
        return looked

    @property
    def next_size(self) -> int:
        return self._next

    def _look(self) -> None:
        self.looks += 1
        level = 1.0 - self.alpha if self.naive else look_level(self.looks, self.candidates, self.alpha)
        lo, hi = interval_at(self.samples, level)
        if self.naive:
            self.low, self.high = lo, hi
        else:
            new_lo, new_hi = max(self.low, lo), min(self.high, hi)
            if new_lo > new_hi:  # the true median cannot be in both: the samples drifted; trust the newest look
                self.drifted = True
                new_lo, new_hi = lo, hi
            self.low, self.high = new_lo, new_hi
        self._next = next_look(len(self.samples), self.first, self.growth)

    @property
    def median(self) -> float | None:
        return percentile(sorted(self.samples), 50) if self.samples else None

    @property
    def level(self) -> float | None:
        """The level of the last look (None before the first)."""
        if not self.looks:
            return None
        return 1.0 - self.alpha if self.naive else look_level(self.looks, self.candidates, self.alpha)

    def bounded(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)
