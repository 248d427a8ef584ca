"""``--sustained MINUTES``: one cell run for minutes on end, to see whether the device throttles.

The cell runs in back-to-back one-minute chunks (one ``run_cell`` of ``--min-time 60`` each; the warm-up only before
the first), and after each chunk the device's temperatures and frequencies are read. Per minute: median and p90 of
that minute's samples, the CPU zone's temperature, the pinned CPU's frequency. ``slowdown_minute`` is the first
minute (1-based) whose median exceeds minute 1's by more than 10%; None when none does. Each chunk starts a fresh
harness on a device (the load is outside the timed calls), so there is a gap of a load between minutes.

For tests, the minute can be shortened: ``MOBILESEG_SUSTAINED_MINUTE_S`` (seconds; also the hidden bench option
``--sustained-minute-s``). Records say what minute length was used (``minute_s``).
"""

from __future__ import annotations

import os

from ..errors import MobilesegError
from ..results.stats import summarize

SLOWDOWN = 1.10
ENV_MINUTE = "MOBILESEG_SUSTAINED_MINUTE_S"


def minute_seconds(override=None) -> float:
    v = override if override is not None else os.environ.get(ENV_MINUTE) or 60.0
    try:
        v = float(v)
    except ValueError:
        raise MobilesegError(f"{ENV_MINUTE} must be a number of seconds, not {v!r}") from None
    if not v > 0:
        raise MobilesegError(f"the sustained minute must last more than 0 seconds, not {v:g}")
    return v


def _cpu_temp(state: dict):
    from ..device.probe import cpu_zone

    temps = (state or {}).get("temps_c") or {}
    zone = cpu_zone(temps)
    return zone, (temps.get(zone) if zone else None)


def slowdown_minute(medians: list[float], factor: float = SLOWDOWN) -> int | None:
    """The first minute (1-based) whose median exceeds ``factor`` x minute 1's, or None."""
    if not medians:
        return None
    for i, m in enumerate(medians[1:], start=2):
        if m > factor * medians[0]:
            return i
    return None


def run_sustained(target, cell, folder, manifest, warmup: int, minutes: float, minute_s: float | None = None):
    """Run ``cell`` for ``minutes`` minutes; returns ``(CellRun of all samples, the record's sustained dict)``."""
    import math

    if not minutes > 0:
        raise MobilesegError(f"--sustained takes a number of minutes above 0, not {minutes:g}")
    minute_s = minute_seconds(minute_s)
    cpu = str((target.describe() or {}).get("pinned_cpu"))
    per_minute, samples, last = [], [], None
    start = target.state() or {}  # minute 1's reading is taken at its end: the clock may already have fallen by then
    start_zone, start_temp = _cpu_temp(start)
    for i in range(int(math.ceil(minutes))):
        length = minute_s * min(1.0, minutes - i)
        cr = target.run_cell(cell, folder, manifest, warmup if i == 0 else 1, None, length)
        state = target.state()
        s = summarize(cr.samples_ms)
        zone, temp = _cpu_temp(state)
        per_minute.append(
            {
                "minute": i + 1,
                "median_ms": s["median"],
                "p90_ms": s["p90"],
                "count": s["count"],
                "cpu_zone": zone,
                "temp_c": temp,
                "freq_khz": ((state or {}).get("freqs_khz") or {}).get(cpu),
                "temps_c": state.get("temps_c"),
                "freqs_khz": state.get("freqs_khz"),
            }
        )
        samples += cr.samples_ms
        last = cr
    medians = [m["median_ms"] for m in per_minute]
    last.samples_ms = samples
    info = {
        "minutes": minutes,
        "minute_s": minute_s,
        "per_minute": per_minute,
        "start": {"cpu_zone": start_zone, "temp_c": start_temp, "freq_khz": (start.get("freqs_khz") or {}).get(cpu)},
        "slowdown_factor": SLOWDOWN,
        "slowdown_minute": slowdown_minute(medians),
        "rule": "first minute whose median exceeds minute 1's by more than 10%",
    }
    return last, info
