"""mIoU against an independent per-class computation; resampling against torch; dataset layouts and their errors."""

import numpy as np
import pytest
import torch

from mobileseg.eval.datasets import find_pairs, read_label
from mobileseg.eval.evaluate import predict, keep_ratio_size, window_offsets
from mobileseg.eval.metrics import ConfusionMatrix
from mobileseg.eval.resize import logits_to_labels, resize_image, resize_matrix
from mobileseg.errors import DatasetError


def independent_miou(preds, labels, num_classes, ignore=255):
    """Per class, count intersection and union with boolean masks over all images (no confusion matrix)."""
    inter = np.zeros(num_classes)
    union = np.zeros(num_classes)
    for p, l in zip(preds, labels):
        valid = l != ignore
        for c in range(num_classes):
            pc, lc = (p == c) & valid, (l == c) & valid
            inter[c] += np.logical_and(pc, lc).sum()
            union[c] += np.logical_or(pc, lc).sum()
    present = union > 0
    return 100 * float(np.mean(inter[present] / union[present]))


@pytest.mark.parametrize("num_classes,seed", [(5, 0), (19, 1), (150, 2)])
def test_miou_matches_independent_computation(num_classes, seed):
    rng = np.random.default_rng(seed)
    cm = ConfusionMatrix(num_classes)
    preds, labels = [], []
    for _ in range(4):
        h, w = rng.integers(20, 60, size=2)
        lab = rng.integers(0, num_classes, size=(h, w))
        lab[rng.random((h, w)) < 0.2] = 255
        # predictions agree with the label 60% of the time, else random
        pred = np.where(rng.random((h, w)) < 0.6, np.where(lab == 255, 0, lab), rng.integers(0, num_classes, (h, w)))
        cm.update(pred, lab)
        preds.append(pred)
        labels.append(lab)
    assert cm.miou() == pytest.approx(independent_miou(preds, labels, num_classes), abs=1e-9)
    valid = np.concatenate([l.ravel() for l in labels]) != 255
    agree = np.concatenate([(p == l).ravel() for p, l in zip(preds, labels)])
    assert cm.aacc() == pytest.approx(100 * agree[valid].mean())


def test_miou_edge_cases():
    cm = ConfusionMatrix(4)
    cm.update(np.array([[0, 1], [1, 3]]), np.array([[0, 1], [1, 255]]))
    # class 3 predicted only on an ignored pixel: absent everywhere -> left out; classes 0 and 1 perfect
    assert cm.miou() == 100.0
    cm.update(np.array([2]), np.array([0]))  # class 2 predicted but never labelled -> IoU 0
    assert np.isnan(cm.iou()[3]) and cm.iou()[2] == 0
    with pytest.raises(ValueError, match="outside"):
        cm.update(np.array([0]), np.array([7]))


def test_resampling_matches_torch():
    x = np.random.default_rng(0).random((6, 11, 15)).astype(np.float32)
    for size in ((33, 47), (7, 5), (11, 15)):
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(x)[None], size=size, mode="bilinear", align_corners=False
        )[0].numpy()
        mine = np.einsum("yh,chw,xw->cyx", resize_matrix(size[0], 11), x, resize_matrix(size[1], 15))
        assert np.abs(mine - ref).max() < 1e-5
    img = (np.random.default_rng(1).random((20, 30, 3)) * 255).astype(np.uint8)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None],
        size=(13, 41),
        mode="bilinear",
        align_corners=False,
    )[0].permute(1, 2, 0)
    assert np.abs(resize_image(img, 13, 41) - ref.numpy()).max() < 1e-3
    # logits on a stride-8 grid resampled to the full canvas == torch upsample x8 + argmax
    up = (
        torch.nn.functional.interpolate(
            torch.from_numpy(x)[None], scale_factor=8, mode="bilinear", align_corners=False
        )[0]
        .numpy()
        .argmax(0)
    )
    assert (logits_to_labels(x, 88, 120, 8, 88, 120) == up).mean() > 0.999


def test_test_time_resize_and_windows():
    assert keep_ratio_size(512, 683, 512, 2048) == (512, 683)
    assert keep_ratio_size(1024, 2048, 512, 1024) == (512, 1024)  # Cityscapes at half resolution: whole image
    assert keep_ratio_size(300, 3000, 512, 2048) == (205, 2048)  # the long side is capped
    assert window_offsets(512, 512, 336) == [0]
    assert window_offsets(688, 512, 336) == [0, 176]
    assert window_offsets(1200, 512, 336) == [0, 336, 672, 688]


def test_predict_slide_equals_whole_when_image_fits():
    """A conv net that is translation-equivariant: sliding windows must reproduce the whole-image prediction."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 7, 8, stride=8))

    def run(x):
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    img = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    whole, info = predict(run, img, (64, 96), (0, 0, 0), (1, 1, 1), (8, 12))
    assert info["windows"] == 1
    slid, info = predict(run, img, (64, 64), (0, 0, 0), (1, 1, 1), (8, 8))
    assert info["windows"] == 2
    # windows overlap on whole stride cells, so averaged logits equal the single-pass logits
    assert (whole == slid).mean() > 0.999


def _write_png(path, arr):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_layouts_and_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        find_pairs(tmp_path / "nope")
    with pytest.raises(DatasetError, match="neither an ADE20K"):
        find_pairs(tmp_path)
    ade = tmp_path / "ade"
    _write_png(ade / "images" / "validation" / "a.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match="annotations"):
        find_pairs(ade)
    lab = np.array([[0, 1], [150, 2]], np.uint8)
    _write_png(ade / "annotations" / "validation" / "a.png", lab)
    dataset, pairs = find_pairs(ade)
    assert dataset == "ade20k" and len(pairs) == 1
    assert read_label(pairs[0][1], "ade20k").tolist() == [[255, 0], [149, 1]]
    _write_png(ade / "annotations" / "validation" / "a.png", np.array([[151]], np.uint8))
    with pytest.raises(DatasetError, match="outside the 150 classes"):
        read_label(pairs[0][1], "ade20k")
    cs = tmp_path / "cs"
    _write_png(cs / "leftImg8bit" / "val" / "x" / "x_000_000_leftImg8bit.png", np.zeros((8, 16, 3), np.uint8))
    (cs / "gtFine" / "val" / "x").mkdir(parents=True)
    _write_png(cs / "gtFine" / "val" / "x" / "x_000_000_gtFine_labelIds.png", np.zeros((8, 16), np.uint8))
    with pytest.raises(DatasetError, match="createTrainIdLabelImgs"):
        find_pairs(cs)
    _write_png(cs / "gtFine" / "val" / "x" / "x_000_000_gtFine_labelTrainIds.png", np.full((8, 16), 255, np.uint8))
    dataset, pairs = find_pairs(cs)
    assert dataset == "cityscapes" and (read_label(pairs[0][1], "cityscapes") == 255).all()
