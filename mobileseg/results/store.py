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

from ..errors import ResultsFileError
from .paths import writable_file

FINISHED_STATUSES = ("ok", "parity_failed")


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

    _FIX = "give a writable file with --results-file or a writable folder with --out"

    def check_writable(self) -> None:
        """Fail with one sentence before anything is measured when records could not be appended here."""
        writable_file(self.path, "results", self._FIX)

    def append(self, record) -> None:
        d = record.to_dict() if hasattr(record, "to_dict") else dict(record)
        line = (json.dumps(d, separators=(",", ":"), allow_nan=False, default=_json_default) + "\n").encode()
        self.check_writable()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise ResultsFileError(
                f"cannot write results to {self.path} ({exc.strerror or exc}): {self._FIX}"
            ) from None
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

    def read(self, strict: bool = False) -> list[dict]:
        """Every complete record, in file order. An unterminated last line (an interrupted writer's) is skipped
        with a note in :attr:`skipped`; so is a complete line that is not a record among lines that are (torn in
        the middle, edited by hand), naming the line. With ``strict``, a file none of whose lines is a record is a
        :class:`ResultsFileError` naming the first line. A JSON array of records is accepted too."""
        self.skipped = []
        if not self.path.exists():
            return []
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            what = "it is a folder, not a file" if self.path.is_dir() else (exc.strerror or str(exc)).lower()
            raise ResultsFileError(f"cannot read the results file {self.path}: {what}") from None
        if data.lstrip().startswith(b"["):
            try:
                items = json.loads(data)
            except ValueError as exc:
                raise ResultsFileError(
                    f"{self.path} is not valid JSON ({exc}): give a file written by mobileseg"
                ) from None
            return [r for r in items if isinstance(r, dict)]
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline, else an unterminated (partial) line
        if tail.strip():
            self.skipped.append(
                f"{self.path}: ignored an unterminated last line ({len(tail)} bytes) left by an interrupted writer"
            )
        records, bad = [], []
        for no, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                bad.append(no)
                continue
            records.append(obj)
        if bad and strict and not records:  # no line is a record: not a results file at all
            raise ResultsFileError(
                f"{self.path} line {bad[0]} is not JSON: give a file written by mobileseg (one JSON record per line)"
            )
        for no in bad:  # a torn or foreign line among records (a crash, a hand edit): the rest is still ours
            self.skipped.append(f"{self.path}:{no}: ignored a line that is not a JSON record (torn or edited)")
        return records

    def repeat_note(self, keys) -> str | None:
        """The sentence for a run without ``--resume`` whose cells ``keys`` already have finished records here (they
        are appended again; readers keep the newest), else None."""
        again = set(keys) & self.done_keys()
        if not again:
            return None
        return (
            f"{len(again)} of these cells already have records in {self.path}: they are appended again and "
            "readers (results, report, compare) keep the newest; pass --resume to skip finished cells"
        )

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


def expand_paths(paths, what: str = "results") -> list[Path]:
    """Files, folders (their ``*.jsonl``) and shell patterns -> existing files, each once; a missing one is one clear
    error."""
    import glob

    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(p.glob("*.jsonl"))
        elif any(c in str(p) for c in "*?["):
            hits = sorted(glob.glob(str(p)))
            if not hits:
                raise ResultsFileError(f"no file matches {p}: check the pattern or run `mobileseg bench` first")
            files += [Path(h) for h in hits]
        elif p.exists():
            files.append(p)
        else:
            stage = "bench" if what == "results" else "eval"
            raise ResultsFileError(
                f"{what} file '{p}' not found: it does not exist; give a .jsonl file or a folder "
                f"holding some, or run `mobileseg {stage}` first"
            )
    seen: set = set()  # a file named twice (a folder and a pattern both matching it) is read once
    return [f for f in files if not (f.resolve() in seen or seen.add(f.resolve()))]


def read_records(paths, required=(), what: str = "results", strict: bool = True) -> tuple[list[dict], list[str]]:
    """THE reader of results (and eval) files: the records of ``paths`` and notes on skipped lines.

    Each record gets ``_file``. ``required``: keys without which a record is not ours (a clear error). ``strict``:
    a complete line that is not JSON is an error (an interrupted writer's unterminated last line is only noted).
    """
    records, notes = [], []
    for f in expand_paths(paths, what):
        store = ResultStore(f)
        for n, r in enumerate(store.read(strict=strict), 1):
            missing = [k for k in required if k not in r]
            if missing:
                stage = "bench" if what == "results" else "eval"
                raise ResultsFileError(
                    f"{f} record {n} is not a mobileseg {what} record (missing "
                    f"{', '.join(missing)}): give a file written by `mobileseg {stage}`"
                )
            r.setdefault("_file", str(f))
            records.append(r)
        notes += store.skipped
    return records, notes
