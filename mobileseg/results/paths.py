"""Where results are read and written by default (one home for the folder names), relative to the current folder.

A user's runs go to ``results/runs/`` (git-ignored): bench records, eval records and the report drawn from them.
The committed reference results (the project's own runs, their report and plots) live in ``results/reference/``,
where no command writes unless told to with ``--out``; ``results/published.csv`` holds the papers' numbers.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import ResultsFileError

RESULTS_DIR = "results"
RUNS_DIR = os.path.join(RESULTS_DIR, "runs")
REFERENCE_DIR = os.path.join(RESULTS_DIR, "reference")
REPORT_DIR = os.path.join(RUNS_DIR, "report")
EVAL_FILE = os.path.join(RUNS_DIR, "eval.jsonl")


def slug(text, default: str = "x", limit: int | None = None) -> str:
    """``text`` as a file-name part: lower-case letters and digits, every other run one ``-`` (``Test Phone`` ->
    ``test-phone``); ``default`` when nothing is left; at most ``limit`` characters. The one rule of the names the
    toolkit makes from devices, models and files."""
    import re

    out = re.sub(r"[^a-z0-9]+", "-", str(text or "").lower()).strip("-")
    return (out[:limit] if limit else out) or default


def default_results_paths() -> list[str]:
    """What ``mobileseg results`` and ``mobileseg report`` read when no file is given: the user's measurement
    records (``results/runs/*.jsonl`` without the eval records); empty when there are none yet."""
    return sorted(p for p in glob.glob(os.path.join(RUNS_DIR, "*.jsonl")) if not os.path.basename(p).startswith("eval"))


def writable_folder(path, what: str, fix: str) -> Path:
    """Create ``path`` (and its parents) for writing ``what``, or raise :class:`ResultsFileError` saying why and how
    to fix it: a file where a folder belongs, no permission, a read-only disk. Called before any work is done, so a
    bad ``--out`` costs nothing."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        if not os.access(p, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as exc:
        in_way = isinstance(exc, (FileExistsError, NotADirectoryError))
        reason = "a file is in the way where a folder belongs" if in_way else (exc.strerror or str(exc)).lower()
        raise ResultsFileError(f"cannot write {what} in the folder {p} ({reason}): {fix}") from None
    return p


def writable_file(path, what: str, fix: str) -> Path:
    """:func:`writable_folder` for the folder of ``path``, and ``path`` itself must not be a folder or read-only."""
    p = Path(path)
    writable_folder(p.parent, what, fix)
    if p.is_dir():
        raise ResultsFileError(f"cannot write {what} to {p}: it is a folder, not a file; {fix}")
    if p.exists() and not os.access(p, os.W_OK):
        raise ResultsFileError(f"cannot write {what} to {p}: the file is read-only; {fix}")
    return p
