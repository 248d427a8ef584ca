"""User-facing errors.

Every error a user can cause (bad model name, bad resolution, missing package, unreadable checkpoint, no device...)
is a :class:`MobilesegError`. The CLI prints its message as one sentence and exits non-zero; library users can catch
the subclasses.
"""

from __future__ import annotations


class MobilesegError(Exception):
    """Base class of every error a user can cause; its message is meant to be shown as is."""

    exit_code = 2


class UnknownModelError(MobilesegError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0] if self.args else ""


class ResolutionError(MobilesegError, ValueError):
    pass


class CheckpointError(MobilesegError):
    pass


class TargetLostError(MobilesegError):
    """The bench target went away mid-run (device unplugged, connection dropped).

    Raised by the transport (``mobileseg.device.adb_direct.DeviceLostError`` is a subclass) and caught by the bench runner,
    which then stops instead of recording an error for each remaining cell, keeps what is done and says ``--resume``.
    It lives here, below both, so the device layer needs nothing from the bench layer.
    """


class ResultsFileError(MobilesegError):
    """A results or eval file is missing, unreadable, not in the record schema (contract 4), or cannot be written."""


class MissingDependencyError(MobilesegError, ImportError):
    """A runtime/converter package is not installed; the message names the extra that provides it."""


def require(module: str, extra: str, purpose: str | None = None):
    """Import ``module`` or raise a :class:`MissingDependencyError` naming the pip extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised by tests via monkeypatching
        what = f" (needed for {purpose})" if purpose else ""
        raise MissingDependencyError(
            f"the Python package '{module.split('.')[0]}' is not installed{what}: "
            f"install it with: pip install 'mobileseg[{extra}]' -c constraints.txt ({exc})"
        ) from None


class DatasetError(MobilesegError):
    """A dataset folder is missing or not in the standard layout (eval; the report reads no dataset)."""
