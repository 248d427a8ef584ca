"""What a runtime adapter's ``intermediates`` returns: one intermediate tensor as the runtime holds it.

Each tensor carries the runtime's name for it (ONNX: the producing node's name; ncnn: ``layer:blob``; LiteRT: the
tensor name) and the op type. Values are as the runtime keeps them (LiteRT: NHWC); :mod:`mobileseg.numerics.match`
aligns layouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RuntimeTensor:
    index: int
    name: str
    op: str
    value: np.ndarray
    layout: str = "NCHW"  # what a 4-D tensor is: NCHW (onnx, ncnn) or NHWC (LiteRT)
