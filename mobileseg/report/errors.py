"""Errors a user can cause in the report stage (all :class:`~mobileseg.errors.MobilesegError`)."""

from __future__ import annotations

from ..errors import MobilesegError, ResultsFileError  # noqa: F401  (ResultsFileError: re-exported)


class NoRecordsError(MobilesegError):
    """The results hold no record matching the filters given."""


class PublishedDataError(MobilesegError):
    """``published.csv`` is missing or not in the expected columns."""
