"""python -m mobileseg.perf.table2 without a GPU: options, the MHSA kernel switch, OOM handling, the table and its
ratios from fake measurements; the CUDA parts run only where torch sees a GPU. No timing is asserted."""

import json

import pytest
import torch

from mobileseg.errors import MobilesegError
from mobileseg.models.xformer import MultiHeadSelfAttention, XFormerCls, set_fused_attn
from mobileseg.perf import table2

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none here)")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where torch sees no CUDA GPU")


def test_unknown_row_gets_one_sentence_with_the_nearest_names():
    with pytest.raises(MobilesegError, match="unknown Table 2 row 'xformer-mha'.*did you mean xformer-mhsa"):
        table2.check_rows(["xformer-mha"])
    assert [r.name for r in table2.check_rows(["xformer-xfa", "deit-tiny"])] == ["deit-tiny", "xformer-xfa"]


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(resolutions=[352]), "XFormer MHSA needs an input size that is a multiple of 64, not 352"),
        (dict(kernels=["flash"]), "unknown attention kernel 'flash'"),
        (dict(cap_gb=0), "--cap-gb must be above 0"),
        (dict(batch=0), "--batch must be at least 1"),
        (dict(repeats=0), "--repeats must be at least 1"),
    ],
)
def test_bad_options_are_refused_before_the_gpu(kw, message):
    args = dict(
        rows=list(table2.ROWS.values()), resolutions=[256], kernels=["math"], batch=2, cap_gb=24, warmup=1, repeats=5
    )
    args.update(kw)
    with pytest.raises(MobilesegError, match=message):
        table2.check_options(**args)


def test_memory_cap_is_a_fraction_of_the_card_and_cannot_exceed_it():
    assert table2.cap_fraction(24, 96 * 2**30) == pytest.approx(0.25)
    with pytest.raises(MobilesegError, match="--cap-gb 200 is more than this GPU has"):
        table2.cap_fraction(200, 141 * 2**30)


def test_cli_errors_exit_2_without_a_traceback(capsys):
    assert table2.main(["--rows", "xformer-xfa", "--res", "100"]) == 2
    assert "XFormer XFA needs an input size that is a multiple of 64, not 100" in capsys.readouterr().err
    assert table2.main(["--rows", "xformer-xfa", "--cuda-graph", "--autograd"]) == 2
    assert "--cuda-graph times inference passes only" in capsys.readouterr().err


@no_cuda
def test_cli_without_cuda_says_so(capsys):
    assert table2.main(["--rows", "xformer-xfa", "xformer-mhsa", "--res", "64"]) == 2
    assert "torch sees no CUDA device here" in capsys.readouterr().err


