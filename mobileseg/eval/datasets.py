"""Validation sets in their standard folder layouts, and image/label reading.

ADE20K (ADEChallengeData2016): ``images/validation/*.jpg`` + ``annotations/validation/*.png``; label 0 is "other"
(ignored), labels 1..150 become classes 0..149. Cityscapes: ``leftImg8bit/val/<city>/*_leftImg8bit.png`` +
``gtFine/val/<city>/*_gtFine_labelTrainIds.png`` (19 classes, 255 ignored).
Images are read with PIL when it is installed, else with matplotlib.image (PNG only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError

IGNORE = 255


@dataclass(frozen=True)
class DatasetLayout:
    name: str
    num_classes: int
    # default test-time resize: short side -> the training crop size, long side at most this many times it
    short_side: int
    long_factor: float


DATASETS = {
    "ade20k": DatasetLayout("ade20k", 150, 512, 4.0),  # mmseg ADE20K test: img_scale=(2048, 512), keep ratio
    "cityscapes": DatasetLayout("cityscapes", 19, 1024, 2.0),  # mmseg Cityscapes test: img_scale=(2048, 1024)
    # the procedural task of mobileseg.export.synthetic (128 x 128 images, labels = class ids, no ratio to keep)
    "shapes": DatasetLayout("shapes", 4, 128, 1.0),
}


def detect(root: Path) -> str | None:
    if (root / "shapes.json").is_file():  # written by mobileseg.export.synthetic.write_split, ADE20K-like folders
        return "shapes"
    if (root / "images" / "validation").is_dir() or (root / "annotations" / "validation").is_dir():
        return "ade20k"
    if (root / "leftImg8bit").is_dir() or (root / "gtFine").is_dir():
        return "cityscapes"
    return None


def find_pairs(data_dir, dataset: str | None = None) -> tuple[str, list[tuple[Path, Path]]]:
    """``(dataset, [(image, label), ...])`` sorted by image name; :class:`DatasetError` if the layout is wrong."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {root} does not exist: pass --data the folder holding "
            "images/ + annotations/ (ADE20K) or leftImg8bit/ + gtFine/ (Cityscapes)"
        )
    if (root / "ADEChallengeData2016").is_dir() and dataset in (None, "ade20k"):
        root = root / "ADEChallengeData2016"
    found = detect(root)
    dataset = dataset or found
    if dataset is None:
        raise DatasetError(
            f"{root} is neither an ADE20K folder (images/validation + annotations/validation) nor a "
            "Cityscapes folder (leftImg8bit/val + gtFine/val): point --data at the dataset root"
        )
    if dataset not in DATASETS:
        raise DatasetError(f"unknown dataset '{dataset}': choose one of {', '.join(DATASETS)}")
    pairs = _cityscapes(root) if dataset == "cityscapes" else _ade20k(root)
    return dataset, pairs


def _need_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DatasetError(f"{path} is missing: the {what} layout needs it (check --data and --dataset)")


def _ade20k(root: Path):
    img_dir, ann_dir = root / "images" / "validation", root / "annotations" / "validation"
    _need_dir(img_dir, "ADE20K")
    _need_dir(ann_dir, "ADE20K")
    images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        raise DatasetError(f"{img_dir} holds no .jpg/.png images: check --data")
    pairs = []
    for img in images:
        lab = ann_dir / (img.stem + ".png")
        if not lab.is_file():
            raise DatasetError(f"image {img.name} has no annotation {lab}: the ADE20K folder is incomplete")
        pairs.append((img, lab))
    return pairs


def _cityscapes(root: Path):
    img_dir, gt_dir = root / "leftImg8bit" / "val", root / "gtFine" / "val"
    _need_dir(img_dir, "Cityscapes")
    _need_dir(gt_dir, "Cityscapes")
    images = sorted(img_dir.glob("*/*_leftImg8bit.png"))
    if not images:
        raise DatasetError(f"{img_dir} holds no <city>/*_leftImg8bit.png images: check --data")
    pairs = []
    for img in images:
        stem = img.name[: -len("_leftImg8bit.png")]
        lab = gt_dir / img.parent.name / f"{stem}_gtFine_labelTrainIds.png"
        if not lab.is_file():
            hint = (
                " (only labelIds exist: create the train-id maps with cityscapesscripts' createTrainIdLabelImgs)"
                if lab.with_name(f"{stem}_gtFine_labelIds.png").is_file()
                else ""
            )
            raise DatasetError(f"image {img.name} has no label {lab}{hint}")
        pairs.append((img, lab))
    return pairs


def _read(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        Image = None
    try:
        if Image is not None:
            with Image.open(path) as im:
                return np.array(im)
        import matplotlib.image as mpimg

        arr = mpimg.imread(str(path))
    except Exception as exc:  # noqa: BLE001 - any decoder error is a bad file, named to the user
        raise DatasetError(f"cannot read {path} ({exc}): the file is damaged or not an image") from None
    if arr.dtype.kind == "f":  # matplotlib gives PNGs as floats in 0..1
        arr = np.rint(arr * 255).astype(np.uint8)
    return arr


def read_image(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB."""
    arr = _read(path)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def read_label(path: Path, dataset: str) -> np.ndarray:
    """H x W int64 class map with ``IGNORE`` for unlabelled pixels."""
    arr = _read(path)
    if arr.ndim == 3:
        arr = arr[..., 0]
    lab = arr.astype(np.int64)
    if dataset == "ade20k":
        lab = np.where(lab == 0, IGNORE, lab - 1)  # 0 = other (ignored); 1..150 -> 0..149
    n = DATASETS[dataset].num_classes
    bad = (lab != IGNORE) & ((lab < 0) | (lab >= n))
    if bad.any():
        raise DatasetError(
            f"{path} holds label {int(lab[bad][0]) + (1 if dataset == 'ade20k' else 0)}, outside the "
            f"{n} classes of {dataset}: check --dataset"
        )
    return lab
