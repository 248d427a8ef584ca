"""The report renders from a hand-written results file; the Pareto frontier on hand-made cases; user errors."""

import json
import re

import pytest

from mobileseg.report import build_report, frontier_path, pareto_mask
from mobileseg.report.data import attach_miou, load_evals, load_results
from mobileseg.report.errors import NoRecordsError, ResultsFileError
from mobileseg.report.published import load_published


def record(model, res, runtime, median, device=None, status="ok", params=None, fmt=None, ts="2026-11-21T05:00:00"):
    fmt = (
        fmt
        or {"onnxruntime": "onnx", "ncnn": "ncnn", "ncnn-vulkan": "ncnn", "torch": "torch", "litert": "tflite"}[runtime]
    )
    device = device or {"kind": "local", "model": None, "emulated": False}
    h, w = res
    return {
        "schema_version": 1,
        "id": f"{device['kind']}|{model}|{h}x{w}|{fmt}|{runtime}|fp32|logits|t1",
        "timestamp": ts,
        "model": model,
        "resolution": [h, w],
        "format": fmt,
        "runtime": runtime,
        "runtime_version": "1.0",
        "precision": "fp32",
        "graph": "logits",
        "threads": 1,
        "device": device,
        "emulated": device.get("emulated", False),
        "harness": "python-inproc",
        "stats_ms": {"median": median, "p10": median * 0.95, "p90": median * 1.1, "count": 20},
        "samples_ms": [median] * 3,
        "parity": {"ok": True, "rel_l2": 1e-6},
        "gflops": 1.0,
        "params": params,
        "status": status,
    }


@pytest.fixture
def results_file(tmp_path):
    phone = {"kind": "adb", "model": "Pixel 4", "soc": "SM8150", "serial": "abc", "emulated": False}
    recs = [
        record("topformer-t", (512, 512), "onnxruntime", 20.0, params=1_400_000),
        record("topformer-s", (512, 512), "onnxruntime", 35.0, params=3_100_000),
        record("topformer-b", (512, 512), "onnxruntime", 50.0, params=5_100_000),
        record("segformer-b0", (512, 512), "onnxruntime", 200.0),
        record("lraspp-mbv3-large", (512, 512), "onnxruntime", 60.0),
        record("topformer-t", (448, 448), "onnxruntime", 15.0),
        record("topformer-t", (512, 512), "ncnn", 25.0),
        record("topformer-b", (512, 512), "ncnn", 60.0),
        record("topformer-b", (512, 512), "ncnn", 1.0, status="error"),
        record("topformer-t", (512, 512), "ncnn", 80.0, device=phone),
        # an older record of the same cell: the newer one (20 ms) wins
        record("topformer-t", (512, 512), "onnxruntime", 99.0, ts="2026-11-20T00:00:00"),
    ]
    path = tmp_path / "host.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return path


def test_pareto_hand_made():
    # (latency, mIoU): C is dominated by B (faster and better); D by E; E, B, A form the frontier.
    lat = [10, 20, 30, 40, 5, 20]
    miou = [30, 35, 34, 36, 29, 35]
    #      A   B   C   D   E   B' (a tie with B: neither dominates the other)
    assert pareto_mask(lat, miou) == [True, True, False, True, True, True]
    assert frontier_path(lat, miou) == [(5, 29), (10, 30), (20, 35), (20, 35), (40, 36)]
    assert pareto_mask([1, float("nan")], [1, 2]) == [True, False]
    assert pareto_mask([], []) == []


def test_load_results_filters_and_dedup(results_file):
    df = load_results([results_file])
    assert len(df) == 9  # 11 lines, one failed, one superseded
    t = df[(df.model == "topformer-t") & (df.resolution == "512x512") & (df.runtime == "onnxruntime")]
    assert t.median_ms.tolist() == [20.0]
    assert set(load_results([results_file], runtime="ncnn").runtime) == {"ncnn"}
    assert set(load_results([results_file], device="Pixel 4").device) == {"Pixel 4"}
    with pytest.raises(NoRecordsError, match="available"):
        load_results([results_file], runtime="litert")


def test_miou_sources(results_file, tmp_path):
    pub = load_published()
    ev = tmp_path / "eval.jsonl"
    ev.write_text(
        json.dumps(
            {
                "kind": "eval",
                "model": "topformer-s",
                "dataset": "ade20k",
                "format": "onnx",
                "runtime": "onnxruntime",
                "miou": 12.5,
                "resolution": [512, 512],
            }
        )
        + "\n"
    )
    df = attach_miou(load_results([results_file]), pub, load_evals([ev]), "ade20k")
    by = {(r.model, r.resolution, r.runtime, r.device): r for r in df.itertuples()}
    assert by[("topformer-t", "448x448", "onnxruntime", "host")].miou == 32.5  # the dagger row of Table 1
    assert by[("topformer-s", "512x512", "onnxruntime", "host")].miou == 12.5
    assert by[("topformer-s", "512x512", "onnxruntime", "host")].miou_source.startswith("evaluated")
    assert by[("topformer-b", "512x512", "ncnn", "host")].miou_source == "TopFormer paper, Table 1"  # not a file name


