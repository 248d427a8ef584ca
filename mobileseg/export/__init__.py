"""Export: BatchNorm folding, then one artifact per format of :data:`mobileseg.formats.FORMATS` (torch, ONNX, ncnn,
TFLite, ExecuTorch; fp32, fp16 or int8) with a manifest and a parity check each.

``export_model(...)`` (see :mod:`mobileseg.export.api`) is the Python API behind ``mobileseg export``.
"""

from __future__ import annotations

from .fold import FoldError, fold_batchnorm


def export_model(*args, **kwargs):
    """See :func:`mobileseg.export.api.export_model` (imported lazily: it pulls in torch and the converters)."""
    from .api import export_model as _export_model

    return _export_model(*args, **kwargs)


__all__ = ["FoldError", "export_model", "fold_batchnorm"]
