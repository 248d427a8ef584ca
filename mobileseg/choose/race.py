"""The race: which candidate to ship, decided round by round on as few samples as the decision needs.

Pure logic (no I/O, no clock of its own): the caller feeds each candidate's samples as :class:`Observation` s and
asks what to measure next (:meth:`Race.requests`); :func:`drive` is that loop with an injected clock and sample
source, which is how the command runs it and how the tests run it with fake ones.

Rules, each applied after every round with the intervals of :mod:`mobileseg.choose.confidence` (valid together,
whatever the number of looks, at the race's confidence):

* out before any timing: over the size limit, below the mIoU floor, accuracy unknown where a floor needs it;
* out on its first record: an error, failed parity (with its reason), memory over the limit, or timings that are
  numerics only (an emulated device, a software Vulkan driver): latency is never ranked on them;
* **over budget**: its median's interval lies wholly above the budget;
* **dominated by X**: X is live, at least as good on the ranking key, and faster with confidence (X's interval
  lies wholly below this one's);
* **outranked by X**: X is confirmed within budget (its interval lies wholly below the budget) and ranks higher
  (a more accurate one; or, under ``objective="latency"``, never: all eligible candidates rank equal there).

The winner is the last live candidate once it is confirmed within budget. Only the live candidates of the highest
rank are sampled after the first round (a lower-ranked one matters only if they all fall out). When the time is up
first, the live top-ranked ones are **tied**, and :meth:`Race.tie_report` says what more time would settle.

Ranking key (higher is better): ``objective="miou"``: measured or published accuracy first (tier 1), then
"accuracy not measured" (tier 0, ordered by the fp32 model's published mIoU as a proxy), so an unmeasured candidate
is never ranked above a measured one; ``objective="latency"``: every candidate at or above the floor ranks equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .confidence import DEFAULT_ALPHA, FIRST_LOOK, GROWTH, Sequence

OBJECTIVES = ("miou", "latency")

# fates (the table's words)
CHOSEN, OVER_BUDGET, DOMINATED, OUTRANKED = "chosen", "over budget", "dominated", "outranked"
PARITY_FAILED, ERROR, NUMERICS_ONLY = "parity failed", "error", "not ranked (numerics only)"
OVER_MEMORY, OVER_SIZE, BELOW_FLOOR, NO_ACCURACY = (
    "over memory",
    "over size",
    "below mIoU floor",
    "accuracy not measured",
)
TIED, UNDECIDED, NOT_MEASURED = "tied", "undecided", "not measured"


@dataclass
class Arm:
    """One candidate in the race. ``accuracy``: mIoU (%) the ranking may use (measured, or published for that
    model, resolution and precision), None when not measured; ``proxy``: a number shown for unmeasured ones (the
    fp32 model's published mIoU), used only to order them among themselves."""

    id: str
    accuracy: float | None = None
    proxy: float | None = None
    size_mb: float | None = None
    excluded: tuple | None = None  # (fate, reason): out before the race (set by the caller: over size, ...)
    # filled by the race
    seq: Sequence | None = None
    key: tuple = ()
    fate: str | None = None
    by: str | None = None
    reason: str = ""
    rounds: int = 0
    memory_mb: float | None = None
    observed: int = 0  # records seen

    @property
    def live(self) -> bool:
        return self.fate is None

    @property
    def n(self) -> int:
        return len(self.seq.samples) if self.seq else 0

    @property
    def low(self) -> float:
        return self.seq.low if self.seq else -math.inf

    @property
    def high(self) -> float:
        return self.seq.high if self.seq else math.inf

    @property
    def median(self) -> float | None:
        return self.seq.median if self.seq else None


@dataclass
class Observation:
    """What one measurement of ``n`` samples said: its samples and what disqualifies it, if anything."""

    samples: list
    numerics_only: str | None = None  # why these timings are no device's speed (None: they are)
    parity_ok: bool | None = True  # None: not checked (timing-only tools)
    parity_reason: str | None = None
    memory_mb: float | None = None
    error: str | None = None


@dataclass
class Race:
    arms: list
    budget_ms: float
    objective: str = "miou"
    min_miou: float | None = None
    max_memory_mb: float | None = None
    alpha: float = DEFAULT_ALPHA
    first: int = FIRST_LOOK
    growth: float = GROWTH
    max_samples: int = 100000
    naive: bool = False  # uncorrected 95% intervals at every look: only for showing the bias in tests
    round: int = 0
    state: str = "racing"  # racing | chosen | tied | none | refused
    refusal: str | None = None
    _this_round: set = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}")
        raced = [a for a in self.arms if not a.excluded]
        for a in self.arms:
            a.seq = Sequence(
                candidates=max(1, len(raced)), alpha=self.alpha, first=self.first, growth=self.growth, naive=self.naive
            )
            if a.excluded:
                self._out(a, a.excluded[0], reason=a.excluded[1])
                continue
            floor = self.min_miou
            if floor is not None and a.accuracy is None:
                self._out(a, NO_ACCURACY, reason="accuracy not measured: the mIoU floor needs --data")
            elif floor is not None and a.accuracy < floor:
                self._out(a, BELOW_FLOOR, reason=f"mIoU {a.accuracy:.1f} < floor {floor:g}")
            a.key = self._key(a)

    # -- ranking ---------------------------------------------------------------------------------------------------
    def _key(self, a: Arm) -> tuple:
        if self.objective == "latency":
            return (0,)
        if a.accuracy is not None:
            return (1, a.accuracy)
        return (0, a.proxy if a.proxy is not None else -math.inf)

    def _out(self, a: Arm, fate: str, by: Arm | None = None, reason: str = "") -> None:
        a.fate, a.by, a.reason = fate, (by.id if by else None), reason

    # -- what to measure -------------------------------------------------------------------------------------------
    def live(self) -> list:
        return [a for a in self.arms if a.live]

    def requests(self) -> dict:
        """``{arm id: samples to add}`` for the next round (empty when the race is over)."""
        if self.state != "racing":
            return {}
        live = self.live()
        top = max((a.key for a in live if a.n), default=None)
        # never-measured candidates get their first batch; after that only the live top-ranked ones are sampled
        todo = [a for a in live if not a.n or a.key == top]
        out = {}
        for a in todo:
            if a.n >= self.max_samples:
                continue
            out[a.id] = min(a.seq.next_size, self.max_samples) - a.n
        return out

    def observe(self, arm_id: str, obs: Observation) -> None:
        """Feed one measurement of arm ``arm_id``."""
        a = self._arm(arm_id)
        a.observed += 1
        if not a.live:
            return
        self._this_round.add(a.id)
        if obs.error:
            return self._out(a, ERROR, reason=obs.error)
        if obs.parity_ok is False:
            return self._out(a, PARITY_FAILED, reason=obs.parity_reason or "outside the parity limit")
        if obs.memory_mb is not None:
            a.memory_mb = max(a.memory_mb or 0.0, float(obs.memory_mb))
        a.seq.add(obs.samples)
        if obs.numerics_only:
            return self._out(a, NUMERICS_ONLY, reason=obs.numerics_only)
        if self.max_memory_mb is not None:
            if a.memory_mb is None:
                return self._out(
                    a, OVER_MEMORY, reason="memory not measured here, so --max-memory-mb cannot be checked"
                )
            if a.memory_mb > self.max_memory_mb:
                return self._out(a, OVER_MEMORY, reason=f"{a.memory_mb:.1f} MB > {self.max_memory_mb:g} MB")

    def _arm(self, arm_id: str) -> Arm:
        for a in self.arms:
            if a.id == arm_id:
                return a
        raise KeyError(arm_id)

    # -- deciding --------------------------------------------------------------------------------------------------
    def settle(self) -> None:
        """Apply the elimination rules after a round; ends the race when a winner is separated."""
        if self.state != "racing":
            return
        sampled = [a for a in self.arms if a.observed]
        self.round += 1
        for a in self.arms:
            if a.id in self._this_round and a.live:
                a.rounds += 1
        self._this_round = set()
        if (
            self.round == 1
            and sampled
            and all(a.fate in (NUMERICS_ONLY, ERROR, PARITY_FAILED) for a in sampled)
            and any(a.fate == NUMERICS_ONLY for a in sampled)
        ):
            why = sorted({a.reason for a in sampled if a.fate == NUMERICS_ONLY})
            self.state = "refused"
            self.refusal = (
                "choose refuses to rank by latency: every candidate's timings are numerics only ("
                + "; ".join(why)
                + "): they say nothing about a phone's speed; parity is reported"
            )
            return
        live = self.live()
        for a in live:
            if a.low > self.budget_ms:
                self._out(a, OVER_BUDGET, reason=f"interval [{a.low:.3g}, {a.high:.3g}] ms > {self.budget_ms:g} ms")
        live = self.live()
        for b in live:
            better = [a for a in live if a is not b and a.key >= b.key and a.high < b.low]
            if better:
                a = min(better, key=lambda x: (x.high, x.id))
                self._out(
                    b,
                    DOMINATED,
                    by=a,
                    reason=f"{a.id} is faster with confidence ({a.high:.3g} < "
                    f"{b.low:.3g} ms) and ranks at least as high",
                )
        live = self.live()
        feasible = [a for a in live if a.high <= self.budget_ms]
        if feasible:
            best = max(feasible, key=lambda x: (x.key, -x.high))
            for b in live:
                if b.key < best.key:
                    self._out(b, OUTRANKED, by=best, reason=f"{best.id} ranks higher and is within budget")
        live = self.live()
        if len(live) == 1 and live[0].high <= self.budget_ms:
            self._out(live[0], CHOSEN)
            self.state = "chosen"
        elif not live:
            self.state = "none"
        elif not self.requests():
            self.finish("every contender reached the sample limit")

    def finish(self, why: str = "the time ran out") -> None:
        """End the race now (``--max-time``): the live top-ranked candidates are tied, the rest undecided."""
        if self.state != "racing":
            return
        live = self.live()
        if not live:
            self.state = "none"
            return
        top = max(a.key for a in live)
        for a in live:
            if not a.observed:
                self._out(a, NOT_MEASURED, reason=why)
            elif a.key == top:
                self._out(a, TIED, reason=why)
            else:
                self._out(a, UNDECIDED, reason=f"{why} before the higher-ranked candidates were settled")
        self.state = "tied" if any(a.fate == TIED for a in self.arms) else "none"

    @property
    def winner(self) -> Arm | None:
        return next((a for a in self.arms if a.fate == CHOSEN), None)

    def tied(self) -> list:
        return [a for a in self.arms if a.fate == TIED]

    def leader(self) -> Arm | None:
        """The tied candidate with the lowest median (the best guess of a tie, never called a decision)."""
        tied = [a for a in self.tied() if a.median is not None]
        return min(tied, key=lambda a: a.median) if tied else None

    def tie_report(self) -> list:
        """Sentences: what each open question among the tied candidates is, and what more sampling would settle."""
        out = []
        tied = self.tied()
        for a in tied:
            if a.low <= self.budget_ms < a.high:
                out.append(
                    f"{a.id}: interval [{a.low:.3g}, {a.high:.3g}] ms straddles the {self.budget_ms:g} ms "
                    f"budget; {_more(a, [a], abs((a.median or 0) - self.budget_ms))}"
                )
        for i, a in enumerate(tied):
            for b in tied[i + 1 :]:
                if a.key == b.key and not (a.high < b.low or b.high < a.low) and a.median and b.median:
                    gap = abs(a.median - b.median)
                    pct = 100 * gap / min(a.median, b.median)
                    out.append(
                        f"{a.id} vs {b.id}: medians {a.median:.3g} and {b.median:.3g} ms ({pct:.1f}% apart), "
                        f"intervals overlap; {_more(a, [a, b], gap)}"
                    )
        return out


