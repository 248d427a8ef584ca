"""Calibration images for int8 export: read from a folder (or drawn procedurally) and preprocessed by the model's
own input contract, so the activation ranges a quantizer records are those the deployed model sees.

Preprocessing is eval's ``stretch`` path (bilinear without anti-aliasing, the arithmetic of
:mod:`mobileseg.eval.resize`, to the artifact's H x W, then ``(x - mean) / std`` with the spec's RGB 0..255 mean/std). Files are taken in sorted order of their
path under the folder (recursively; in a data-set folder, ADE20K-style ``images/`` + ``annotations/`` or Cityscapes'
``leftImg8bit/`` + ``gtFine/``, only the images folder, never the label maps), the first
``count`` of them. The set is identified by a sha256 over the names and file hashes of the images used plus the
preprocessing, recorded in the manifest (``int8.calibration``) and in the cache key of the int8 artifacts.

Without a folder, ``count`` seeded procedural images (:mod:`mobileseg.export.synthetic`) are used, and the manifest
and every record say so in words: such ranges fit the procedural task, not a user's photos.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MobilesegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_COUNT = 32
SYNTHETIC_SEED = 1234
# a deliberately bad calibration for tests and demonstrations: every image one mid-grey colour
CONSTANT = "constant"


class CalibrationError(MobilesegError):
    """A calibration folder or option that cannot be used."""


@dataclass
class Calibration:
    """The preprocessed calibration batch (N x 3 x H x W float32) and what the manifest records about it."""

    images: np.ndarray
    source: str
    folder: str | None
    files: list = field(default_factory=list)
    sha256: str = ""

    @property
    def count(self) -> int:
        return int(self.images.shape[0])

    @property
    def synthetic(self) -> bool:
        return self.folder is None

    def record(self) -> dict:
        """The manifest's ``int8.calibration`` entry."""
        rec = {
            "source": self.source,
            "folder": self.folder,
            "images": self.count,
            "sha256": self.sha256,
            "preprocessing": "bilinear resize to the input size, RGB 0..255, (x - mean) / std",
        }
        if self.synthetic:
            rec["note"] = (
                "no --calib folder given: calibrated on synthetic images (seeded procedural shapes, "
                "mobileseg.export.synthetic), not on real data"
            )
        return rec


def list_images(folder) -> list[Path]:
    """The images under ``folder`` (sorted); one sentence if it is missing, not a folder or holds none."""
    root = Path(folder)
    if not root.exists():
        raise CalibrationError(f"calibration folder {root} does not exist: pass --calib a folder of images")
    if not root.is_dir():
        raise CalibrationError(f"--calib {root} is a file: pass the folder that holds the calibration images")
    # a data-set folder (ADE20K / shapes: images/ + annotations/; Cityscapes: leftImg8bit/ + gtFine/): its images
    # only, never its label maps
    top = next((root / d for d in ("images", "leftImg8bit") if (root / d).is_dir()), root)
    files = sorted(p for p in top.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(
            f"calibration folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)}): put a few "
            "dozen images like the ones the model will see there"
        )
    return files


def read_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8; one sentence for a file that is not a readable image."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with matplotlib
        raise CalibrationError(
            "reading calibration images needs Pillow: pip install pillow (part of the onnx and tflite extras)"
        ) from None
    try:
        with Image.open(path) as im:
            return np.ascontiguousarray(np.array(im.convert("RGB")))
    except Exception as exc:  # noqa: BLE001 - any decoder error is a bad file, named to the user
        raise CalibrationError(
            f"cannot read calibration image {path} ({type(exc).__name__}): the file is damaged "
            "or not an image; remove it from the --calib folder"
        ) from None


def preprocess(image: np.ndarray, resolution, mean, std) -> np.ndarray:
    """uint8 H0 x W0 x 3 -> float32 3 x H x W by the model's input contract."""
    import torch

    h, w = resolution
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None]
    if tuple(x.shape[2:]) != (h, w):
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    x = (x[0].numpy() - np.asarray(mean, np.float32).reshape(3, 1, 1)) / np.asarray(std, np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def load(folder, resolution, mean, std, count: int | None = None) -> Calibration:
    """The calibration batch from ``folder`` (None: synthetic; :data:`CONSTANT`: one grey colour, a bad set)."""
    count = DEFAULT_COUNT if count is None else count
    if not isinstance(count, int) or count < 1:
        raise CalibrationError(f"--calib-count must be a whole number of at least 1, not {count}")
    h, w = resolution
    prep = {"resolution": [h, w], "mean": list(mean), "std": list(std), "count": count}
    if folder is None or str(folder) == CONSTANT:
        if folder is None:
            from . import synthetic

            rng = np.random.default_rng(SYNTHETIC_SEED)
            raw = [synthetic.sample(rng, max(h, w))[0] for _ in range(count)]
            source = f"synthetic: {count} seeded procedural images (seed {SYNTHETIC_SEED})"
        else:
            raw = [np.full((h, w, 3), 128, np.uint8) for _ in range(count)]
            source = f"constant: {count} uniform grey images (a deliberately bad calibration)"
        images = np.stack([preprocess(r, (h, w), mean, std) for r in raw])
        digest = hashlib.sha256(json.dumps(dict(prep, source=source), sort_keys=True).encode()).hexdigest()
        return Calibration(images, source, None, [], digest)
    from ..hashing import sha256_file

    root = Path(folder)
    files = list_images(root)[:count]
    images, names = [], []
    for f in files:
        images.append(preprocess(read_rgb(f), (h, w), mean, std))
        names.append([f.relative_to(root).as_posix(), sha256_file(f)])
    digest = hashlib.sha256(json.dumps(dict(prep, files=names), sort_keys=True).encode()).hexdigest()
    return Calibration(
        np.stack(images), f"folder: {len(files)} images", str(root.resolve()), [n for n, _ in names], digest
    )


def check_folder(folder) -> None:
    """Fail early (before the model is built) on a missing or empty ``--calib`` folder."""
    if folder is not None and str(folder) != CONSTANT:
        list_images(folder)
