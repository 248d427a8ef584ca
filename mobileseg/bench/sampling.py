"""When a cell has enough samples: a fixed count, seconds of timed calls, or a target width of the median's interval.

``--target-ci PCT`` keeps sampling until the 95% interval of the median (:func:`mobileseg.results.stats.median_ci`)
has a relative half-width -- the wider side, max(median - low, high - median) / median -- of at most PCT percent,
or until ``--max-time`` seconds of wall time (from the first timed call) ran out, or ``max_repeats`` calls. The
interval is re-checked whenever the sample count grew by 5% (so the check costs O(n log n) in total, and the loop
stops at most 5% later than it could), and never before ``min_repeats`` samples (``--repeats`` when given, else 10).
The device harnesses (``device_scripts/``) apply the same rule with their own copy of the interval ranks.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

from ..errors import MobilesegError

DEFAULT_MAX_TIME_S = 30.0
DEFAULT_MIN_REPEATS = 10


@dataclass
class SamplingRule:
    """How many timed calls a cell gets; :meth:`record` is the record's ``sampling`` field."""

    repeats: int | None = None
    min_time: float | None = None
    target_ci: float | None = None  # percent
    max_time: float | None = None  # seconds
    max_repeats: int = 100000
    # filled by the loop
    state: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target_ci is not None:
            if not self.target_ci > 0:
                raise MobilesegError(f"--target-ci must be a percentage above 0, such as 1, not {self.target_ci:g}")
            if self.min_time is not None:
                raise MobilesegError("give --target-ci (with --max-time) or --min-time, not both")
            if self.max_time is None:
                self.max_time = DEFAULT_MAX_TIME_S
        if self.max_time is not None and not self.max_time > 0:
            raise MobilesegError(f"--max-time must be a number of seconds above 0, not {self.max_time:g}")

    @property
    def adaptive(self) -> bool:
        return self.target_ci is not None

    @property
    def min_repeats(self) -> int:
        return max(6, int(self.repeats)) if self.repeats else DEFAULT_MIN_REPEATS

    def record(self) -> dict:
        if not self.adaptive:
            return {
                "rule": "repeats" if self.repeats is not None else "min-time",
                "repeats": self.repeats,
                "min_time_s": self.min_time,
            }
        return {
            "rule": "target-ci",
            "target_ci_pct": self.target_ci,
            "max_time_s": self.max_time,
            "min_repeats": self.min_repeats,
            "halfwidth": "max(median - low, high - median) / median",
            **self.state,
        }


def sample_until(fn, arg, rule: SamplingRule, clock=time.perf_counter_ns):
    """Time ``fn(arg)`` until ``rule`` (adaptive) is met; returns ``(samples_ms, last_result)`` and fills
    ``rule.state`` with ``reached`` (the target was met), ``halfwidth_pct`` (at the stop) and ``elapsed_s``."""
    from ..results.stats import sorted_halfwidth_rel

    samples, ordered = [], []
    result = None
    start = clock()
    next_check = rule.min_repeats
    budget = int(rule.max_time * 1e9)
    hw = None
    reached = False
    while True:
        t0 = clock()
        result = fn(arg)
        t1 = clock()
        ms = (t1 - t0) / 1e6
        samples.append(ms)
        bisect.insort(ordered, ms)
        n = len(samples)
        if n >= next_check:
            hw = sorted_halfwidth_rel(ordered)
            next_check = max(n + 1, int(n * 1.05))
            if hw is not None and hw * 100 <= rule.target_ci:
                reached = True
                break
        if t1 - start >= budget or n >= rule.max_repeats:
            hw = sorted_halfwidth_rel(ordered)
            reached = hw is not None and hw * 100 <= rule.target_ci
            break
    rule.state = {
        "reached": reached,
        "halfwidth_pct": None if hw is None else round(hw * 100, 4),
        "elapsed_s": round((clock() - start) / 1e9, 3),
    }
    return samples, result
