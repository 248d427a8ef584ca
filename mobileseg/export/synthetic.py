"""A procedural segmentation task ("shapes"): textured shapes on a textured background, drawn from a seed.

Why: quantization figures on random weights say little (flat logits, one class everywhere), and the real data sets
cannot be downloaded here. This task is small enough to train TopFormer-T on two CPU cores in minutes
(``tools/train_fixture.py``) and real enough that its held-out mIoU moves when an int8 artifact loses accuracy.

Classes: 0 background (smooth colour gradient + fine noise), 1 disc (stripes), 2 rectangle (checkerboard),
3 triangle (speckle). Colours are random per shape, so a model must read shape or texture, not colour. Objects
overlap (later ones on top).

:func:`write_split` writes a folder that is at once a calibration folder (``images/*.png``, what ``--calib``
reads) and an eval set (``mobileseg eval --data``): ``images/validation/*.png`` + ``annotations/validation/*.png``
(label = class id, 255 ignored) and a ``shapes.json`` marker that :func:`mobileseg.eval.datasets.detect` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NUM_CLASSES = 4
CLASS_NAMES = ("background", "disc-stripes", "rect-checker", "triangle-speckle")
MARKER = "shapes.json"


def _texture(kind: int, h: int, w: int, rng) -> np.ndarray:
    """A 0..1 intensity pattern for class ``kind`` (H x W)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 1:  # stripes at a random angle and period
        a, period = rng.uniform(0, np.pi), rng.uniform(4, 8)
        return 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period)
    if kind == 2:  # checkerboard
        cell = int(rng.integers(3, 7))
        return ((yy // cell + xx // cell) % 2).astype(np.float32)
    if kind == 3:  # speckle
        return (rng.random((h, w)) > 0.6).astype(np.float32)
    return np.zeros((h, w), np.float32)


def _mask(kind: int, h: int, w: int, rng) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    size = rng.uniform(0.12, 0.3) * min(h, w)
    if kind == 1:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= size**2
    if kind == 2:
        hh, ww = size * rng.uniform(0.6, 1.4), size * rng.uniform(0.6, 1.4)
        return (np.abs(yy - cy) <= hh) & (np.abs(xx - cx) <= ww)
    # triangle: three vertices around the centre, inside all three half-planes
    ang = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
    px, py = cx + 1.4 * size * np.cos(ang), cy + 1.4 * size * np.sin(ang)
    inside = np.ones((h, w), bool)
    sign = np.sign((px[1] - px[0]) * (py[2] - py[0]) - (py[1] - py[0]) * (px[2] - px[0])) or 1.0
    for i in range(3):
        j = (i + 1) % 3
        inside &= sign * ((px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i])) >= 0
    return inside


def sample(rng, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One ``(image H x W x 3 uint8, label H x W uint8)`` pair."""
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / size
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))[..., None]
    img = c0 + (c1 - c0) * (t - t.min()) / (np.ptp(t) + 1e-6)
    img = img + rng.normal(0, 6, (h, w, 1))
    label = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(1, NUM_CLASSES))
        m = _mask(kind, h, w, rng)
        tex = _texture(kind, h, w, rng)[..., None]
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        while np.abs(a - b).mean() < 60:  # the texture must be visible
            b = rng.uniform(0, 255, 3)
        img = np.where(m[..., None], a + (b - a) * tex, img)
        label[m] = kind
    return np.clip(img, 0, 255).astype(np.uint8), label


def batch(rng, n: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs stacked: images N x H x W x 3 uint8, labels N x H x W uint8."""
    pairs = [sample(rng, size) for _ in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def write_split(out, n: int, seed: int, size: int = 128) -> Path:
    """Write ``n`` seeded pairs to ``out`` (images/validation, annotations/validation, shapes.json); returns ``out``."""
    from PIL import Image

    out = Path(out)
    img_dir, ann_dir = out / "images" / "validation", out / "annotations" / "validation"
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img, lab = sample(rng, size)
        Image.fromarray(img).save(img_dir / f"{i:05d}.png")
        Image.fromarray(lab).save(ann_dir / f"{i:05d}.png")
    (out / MARKER).write_text(
        json.dumps(
            {
                "dataset": "shapes",
                "num_classes": NUM_CLASSES,
                "classes": CLASS_NAMES,
                "seed": seed,
                "count": n,
                "size": size,
            },
            indent=1,
        )
    )
    return out
