"""bench --no-export (export folders used as they are, e.g. copied to a GPU machine without the converters) and
the desktop-GPU label of a local hardware Vulkan cell."""

from test_bench_runner import FakeTarget, fake_export

from mobileseg.bench import run_bench
from mobileseg.bench.runner import existing_export
from mobileseg.cli import main
from mobileseg.results.table import gpu_label, row


def test_no_export_measures_the_folders_there_and_never_calls_the_export_stage(tmp_path):
    calls = []
    root = tmp_path / "export"
    fake_export(calls)("topformer-t", (64, 64), ["ncnn"], "fp32", "logits", str(root / "topformer-t_64x64"))
    recs = run_bench(
        target=FakeTarget(),
        export_fn=existing_export,
        export_root=root,
        models=["topformer-t"],
        resolutions=[64, 128],
        runtimes=["ncnn"],
        repeats=2,
        warmup=0,
        progress=False,
        results_file=tmp_path / "r.jsonl",
        measure_reference=False,
    )
    by_res = {tuple(r["resolution"]): r for r in recs}
    assert by_res[(64, 64)]["status"] == "ok" and by_res[(64, 64)]["parity"]["ok"]
    assert by_res[(128, 128)]["status"] == "error"
    assert "--no-export" in by_res[(128, 128)]["error"] and "holds no export" in by_res[(128, 128)]["error"]


def test_no_export_on_the_command_line_does_not_need_the_converters(tmp_path, monkeypatch, capsys):
    """The export stage would look for pnnx; --no-export must not (a GPU machine has ncnn but no pnnx)."""
    import mobileseg.export.api as api

    def no_export(*a, **kw):
        raise AssertionError("the export stage ran")

    monkeypatch.setattr(api, "export_model", no_export)
    root = tmp_path / "export"
    root.mkdir()
    code = main(
        [
            "bench",
            "--no-export",
            "--export-dir",
            str(root),
            "--models",
            "topformer-t",
            "--res",
            "128",
            "--runtimes",
            "onnxruntime",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--no-sgemm",
            "--quiet",
            "--results-file",
            str(tmp_path / "r.jsonl"),
        ]
    )
    assert code == 1 and "holds no export" in capsys.readouterr().out


def vulkan_record(kind="local", software=False):
    return {
        "model": "topformer-t",
        "resolution": [512, 512],
        "runtime": "ncnn-vulkan",
        "gflops": 0.6,
        "stats_ms": {"median": 10.0},
        "sgemm": {"macs_per_s": 1e9},
        "device": {"kind": kind, "model": "host-intel-xeon-a43ba0" if kind == "local" else "Pixel 7"},
        "runtime_settings": {
            "vulkan": True,
            "vulkan_device": "llvmpipe" if software else "NVIDIA H200",
            "vulkan_software": software,
        },
    }


def test_a_local_hardware_gpu_is_labelled_a_desktop_gpu_and_has_no_cpu_sgemm_share():
    r = row(vulkan_record())
    assert r["device"] == "host-intel-xeon-a43ba0 / NVIDIA H200 (desktop GPU)" and r["share_of_sgemm"] is None
    assert r["gmac_per_s"] is not None
    assert gpu_label(vulkan_record(software=True)) is None  # lavapipe: numerics only, no GPU
    assert gpu_label(vulkan_record(kind="adb")) is None  # a phone's label already names the phone
    cpu = dict(vulkan_record(), runtime="ncnn", runtime_settings={"threads": 1})
    assert row(cpu)["device"] == "host-intel-xeon-a43ba0" and row(cpu)["share_of_sgemm"] is not None
