"""Bilinear resampling as interpolation matrices (same arithmetic as torch ``interpolate(bilinear,
align_corners=False)`` and OpenCV ``INTER_LINEAR`` when up-sampling; no anti-aliasing).

A 2-D bilinear resize is ``Ry @ X @ Rx.T``; keeping the matrices lets the logits be resampled to a large label
in row bands, so a 150-class map at full label size never has to exist in memory at once.
"""

from __future__ import annotations

import numpy as np


def interp_matrix(src_coords: np.ndarray, n_in: int) -> np.ndarray:
    """Rows of weights reading ``n_in`` samples at fractional positions ``src_coords`` (clamped to the edges)."""
    s = np.clip(np.asarray(src_coords, dtype=np.float64), 0, n_in - 1)
    i0 = np.floor(s).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = s - i0
    m = np.zeros((len(s), n_in), dtype=np.float32)
    rows = np.arange(len(s))
    np.add.at(m, (rows, i0), (1 - w1).astype(np.float32))
    np.add.at(m, (rows, i1), w1.astype(np.float32))
    return m


def resize_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Matrix resampling ``n_in`` samples onto ``n_out``: output centre i + 0.5 reads input (i + 0.5) * n_in / n_out."""
    return interp_matrix((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, n_in)


def resize_image(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """H x W x C (any dtype) -> height x width x C float32, bilinear."""
    ry = resize_matrix(height, img.shape[0])
    rx = resize_matrix(width, img.shape[1])
    x = img.astype(np.float32)
    return np.einsum("yh,hwc,xw->yxc", ry, x, rx, optimize=True)


def logits_to_labels(
    logits: np.ndarray, out_h: int, out_w: int, stride: float, valid_h: float, valid_w: float, band: int = 64
) -> np.ndarray:
    """Argmax of ``logits`` (C x h x w, on a grid of ``stride`` pixels) bilinearly resampled to out_h x out_w.

    ``valid_h x valid_w`` (pixels of the model's input canvas) is the part of the canvas that holds the image (the
    rest is padding): it is stretched onto the output, so padding never reaches the prediction.
    """
    c, h, w = logits.shape
    # output pixel centre -> canvas pixel -> logit-grid sample (grid sample k has its centre at (k + 0.5) * stride)
    ys = (np.arange(out_h) + 0.5) * (valid_h / out_h) / stride - 0.5
    xs = (np.arange(out_w) + 0.5) * (valid_w / out_w) / stride - 0.5
    ry, rx = interp_matrix(ys, h), interp_matrix(xs, w)
    out = np.empty((out_h, out_w), dtype=np.int64)
    tmp = np.einsum("chw,xw->chx", logits.astype(np.float32), rx, optimize=True)  # C x h x out_w
    for y0 in range(0, out_h, band):
        part = np.einsum("yh,chx->cyx", ry[y0 : y0 + band], tmp, optimize=True)
        out[y0 : y0 + band] = part.argmax(0)
    return out
