import pytest
import torch
from torch import nn

import mobileseg
from mobileseg.export.fold import ChannelAffine, FoldError, count_batchnorm, fold_batchnorm, rel_l2
from mobileseg.models.layers import Conv2dBN, ConvModule


def _randomise_bn(model):
    """Non-trivial running statistics and affine parameters, so folding is actually exercised."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


class Zoo(nn.Module):
    """Every pattern the folder must handle, with unusual child names."""

    def __init__(self):
        super().__init__()
        self.stem = Conv2dBN(3, 8, 3, 1, 1)  # children c/bn
        self.dw = ConvModule(8, 8, 3, padding=1, groups=8)  # depthwise, children conv/bn
        self.grouped = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16), nn.ReLU())
        self.proj_weird_name = nn.Conv2d(16, 16, 1, bias=True)
        self.norm_weird_name = nn.BatchNorm2d(16)
        self.after_add = nn.BatchNorm2d(16)  # follows an addition: not foldable
        self.fc = nn.Linear(16, 12)
        self.fc_bn = nn.BatchNorm1d(12)
        self.pre_bn = nn.BatchNorm1d(12)  # BN before Linear (BN+Linear head)
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        x = self.grouped(self.dw(self.stem(x)))
        x = self.after_add(x + self.norm_weird_name(self.proj_weird_name(x)))
        x = x.mean(dim=(2, 3))
        return self.head(self.pre_bn(torch.relu(self.fc_bn(self.fc(x)))))


def test_fold_handles_every_pattern():
    model = _randomise_bn(Zoo())
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(108))
    folded = fold_batchnorm(model, x)
    rep = folded.fold_report
    assert count_batchnorm(folded) == 0 and rep["batchnorm_after"] == 0
    assert rep["batchnorm_before"] == 7
    assert rep["folded_into_previous"] == 5 and rep["folded_into_next"] == 1
    assert rep["to_affine"] == ["after_add"] and isinstance(folded.after_add, ChannelAffine)
    assert rep["verify_rel_l2"] <= 1e-6
    with torch.no_grad():
        assert rel_l2(folded(x), model(x)) <= 1e-6
    assert count_batchnorm(model) == 7  # the original is untouched


def test_fold_keeps_bn_before_padded_conv_exact():
    # a BN before a padded conv cannot go into the conv (the padding would see the shift): it becomes an affine
    model = _randomise_bn(nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3, padding=1)))
    folded = fold_batchnorm(model, torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(107)))
    assert folded.fold_report["to_affine"] == ["0"]
    assert count_batchnorm(folded) == 0


def test_fold_rejects_batch_statistics():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    with pytest.raises(FoldError, match="running statistics"):
        fold_batchnorm(model, torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(106)))


def test_fold_detects_a_wrong_fold(monkeypatch):
    import mobileseg.export.fold as fold

    monkeypatch.setattr(fold, "_fold_after", lambda layer, bn: None)  # "fold" that forgets the BN
    model = _randomise_bn(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
    with pytest.raises(FoldError, match="changed the output"):
        fold_batchnorm(model, torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(105)))


@pytest.mark.parametrize("name", ["topformer-t", "topformer-t-cls"])
def test_fold_topformer(name):
    model = _randomise_bn(mobileseg.create_model(name))
    res = (128, 128)
    x = torch.randn(1, 3, *res, generator=torch.Generator().manual_seed(104))
    folded = fold_batchnorm(model, x)
    assert count_batchnorm(folded) == 0
    assert folded.fold_report["verify_rel_l2"] <= 1e-6
    with torch.no_grad():
        assert rel_l2(folded(x), model(x)) <= 1e-5  # float32 run of both


def _small_res(name):
    spec = mobileseg.get_spec(name)
    m = spec.size_multiple
    side = -(-max(128, spec.min_size) // m) * m
    return side, side


@pytest.mark.slow
@pytest.mark.parametrize("name", mobileseg.list_models())
def test_fold_every_model(name):
    model = _randomise_bn(mobileseg.create_model(name))
    folded = fold_batchnorm(model, torch.randn(1, 3, *_small_res(name), generator=torch.Generator().manual_seed(103)))
    assert count_batchnorm(folded) == 0
    assert folded.fold_report["verify_rel_l2"] <= 1e-6


def test_fold_checked_at_small_size_holds_at_export_size():
    # export folds and verifies at the smallest size the model takes: the folded model must match at the export size
    from mobileseg.export.api import torch_threads
    from mobileseg.export.reference import build_export_model, fold_resolution

    spec = mobileseg.get_spec("topformer-t")
    assert fold_resolution(spec, (512, 512)) == (64, 64)
    assert fold_resolution(spec, (64, 64)) == (64, 64)
    model = _randomise_bn(mobileseg.create_model("topformer-t"))
    with torch_threads(1):  # two threads crawl on a loaded 2-core host
        folded = fold_batchnorm(model, torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(102)))
        x = torch.randn(1, 3, 192, 256, dtype=torch.float64, generator=torch.Generator().manual_seed(101))
        with torch.no_grad():
            assert rel_l2(folded.double()(x), model.double()(x)) <= 1e-6
        net, info = build_export_model("topformer-t", (192, 256))
    assert info["fold"]["verify_resolution"] == [64, 64] and info["fold"]["batchnorm_after"] == 0
