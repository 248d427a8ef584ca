"""What every runtime adapter shares: the adapter/session interface, finding an artifact from a manifest, and the
refusal of a capability (per-layer capture, a per-op profile) an adapter does not have."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import formats
from .. import manifest as _manifest
from ..errors import MobilesegError
from ..manifest import ArtifactError  # noqa: F401  (re-exported)


# The manifest module reads manifest.json and finds an artifact's files (re-exported here for the adapters).
load_manifest = _manifest.load
resolve_artifact = _manifest.artifact_paths


class CapabilityError(MobilesegError):
    """A runtime asked for what its adapter cannot do here (per-layer capture, a per-op profile): one sentence."""


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

    ``format`` and ``extra`` are read from the runtime's row in :data:`mobileseg.formats.RUNTIMES`. Optional
    capabilities are methods an adapter overrides: ``intermediates`` (every intermediate tensor, for per-layer
    parity) and ``op_profile`` (per-op times on the host, for ``bench --profile``); here they refuse.
    """

    name: str = ""
    # the refusal of op_profile where a better sentence than the default says where this runtime's profiler is
    no_op_profile: str = ""

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

    def entry_files(self, export_dir, fmt_entry) -> list[Path]:
        """The model file, then the second file where the format has one (ncnn's weights), of a manifest's
        ``formats`` entry, under ``export_dir``."""
        files = [f.get("path") if isinstance(f, dict) else f for f in (fmt_entry or {}).get("files") or []]
        side = formats.side_file(self.format, files)
        return [Path(export_dir) / formats.model_file(self.format, files)] + ([Path(export_dir) / side] if side else [])

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

    def intermediates(self, files: list[str], x: np.ndarray, precision: str = "fp32") -> list:
        """Every intermediate tensor of the artifact ``files`` (its format's files, in the row's order) run on ``x``,
        in graph order, as :class:`mobileseg.runtimes.capture.RuntimeTensor`."""
        raise CapabilityError(f"per-layer capture is not available for the {self.name} runtime")

    def op_profile(self, export_dir, fmt_entry: dict, x: np.ndarray, runs: int, threads: int = 1) -> dict:
        """Per-op milliseconds of ``runs`` inferences on the host, raw: the dict ``device_scripts/profile_ops.py``
        writes (``source``, ``runs`` and ``events`` or ``times``/``types``), which
        :func:`mobileseg.bench.profile.from_device` turns into the profile schema."""
        raise CapabilityError(self.no_op_profile or f"no per-op profiler for {self.name}")

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
