"""What every runtime adapter shares: the adapter/session interface and finding an artifact from a manifest."""

from __future__ import annotations

import numpy as np

from .. import formats
from .. import manifest as _manifest
from ..errors import MobilesegError
from ..manifest import ArtifactError  # noqa: F401  (re-exported)


# The manifest module reads manifest.json and finds an artifact's files (re-exported here for the adapters).
load_manifest = _manifest.load
resolve_artifact = _manifest.artifact_paths


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
    """A runtime adapter: ``name``, the artifact ``format`` it runs, ``version()`` and ``load(...)``.

    ``format`` and ``extra`` are read from the runtime's row in :data:`mobileseg.formats.RUNTIMES`.
    """

    name: str = ""

    @property
    def format(self) -> str:
        return formats.RUNTIMES[self.name].format

    @property
    def extra(self) -> str:
        return formats.RUNTIMES[self.name].extra

    def artifact(self, export_dir_or_manifest, fmt_entry=None) -> tuple[str, dict, dict, list[str]]:
        """``(export_dir, manifest, fmt_entry, paths)`` of this runtime's format; ``paths[0]`` is the model file."""
        export_dir, man, entry, paths = resolve_artifact(export_dir_or_manifest, fmt_entry, self.format)
        model = formats.model_file(self.format, paths)
        if model is None:
            raise ArtifactError(
                f"the {self.format} artifact in {export_dir or '?'} has no "
                f"{formats.FORMATS[self.format].suffixes[0]} file: re-run `mobileseg export --force`"
            )
        return export_dir, man, entry, [model] + [p for p in paths if p != model]

    def version(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self) -> None:
        """Raise the one-sentence error (:class:`MissingDependencyError` for a missing package or driver) when this
        runtime cannot run here."""
        self.version()

    def available(self) -> bool:
        try:
            self.check()
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
