"""Helpers shared by the format exporters: quiet native output, package versions, file records."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field

from .. import formats as _formats
from ..errors import MobilesegError
from ..hashing import sha256_file  # noqa: F401  (re-exported)


class ExportError(MobilesegError):
    """Bad export options or an unusable output folder."""


def remove_stale_files(out_dir: str, fmt: str) -> None:
    """Delete ``fmt``'s artifact files left by an earlier export, so a failed conversion leaves none behind."""
    row = _formats.FORMATS.get(fmt)
    for name in row.files if row else ():
        p = os.path.join(out_dir, name)
        if os.path.exists(p):
            os.remove(p)


@dataclass
class Converted:
    """What one format exporter produced: artifact paths (in the export folder) and what the manifest says of them."""

    files: list[str]
    input_name: str
    output_name: str
    op_histogram: dict
    info: dict = field(default_factory=dict)


class ConverterFailure(Exception):
    """A converter could not handle the model; ``str()`` names the op and converter version when known."""


def require_cheap(module: str, extra: str, purpose: str) -> None:
    """Like :func:`mobileseg.errors.require` but only looks the module up (importing litert_torch takes seconds)."""
    import importlib.util

    from ..errors import require

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        require(module, extra, purpose)  # raises MissingDependencyError naming the extra


def package_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


@contextlib.contextmanager
def captured_output(log_path: str):
    """Send the process's stdout/stderr (including native code's) to ``log_path`` for the duration."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:  # pragma: no cover
                pass
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def log_tail(log_path: str, n: int = 6, pattern: str | None = None) -> str:
    try:
        with open(log_path, errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return ""
    if pattern:
        hits = [ln for ln in lines if pattern.lower() in ln.lower()]
        if hits:
            return " | ".join(hits[-n:])
    return " | ".join(lines[-n:])


def workdir(prefix: str):
    return tempfile.TemporaryDirectory(prefix=f"mobileseg-{prefix}-")
