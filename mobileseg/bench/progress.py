"""Progress display for a suite run on stderr: cells done / total, the current cell, elapsed time and ETA."""

from __future__ import annotations

import sys
import time


def _fmt_s(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Line-oriented progress (one line per event, safe in logs and CI); ``enabled=False`` silences it.

    The ETA is the mean wall time of the cells measured so far in this run times the cells left. Only measured
    cells count in the mean: not the cells skipped by ``--resume``, not the cells that ended in an error, and not
    the export of a model (shown as its own "exporting <model> <res>" line, before the first cell that needs it).
    """

    def __init__(self, total: int, stream=None, enabled: bool = True, clock=time.monotonic) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.clock = clock
        self.done = 0
        self.measured = 0
        self.measured_s = 0.0
        self.t0 = clock()
        self._cell_t0 = None
        self.current = None

    def eta_s(self) -> float | None:
        if not self.measured:
            return None
        return self.measured_s / self.measured * (self.total - self.done)

    def _emit(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def _prefix(self) -> str:
        width = len(str(self.total))
        return f"[{self.done:>{width}}/{self.total}]"

    def skip(self, label: str, why: str = "done earlier (--resume)") -> None:
        self.done += 1
        self._emit(f"{self._prefix()} skip {label}: {why}")

    def _times(self) -> str:
        eta = self.eta_s()
        tail = f", ETA {_fmt_s(eta)}" if eta is not None else ""
        return f"(elapsed {_fmt_s(self.clock() - self.t0)}{tail})"

    def exporting(self, label: str) -> None:
        """The export of ``label`` (model and resolution) starts; its time is left out of the cells' times."""
        self.current = f"exporting {label}"
        self._emit(f"{self._prefix()} exporting {label} {self._times()}")

    def start(self, label: str) -> None:
        self.current = label
        self._cell_t0 = self.clock()
        self._emit(f"{self._prefix()} running {label} {self._times()}")

    def finish(self, summary: str, measured: bool = True) -> None:
        """The current cell ended; ``measured=False`` (an error) keeps its time out of the ETA."""
        spent = self.clock() - (self._cell_t0 if self._cell_t0 is not None else self.clock())
        self.done += 1
        if measured:
            self.measured += 1
            self.measured_s += spent
        self._emit(f"{self._prefix()} {self.current}: {summary} ({_fmt_s(spent)})")
        self.current = None
        self._cell_t0 = None

    def note(self, text: str) -> None:
        self._emit(f"{' ' * len(self._prefix())} {text}")

    def close(self) -> None:
        self._emit(f"{self._prefix()} finished in {_fmt_s(self.clock() - self.t0)}")