def test_report_renders(results_file, tmp_path):
    out = tmp_path / "report"
    rep = build_report(results=[str(results_file)], out=out)
    names = {p.name for p in rep.files()}
    for stem in (
        "figure1-published",
        "pareto-host-onnxruntime",
        "pareto-host-ncnn",
        "pareto-pixel-4-ncnn",
        "paper-vs-measured",
        "runtimes-host",
    ):
        assert f"{stem}.png" in names and f"{stem}.svg" in names, stem
    for p in rep.files():
        assert p.is_file() and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    # every plot is in the page: the Pareto plots as inline SVG with their points' records, the others as PNG
    interactive = html.count("<figure class='points'")
    assert interactive == len(rep.points) == 4  # Figure 1 and three measured device x runtime plots
    assert html.count("data:image/png;base64,") + interactive == len(rep.plots) and "src='report" not in html
    assert not re.search(r"(src|href)=['\"](https?:|//)", html) and "@import" not in html  # nothing from the network
    md = (out / "report.md").read_text()
    # the frontier in the host/onnxruntime table: T 448 (15 ms), T (20), S (35), B (50) are on it; LR-ASPP
    # (60 ms, 33.1) is dominated by TopFormer-B (50 ms, 37.8); SegFormer-B0 (200 ms, 37.4) too.
    section = md.split("### host, onnxruntime")[1].split("###")[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ")}
    assert rows["topformer-b"].rstrip(" |").split("|")[-2].strip() == "yes"
    assert rows["lraspp-mbv3-large"].rstrip(" |").split("|")[-2].strip() == ""
    assert rows["segformer-b0"].rstrip(" |").split("|")[-2].strip() == ""
    assert "Paper vs measured latency" in md and "| topformer-s | 512x512 | host onnxruntime | 35.00 | 74" in md


def test_software_vulkan_and_emulated_timings_stay_off_latency_axes(results_file, tmp_path):
    from mobileseg.results.table import numerics_only

    lavapipe = record("topformer-t", (512, 512), "ncnn-vulkan", 3.0, params=1_400_000)
    lavapipe["runtime_settings"] = {
        "vulkan": True,
        "vulkan_device": "llvmpipe (LLVM 15.0.6, 256 bits)",
        "vulkan_device_type": "cpu",
        "vulkan_software": True,
    }
    lavapipe["parity"] = {"ok": True, "rel_l2": 1.5e-3, "argmax_agree": 1.0}
    gpu = dict(
        lavapipe,
        id="adb|" + lavapipe["id"].split("|", 1)[1],
        device={"kind": "adb", "model": "Pixel 4", "serial": "abc", "emulated": False},
        runtime_settings=dict(
            lavapipe["runtime_settings"],
            vulkan_device="Adreno (TM) 640",
            vulkan_device_type="integrated",
            vulkan_software=False,
        ),
    )
    emu = record(
        "topformer-t",
        (512, 512),
        "ncnn",
        4.0,
        device={"kind": "emu", "model": "emu-arm64", "serial": "e", "emulated": True},
    )
    assert numerics_only(lavapipe) and numerics_only(emu) and not numerics_only(gpu)
    path = tmp_path / "mixed.jsonl"
    path.write_text(results_file.read_text() + "".join(json.dumps(r) + "\n" for r in (lavapipe, gpu, emu)))
    rep = build_report(results=[str(path)], out=tmp_path / "report")
    stems = {p.stem for p in rep.files() if p.suffix == ".png"}
    assert "pareto-pixel-4-ncnn-vulkan" in stems  # a real GPU's timings are plotted
    assert not any("emu-arm64" in s for s in stems) and "pareto-host-ncnn-vulkan" not in stems
    md = (tmp_path / "report" / "report.md").read_text()
    section = md.split("### host, ncnn-vulkan: numerics only (software Vulkan")[1].split("###")[0]
    assert "1.50000000e-03" in section or "0.0015" in section
    assert "latency" not in section.split("\n\n")[1]  # the table has no latency column
    assert "emu-arm64 (emulated), ncnn: numerics only (emulated device" in md
    paper = md.split("### Paper vs measured latency")[1].split("###")[0]
    assert "ncnn-vulkan" not in paper.replace("Pixel 4 ncnn-vulkan", "") and "emu-arm64" not in paper


def test_published_only_and_cli(tmp_path, capsys):
    from mobileseg.cli import main

    assert main(["report", "--published-only", "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "figure1-published.png").is_file()
    assert (tmp_path / "p" / "figure1-published.svg").is_file()
    assert "HTML page" in capsys.readouterr().out


def test_user_errors(tmp_path, capsys):
    from mobileseg.cli import main

    with pytest.raises(ResultsFileError, match="not found"):
        load_results([tmp_path / "missing.jsonl"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    with pytest.raises(ResultsFileError, match="not a mobileseg results record"):
        load_results([bad])
    good = json.dumps(record("topformer-t", (512, 512), "onnxruntime", 20.0))
    bad.write_text(good + "\n" + good[:30])  # an interrupted writer's last line is skipped
    assert len(load_results([bad])) == 1
    bad.write_text("not json\n")
    with pytest.raises(ResultsFileError, match="line 1 is not JSON"):
        load_results([bad])
    # through the CLI: one sentence, exit code 2, nothing written
    out = tmp_path / "r"
    assert main(["report", "--results", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobileseg: error:") and "Traceback" not in err
    assert not out.exists()