def test_timm_rows_name_the_gpu_extra_when_timm_is_missing(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_timm(name, *a, **kw):
        if name == "timm" or name.startswith("timm."):
            raise ImportError("No module named 'timm'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_timm)
    monkeypatch.delitem(__import__("sys").modules, "timm", raising=False)
    assert table2.main(["--rows", "deit-tiny", "--res", "256"]) == 2
    assert "pip install 'mobileseg[gpu]'" in capsys.readouterr().err


def test_mhsa_fused_switch_keeps_numerics_and_checkpoint_keys():
    torch.manual_seed(0)
    model = XFormerCls(attention="mhsa").eval()
    keys = list(model.state_dict())
    assert all(not m.fused_attn for m in model.modules() if isinstance(m, MultiHeadSelfAttention))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        explicit = model(x)
        assert set_fused_attn(model, True) == 9  # 2 + 3 + 4 XF blocks
        fused = model(x)
    assert list(model.state_dict()) == keys
    assert torch.allclose(explicit, fused, rtol=1e-4, atol=1e-5)
    assert set_fused_attn(XFormerCls(attention="xfa"), True) == 0  # XFA has no softmax attention to switch


@pytest.mark.parametrize("kernel", ["math", "fused"])
def test_a_cell_measures_on_cpu_at_a_tiny_resolution(kernel):
    rec = table2.measure_cell(table2.ROWS["xformer-mhsa"], kernel, 64, batch=1, warmup=0, repeats=6, device="cpu")
    assert rec["status"] == "ok" and rec["kernel"] == kernel and rec["attention_modules"] == 9
    assert len(rec["samples_ms"]) == 6 and rec["stats_ms"]["count"] == 6
    assert rec["stats_ms"]["median_ci_low"] is not None  # 6 samples: the median's 95% interval exists
    assert "peak_allocated_mib" not in rec  # no allocator figure off CUDA


def test_out_of_memory_is_the_cells_status_and_the_run_goes_on():
    def oom(res):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 24.00 GiB")

    row = table2.ROWS["xformer-mhsa"]
    rec = table2.measure_cell(row, "math", 64, warmup=0, repeats=2, device="cpu", build=oom)
    assert rec["status"] == "oom" and "out of memory" in rec["error"] and "samples_ms" not in rec

    def broken(res):
        raise ValueError("bad layer")

    assert table2.measure_cell(row, "math", 64, device="cpu", build=broken)["status"] == "error"
    assert table2.measure_cell(row, "math", 64, warmup=0, repeats=1, device="cpu")["status"] == "ok"


def test_cuda_graph_timing_is_refused_off_cuda():
    with pytest.raises(MobilesegError, match="CUDA-graph timing needs a CUDA device"):
        table2.measure_cell(table2.ROWS["xformer-xfa"], None, 64, device="cpu", cuda_graph=True)


def fake(row, kernel, res, median, alloc, reserved=None, status="ok", autograd=False):
    rec = {"row": row, "kernel": kernel, "resolution": res, "autograd": autograd, "status": status}
    if status == "ok":
        rec.update(
            stats_ms={"median": median, "median_ci_low": median * 0.99, "median_ci_high": median * 1.01},
            peak_allocated_mib=alloc,
            peak_reserved_mib=reserved or alloc,
        )
    return rec


def test_ratios_and_table_from_fake_measurements():
    recs = [
        fake("mobilevit-s", "math", 1024, 20.0, 10000),
        fake("mobilevit-s", "fused", 1024, 18.0, 1000),
        fake("xformer-xfa", None, 1024, 10.0, 6000),
        fake("xformer-mhsa", "math", 1280, None, None, status="oom"),
    ]
    paper, math, fused = table2.ratios(recs)
    assert paper["speedup"] == pytest.approx(98.06 / 49.89) and paper["memory_saving"] == pytest.approx(0.3169, 1e-3)
    assert math["kernel"] == "math" and math["speedup"] == pytest.approx(2.0) and math["memory_saving"] == 0.4
    assert fused["speedup"] == pytest.approx(1.8) and fused["memory_saving"] == pytest.approx(-5.0)
    md = table2.markdown({"gpu": "Fake GPU", "batch": 2}, recs)
    assert "# XFormer Table 2 on Fake GPU" in md
    assert "| MobileViT-S | MHSA | | paper | 98.06 / 10837 | 236.9 / 20992 |" in md
    assert "| XFormer MHSA | MHSA | | paper | 109.77 / 16426 | OOM |" in md
    assert "| XFormer MHSA | MHSA | math | ours | - | OOM |" in md
    assert "| ours | math | False | 2.00x (20.00 / 10.00) | 40% (10000 -> 6000) |" in md


def test_written_files_hold_meta_records_and_ratios(tmp_path):
    recs = [fake("mobilevit-s", "math", 1024, 20.0, 10000), fake("xformer-xfa", None, 1024, 10.0, 6000)]
    table2.write(str(tmp_path / "t"), {"gpu": "Fake GPU"}, recs)
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["meta"]["gpu"] == "Fake GPU" and len(data["records"]) == 2 and data["ratios"][1]["speedup"] == 2.0
    assert (tmp_path / "t.md").read_text().startswith("# XFormer Table 2 on Fake GPU")


@needs_cuda
def test_a_tiny_cap_makes_a_cell_run_out_of_memory():
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(table2.cap_fraction(0.01, total))  # 10 MiB: no XFormer fits
    try:
        rec = table2.measure_cell(table2.ROWS["xformer-mhsa"], "math", 256, warmup=0, repeats=1)
        assert rec["status"] == "oom"
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    rec = table2.measure_cell(table2.ROWS["xformer-xfa"], None, 64, warmup=0, repeats=2)
    assert rec["status"] == "ok" and rec["peak_allocated_mib"] > 0


def test_committed_reference_run_answers_both_claims():
    """The committed H200 run has every Table 2 cell, both kernels, and the ratios at 1024 px."""
    from mobileseg.results.paths import REFERENCE_DIR

    with open(f"{REFERENCE_DIR}/table2-nvidia-h200.json") as f:
        data = json.load(f)
    cells = {(r["row"], r["kernel"], r["resolution"], r["autograd"]) for r in data["records"]}
    for grad in (False, True):
        for row, kernel, res in table2.cells(table2.ROWS.values(), table2.RESOLUTIONS, table2.KERNELS):
            assert (row.name, kernel, res, grad) in cells
    assert {(r["kernel"], r["autograd"]) for r in data["ratios"] if r["source"] == "ours"} == {
        ("math", False),
        ("fused", False),
        ("math", True),
        ("fused", True),
    }
    assert data["meta"]["tf32"] is False and data["meta"]["batch"] == 2 and data["meta"]["cap_gb"] == 24
