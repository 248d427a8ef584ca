"""Peak memory of one cell, with its definition, on the host (the device harnesses carry their own copy).

``peak_rss_growth_mb``: the process's peak resident set size over the load and every run, minus its resident size
just before the load. Linux keeps that peak in ``VmHWM`` (``/proc/self/status``); writing ``5`` to
``/proc/self/clear_refs`` resets it to the current RSS, so a long-running process (the host bench measures many
cells in one process) sees each cell's own peak. Where the reset is refused, ``ru_maxrss`` (the lifetime peak, not
resettable) is used and the growth is only what rises above the earlier peak: ``source`` says which. Pages a runtime
maps but never touches are not resident, so this is memory used, not reserved. ``load_rss_growth_mb``: RSS after the
load minus before. On the device, ``pss_mb`` (proportional set size from ``/proc/self/smaps_rollup``: shared pages
split among their users) is added where the kernel has it.
"""

from __future__ import annotations

import resource
import sys

DEFINITION = (
    "peak_rss_growth_mb = peak RSS over load + runs (VmHWM, reset before the load) - RSS before the load; "
    "load_rss_growth_mb = RSS after load - RSS before; MB = 2^20 bytes"
)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _maxrss_kb() -> int:
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return v // 1024 if sys.platform == "darwin" else v  # bytes on macOS, KiB on Linux


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """``start()`` before the load, ``loaded()`` after it, ``result()`` after the runs -> the record's ``memory``."""

    def start(self) -> None:
        self.resettable = reset_peak()
        self.rss0 = _status_kb("VmRSS")
        self.peak0 = _status_kb("VmHWM") if self.resettable else _maxrss_kb()
        self.rss_loaded = None

    def loaded(self) -> None:
        self.rss_loaded = _status_kb("VmRSS")

    def result(self) -> dict:
        peak = _status_kb("VmHWM") if self.resettable else _maxrss_kb()
        mb = lambda kb: None if kb is None else round(kb / 1024, 2)  # noqa: E731
        out = {
            "definition": DEFINITION,
            "source": "VmHWM reset through /proc/self/clear_refs"
            if self.resettable
            else "ru_maxrss (lifetime peak, not resettable: growth above the process's earlier peak only)",
            "rss_before_mb": mb(self.rss0),
            "peak_rss_mb": mb(peak),
        }
        if self.rss0 is not None and peak is not None:
            out["peak_rss_growth_mb"] = mb(
                max(0, peak - (self.rss0 if self.resettable else max(self.rss0, self.peak0 or 0)))
            )
        if self.rss0 is not None and self.rss_loaded is not None:
            out["load_rss_growth_mb"] = mb(self.rss_loaded - self.rss0)
        return out
