"""Crash-safe JSON Lines results store: one measurement record per line, appended as soon as its cell ends.

Crash safety: each record is serialised first and written with a single ``write`` on a file opened for appending,
then flushed and fsync'ed, under an exclusive ``flock`` so that two writers never interleave. A writer killed
mid-write can leave at most one unterminated last line; readers ignore it (a line counts only once its newline is
on disk) and the next append truncates it away before writing, so no partial record is ever kept.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import MobilesegError

FINISHED_STATUSES = ("ok", "parity_failed")


class ResultsFileError(MobilesegError):
    pass


@contextmanager
def _locked(fd: int):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: single writer assumed
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _repair_tail(fd: int) -> int:
    """Cut an unterminated last line (left by a killed writer); return the number of bytes removed."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return 0
    os.lseek(fd, size - 1, os.SEEK_SET)
    if os.read(fd, 1) == b"\n":
        return 0
    # Walk back in blocks to the last newline.
    pos, block = size, 65536
    keep = 0
    while pos > 0:
        start = max(0, pos - block)
        os.lseek(fd, start, os.SEEK_SET)
        chunk = os.read(fd, pos - start)
        idx = chunk.rfind(b"\n")
        if idx >= 0:
            keep = start + idx + 1
            break
        pos = start
    os.ftruncate(fd, keep)
    return size - keep


class ResultStore:
    """A results file (``*.jsonl``). ``append`` one record dict at a time; ``read`` the complete ones."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.skipped: list[str] = []  # why lines were ignored by the last read

    def append(self, record) -> None:
        d = record.to_dict() if hasattr(record, "to_dict") else dict(record)
        line = (json.dumps(d, separators=(",", ":"), allow_nan=False, default=_json_default) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            with _locked(fd):
                _repair_tail(fd)
                view = memoryview(line)
                while view:  # os.write may write less than asked (signals); loop until all is out
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict]:
        """Every complete record, in file order; an unterminated last line and undecodable lines are skipped."""
        self.skipped = []
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline, else an unterminated (partial) line
        if tail.strip():
            self.skipped.append(f"{self.path}: ignored an unterminated last line ({len(tail)} bytes) "
                                "left by an interrupted writer")
        records = []
        for no, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                self.skipped.append(f"{self.path}:{no}: ignored a line that is not valid JSON")
                continue
            if not isinstance(obj, dict):
                self.skipped.append(f"{self.path}:{no}: ignored a line that is not a JSON object")
                continue
            records.append(obj)
        return records

    def done_keys(self, statuses=FINISHED_STATUSES) -> set[str]:
        """Cell keys that already have a finished record (what ``--resume`` skips)."""
        return {r["id"] for r in self.read() if r.get("status") in statuses and "id" in r}


def _json_default(obj):
    # numpy scalars and arrays sneak into records from runtimes; store them as plain JSON.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a results record")


def read_records(paths) -> tuple[list[dict], list[str]]:
    """Records of several results files (folders are searched for ``*.jsonl``) and the notes on skipped lines."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(p.glob("*.jsonl"))
        elif p.exists():
            files.append(p)
        else:
            raise ResultsFileError(f"results file '{p}' does not exist: give a .jsonl file or a folder holding some "
                                   "(default: results/)")
    records, notes = [], []
    for f in files:
        store = ResultStore(f)
        for r in store.read():
            r.setdefault("_file", str(f))
            records.append(r)
        notes += store.skipped
    return records, notes
