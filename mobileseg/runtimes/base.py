"""What every runtime adapter shares: the adapter/session interface and finding an artifact from a manifest."""
from __future__ import annotations

import json
import os

import numpy as np

from ..errors import MobilesegError


class ArtifactError(MobilesegError):
    """An export folder or manifest is missing, incomplete, or lacks the requested format."""


def load_manifest(export_dir_or_manifest) -> tuple[str, dict]:
    """``(export_dir, manifest)`` from an export folder, a ``manifest.json`` path, or an already-read manifest dict.

    A dict must carry ``_dir`` (the folder its file paths are relative to) or paths must be absolute.
    """
    if isinstance(export_dir_or_manifest, dict):
        man = export_dir_or_manifest
        return man.get("_dir", ""), man
    path = os.fspath(export_dir_or_manifest)
    if os.path.isdir(path):
        path = os.path.join(path, "manifest.json")
    if not os.path.isfile(path):
        raise ArtifactError(f"no export manifest at {path}: run `mobileseg export` first (or pass the export folder)")
    try:
        with open(path) as f:
            man = json.load(f)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path} ({exc}): re-run `mobileseg export --force`") from None
    return os.path.dirname(os.path.abspath(path)), man


def resolve_artifact(export_dir_or_manifest, fmt_entry, fmt: str) -> tuple[str, dict, dict, list[str]]:
    """``(export_dir, manifest, fmt_entry, [absolute file paths])`` for format ``fmt``.

    ``fmt_entry`` may be None (take ``manifest['formats'][fmt]``) or a format entry of the manifest.
    """
    export_dir, man = load_manifest(export_dir_or_manifest)
    if fmt_entry is None:
        fmt_entry = (man.get("formats") or {}).get(fmt)
        if fmt_entry is None:
            raise ArtifactError(f"the export in {export_dir or '?'} has no {fmt} artifact: "
                                f"re-run `mobileseg export --formats {fmt}`")
    if fmt_entry.get("ok") is False and not fmt_entry.get("files"):
        raise ArtifactError(f"the {fmt} export failed ({fmt_entry.get('error')}); nothing to load")
    paths = []
    for f in fmt_entry.get("files", []):
        p = f["path"] if isinstance(f, dict) else f
        p = p if os.path.isabs(p) else os.path.join(export_dir, p)
        if not os.path.isfile(p):
            raise ArtifactError(f"artifact file missing: {p}: re-run `mobileseg export --force`")
        paths.append(p)
    return export_dir, man, fmt_entry, paths


class Session:
    """A loaded artifact. ``run`` is the runtime call only (input preparation is the caller's)."""

    settings: dict

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Runtime:
    """A runtime adapter: ``name``, the artifact ``format`` it runs, ``version()`` and ``load(...)``."""

    name: str = ""
    format: str = ""
    extra: str = ""

    def version(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def available(self) -> bool:
        try:
            self.version()
            return True
        except MobilesegError:
            return False

    def load(self, export_dir_or_manifest, fmt_entry=None, threads: int = 1, precision: str = "fp32") -> Session:
        raise NotImplementedError  # pragma: no cover - interface

    def __repr__(self) -> str:
        return f"<runtime {self.name} ({self.format})>"


def check_threads(threads) -> int:
    try:
        n = int(threads)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise MobilesegError(f"threads must be a positive integer, not {threads!r}")
    return n


def output_shape(man: dict) -> list[int] | None:
    shape = (man.get("output") or {}).get("shape")
    return list(shape) if shape else None
