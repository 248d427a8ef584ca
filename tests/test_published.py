"""results/published.csv against numbers typed from the papers, a dozen spot checks."""

import math

import pytest

from mobileseg.report.published import figure1_rows, load_published, lookup_miou, paper_latency

TOP, SUP, XF, SEG = (
    "000_c195a235d6102671.txt",
    "001_be9ae0a5fe81e4f4.txt",
    "002_0b96ee80c357e09e.txt",
    "003_19de7a82edf0e122.txt",
)


@pytest.fixture(scope="module")
def pub():
    return load_published()


def one(pub, **where):
    rows = pub
    for k, v in where.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1, f"{where}: {len(rows)} rows"
    return rows.iloc[0]


# (filters, column, value as printed in the paper)
SPOT = [
    (dict(paper_file=TOP, table="Table 1", method="DeepLabV3+", encoder="MobileNetV2"), "latency_ms", 1035),
    (dict(paper_file=TOP, table="Table 1", method="LR-ASPP", encoder="MobileNetV3-Large-reduce"), "miou", 32.3),
    (dict(paper_file=TOP, table="Table 1", method="HRNet-W18-Small"), "gflops", 10.2),
    (
        dict(paper_file=TOP, table="Table 1", method="TopFormer", encoder="TopFormer-T", resolution="448x448"),
        "latency_ms",
        32,
    ),
    (dict(paper_file=TOP, table="Table 1", method="TopFormer", encoder="TopFormer-B"), "params_m", 5.1),
    (dict(paper_file=TOP, table="Table 9", encoder="TopFormer-S", dataset="pascal-context-59"), "miou", 43.68),
    (dict(paper_file=TOP, table="Table 10", method="PSPNet"), "gflops_head", 45.10),
    (dict(paper_file=SUP, table="Supplement Table 1", method="TopFormer-T"), "top1", 66.2),
    (dict(paper_file=SUP, table="Supplement Table 2", method="TopFormer (f)"), "miou", 75.0),
    (dict(paper_file=SEG, table="Table 1a", encoder="MiT-B3", dataset="cityscapes"), "gflops", 962.9),
    (dict(paper_file=SEG, table="Table 2", encoder="MiT-B5", dataset="cityscapes"), "gflops", 1447.6),
    (dict(paper_file=SEG, table="Table 2", encoder="MiT-B0", dataset="cityscapes", resolution="768x1536"), "fps", 26.3),
    (dict(paper_file=XF, table="Table 3", method="Swin-T"), "top1", 77.3),
    (dict(paper_file=XF, table="Table 5", encoder="XFormer"), "miou", 78.5),
]


@pytest.mark.parametrize("where,col,value", SPOT)
def test_spot_values(pub, where, col, value):
    assert one(pub, **where)[col] == pytest.approx(value)


def test_table_row_counts(pub):
    count = lambda f, t: len(pub[(pub.paper_file == f) & (pub.table == t)])  # noqa: E731
    assert count(TOP, "Table 1") == 19
    assert count(TOP, "Table 9") == 12  # 6 rows x (mIoU60, mIoU59)
    assert count(TOP, "Table 10") == 7
    assert count(SUP, "Supplement Table 1") == 3 and count(SUP, "Supplement Table 2") == 8
    assert count(SEG, "Table 1a") == 18  # 6 encoders x 3 datasets
    assert count(XF, "Table 3") == 13 and count(XF, "Table 5") == 8


def test_model_mapping_and_lookups(pub):
    fig = figure1_rows(pub)
    assert fig.is_topformer.sum() == 4
    assert set(fig.model) >= {
        "topformer-t",
        "topformer-s",
        "topformer-b",
        "segformer-b0",
        "lraspp-mbv3-large",
        "hrnet-w18-small",
        "deeplabv3plus-mbv2",
    }
    assert lookup_miou(pub, "topformer-t", "ade20k", (448, 448))[0] == 32.5
    assert lookup_miou(pub, "topformer-t", "ade20k", (512, 512))[0] == 32.8
    assert lookup_miou(pub, "segformer-b2", "ade20k")[0] == 46.5
    assert lookup_miou(pub, "no-such-model", "ade20k") == (None, None)
    assert paper_latency(pub, "topformer-s") == 74
    assert paper_latency(pub, "topformer-t", (448, 448)) == 32
    # derived sums are what the notes say they are
    row = one(pub, paper_file=TOP, table="Table 10", encoder="TopFormer-B")
    assert math.isclose(row.gflops, row.gflops_backbone + row.gflops_head)


def test_missing_published_file(tmp_path, monkeypatch):
    from mobileseg.report.errors import PublishedDataError

    monkeypatch.setenv("MOBILESEG_PUBLISHED", str(tmp_path / "nope.csv"))
    with pytest.raises(PublishedDataError):
        load_published()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(PublishedDataError, match="missing columns"):
        load_published(bad)


def test_csv_models_are_registered_and_agree_with_specs(pub):
    """Every `model` of the CSV is a registered model, and each spec's published figures are a row of the CSV."""
    from mobileseg.registry import get_spec, list_models

    registered = set(list_models())
    assert set(pub.model) - {""} <= registered
    for name in registered:
        spec = get_spec(name)
        pubd = spec.published
        key = "miou" if "miou" in pubd else "top1" if "top1" in pubd else None
        if key is None:
            continue
        rows = pub[(pub.model == name) & (pub.dataset == spec.dataset) & (pub[key] == pubd[key])]
        assert len(rows), f"{name}: no CSV row with {key} {pubd[key]} on {spec.dataset}"
        if "gflops" in pubd:
            assert (rows.gflops == pubd["gflops"]).any(), name
