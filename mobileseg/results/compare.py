"""A/B comparison of two sets of measurement records: is B faster or slower than A, beyond the noise?

Cells are matched by their key without the device part (``model|HxW|format|runtime|precision|graph|tN``, the cell
id minus its first field), so a run before and after a change, or the same suite on two phones, line up; within a
file the newest record of a key wins. When nothing matches and each side holds exactly one cell (two different
artifacts timed alike, e.g. by ``compare --run``), those two are compared.

The figure is the ratio of medians B / A (> 1: B is slower) with a 95% percentile-bootstrap interval: both sample
sets are resampled independently (seeded, 2000 resamples) and the ratio of the resampled medians taken each time.
The median of a set has no closed-form interval for a ratio; the bootstrap gives one without assuming a
distribution (and, like the order-statistics interval of one median, assumes independent samples). Verdict:
``slower`` when the whole interval is above 1, ``faster`` when below, else ``no difference at this noise``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import MobilesegError

BOOTSTRAP_RESAMPLES = 2000
LEVEL = 0.95
SLOWER, FASTER, SAME = "slower", "faster", "no difference at this noise"


def match_key(rec: dict) -> str:
    """The cell key without the device part: ``model|HxW|format|runtime|precision|graph|tN``."""
    rid = rec.get("id")
    if rid and rid.count("|") >= 7:
        return rid.split("|", 1)[1]
    h, w = (list(rec.get("resolution") or []) + [None, None])[:2]
    return "|".join(
        str(x)
        for x in (
            rec.get("model"),
            f"{h}x{w}",
            rec.get("format"),
            rec.get("runtime"),
            rec.get("precision", "fp32"),
            rec.get("graph", "logits"),
            f"t{rec.get('threads', 1)}",
        )
    )


def ratio_interval(
    a_ms, b_ms, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES, level: float = LEVEL
) -> tuple[float, float, float]:
    """``(median(b) / median(a), low, high)``: the percentile-bootstrap interval of the ratio of medians."""
    a, b = np.asarray(a_ms, dtype=float), np.asarray(b_ms, dtype=float)
    if a.size < 2 or b.size < 2:
        raise MobilesegError("a ratio interval needs at least 2 samples on each side")
    rng = np.random.default_rng(seed)
    ratios = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(a.size, b.size))  # bounded memory for long sample sets
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        ma = np.median(a[rng.integers(0, a.size, (k, a.size))], axis=1)
        mb = np.median(b[rng.integers(0, b.size, (k, b.size))], axis=1)
        ratios[start : start + k] = mb / ma
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return float(np.median(b) / np.median(a)), float(lo), float(hi)


@dataclass
class Comparison:
    key: str
    a_median_ms: float | None
    b_median_ms: float | None
    ratio: float | None
    ratio_low: float | None
    ratio_high: float | None
    verdict: str
    a_count: int
    b_count: int
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def verdict(low: float, high: float) -> str:
    return SLOWER if low > 1 else FASTER if high < 1 else SAME


def _latest(records) -> dict:
    out = {}
    for r in sorted(records, key=lambda r: str(r.get("timestamp") or "")):
        if r.get("status") == "error":
            continue
        out[match_key(r)] = r
    return out


def compare_pair(a: dict, b: dict, seed: int = 0, key: str | None = None) -> Comparison:
    sa, sb = a.get("samples_ms") or [], b.get("samples_ms") or []
    key = key or match_key(a)
    med = lambda r: (r.get("stats_ms") or {}).get("median")  # noqa: E731
    if len(sa) < 2 or len(sb) < 2:
        return Comparison(
            key,
            med(a),
            med(b),
            None,
            None,
            None,
            "not compared",
            len(sa),
            len(sb),
            "needs per-iteration samples on both sides (a tool summary has none)",
        )
    ratio, lo, hi = ratio_interval(sa, sb, seed=seed)
    notes = [n for n, r in (("A", a), ("B", b)) if (r.get("device_state") or {}).get("throttled")]
    return Comparison(
        key,
        float(np.median(sa)),
        float(np.median(sb)),
        ratio,
        lo,
        hi,
        verdict(lo, hi),
        len(sa),
        len(sb),
        f"{' and '.join(notes)} throttled during the cell" if notes else "",
    )


def compare_records(a_records, b_records, seed: int = 0) -> tuple[list[Comparison], list[str], list[str]]:
    """Comparisons of the matched cells, and the keys found only in A and only in B."""
    a, b = _latest(a_records), _latest(b_records)
    common = [k for k in a if k in b]
    if not common and len(a) == 1 and len(b) == 1:  # two different artifacts, one cell each
        (ka, ra), (kb, rb) = next(iter(a.items())), next(iter(b.items()))
        c = compare_pair(ra, rb, seed, key=f"{ka} vs {kb}")
        return [c], [], []
    comps = [compare_pair(a[k], b[k], seed, key=k) for k in common]
    return comps, [k for k in a if k not in b], [k for k in b if k not in a]


def regressions(comparisons, fail_if_slower_pct: float) -> list[Comparison]:
    """Cells that are ``slower`` (interval above 1) with a ratio above 1 + PCT/100: what ``--fail-if-slower`` gates."""
    limit = 1 + float(fail_if_slower_pct) / 100
    return [c for c in comparisons if c.verdict == SLOWER and c.ratio is not None and c.ratio > limit]