def _more(a: Arm, arms: list, gap: float) -> str:
    """How many more samples (and seconds) each of ``arms`` needs for its half-widths to fit in ``gap``, from the
    half-widths now (they shrink about as 1/sqrt(n)); "only a change of budget settles it" when the gap is ~0."""
    width = 0.0
    for x in arms:
        m = x.median or 0.0
        width += max(m - x.low, x.high - m) if x.seq.bounded() else math.inf
    if not math.isfinite(width):
        return "more samples are needed before an estimate can be made"
    if gap <= 1e-3 * max(x.median or 0 for x in arms):
        return "they are practically equal: more time will not separate them"
    n = max(x.n for x in arms)
    need = math.ceil(n * (width / gap) ** 2 * 1.2)  # 1.2: the level tightens a little with every look
    more = max(0, need - n)
    secs = sum(more * (x.median or 0) / 1000 for x in arms)
    return f"about {more} more samples each (~{secs:.0f} s of timing) would settle it"


def drive(race: Race, measure, clock, max_time_s: float | None) -> Race:
    """Run ``race`` to its end: ``measure(arm_id, n) -> Observation``; ``clock() -> seconds``; ``max_time_s``: the
    time budget from the first measurement (None: no limit). Each measurement is one call, checked against the
    clock before it starts."""
    start = clock()
    while race.state == "racing":
        todo = race.requests()
        if not todo:
            race.finish("no candidate had samples left to take")
            break
        for arm_id, n in todo.items():
            if max_time_s is not None and clock() - start >= max_time_s:
                race.finish(f"--max-time {max_time_s:g} s ran out")
                return race
            race.observe(arm_id, measure(arm_id, n))
        race.settle()
    return race
