"""Export: BatchNorm folding, then torch / ONNX / ncnn / TFLite artifacts with a manifest and a parity check each.

``export_model(...)`` (see :mod:`mobileseg.export.api`) is the Python API behind ``mobileseg export``.
"""
from __future__ import annotations

from .. import formats as _formats
from .fold import FoldError, fold_batchnorm

FORMATS = tuple(_formats.FORMATS)  # every format export can write (the table: mobileseg.formats)


def export_model(*args, **kwargs):
    """See :func:`mobileseg.export.api.export_model` (imported lazily: it pulls in torch and the converters)."""
    from .api import export_model as _export_model

    return _export_model(*args, **kwargs)


__all__ = ["FORMATS", "FoldError", "export_model", "fold_batchnorm"]
