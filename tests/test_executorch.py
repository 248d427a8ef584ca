"""ExecuTorch (.pte): export through torch.export -> to_edge_transform_and_lower (XNNPACK) and the runtime adapter,
fp32 and fp16, on a tiny model; a .pte written by ExecuTorch directly (not mobileseg) benched with --artifact; and
the one sentence naming the extra when the package is missing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mobileseg import formats


def test_format_and_runtime_rows():
    row, rt = formats.FORMATS["executorch"], formats.RUNTIMES["executorch"]
    assert row.files == ("model.pte",) and row.host_runtime == "executorch" and row.extra == "executorch"
    assert rt.format == "executorch" and not rt.default  # measured when named, like ncnn-vulkan
    assert formats.runtime_key("ET") == "executorch"


def test_missing_package_names_the_extra(monkeypatch):
    import sys

    from mobileseg.errors import MissingDependencyError
    from mobileseg.export import executorch as converter
    from mobileseg.runtimes import get_runtime

    for mod in [m for m in sys.modules if m == "executorch" or m.startswith("executorch.")] + ["executorch"]:
        monkeypatch.setitem(sys.modules, mod, None)  # import of executorch now fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"mobileseg\[executorch\]"):
        get_runtime("executorch").check()
    with pytest.raises(MissingDependencyError, match=r"mobileseg\[executorch\]"):
        converter.warm_up()


def test_missing_op_sentence():
    from mobileseg.runtimes.executorch import missing_op_sentence

    s = missing_op_sentence("/x/model.pte", RuntimeError("Missing operator: [3] my_ns::sparkle.out"))
    assert "'my_ns::sparkle.out'" in s and "model.pte" in s
    assert missing_op_sentence("/x/model.pte", RuntimeError("something else")) is None


@pytest.fixture(scope="module")
def et():
    return pytest.importorskip("executorch.runtime")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_export_and_run_tiny_module(et, tmp_path, precision):
    """The converter and the adapter on a small CNN: parity within the precision's limit, ops delegated to XNNPACK."""
    import artifact_fixtures as af
    import torch

    from mobileseg.export.executorch import convert
    from mobileseg.parity import check
    from mobileseg.runtimes import get_runtime

    net = af.tiny_net()
    x = af.example()
    conv = convert(net, x, str(tmp_path), precision=precision)
    assert conv.files == [str(tmp_path / "model.pte")] and conv.info["delegates"] >= 1
    assert conv.info["ops_outside_delegates"] == {}
    entry = {"files": [{"path": "model.pte"}]}
    sess = get_runtime("executorch").load(
        {"_dir": str(tmp_path), "formats": {"executorch": entry}}, entry, threads=1, precision=precision
    )
    out = sess.run(x.numpy())
    assert out.dtype == np.float32 and sess.settings["threadpool_threads"] == 1
    with torch.no_grad():
        ref = net(x).numpy()
    assert check(out, ref, precision)["ok"]


@pytest.mark.slow
def test_bench_a_pte_written_by_executorch_itself(et, tmp_path):
    """--artifact with a .pte from ExecuTorch's own API: input read from the program, parity against --reference."""
    import artifact_fixtures as af
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from mobileseg.cli import main

    net, x = af.tiny_net(), af.example()
    prog = to_edge_transform_and_lower(torch.export.export(net, (x,)), partitioner=[XnnpackPartitioner()])
    (tmp_path / "tiny.pte").write_bytes(prog.to_executorch().buffer)
    np.save(tmp_path / "x.npy", x.numpy())
    with torch.no_grad():
        np.save(tmp_path / "ref.npy", net(x).numpy())
    rc = main(
        [
            "bench",
            "--artifact",
            str(tmp_path / "tiny.pte"),
            "--input",
            str(tmp_path / "x.npy"),
            "--reference",
            str(tmp_path / "ref.npy"),
            "--warmup",
            "1",
            "--repeats",
            "2",
            "--no-sgemm",
            "--quiet",
            "--out",
            str(tmp_path / "runs"),
            "--export-dir",
            str(tmp_path / "export"),
        ]
    )
    (rec,) = [json.loads(line) for p in (tmp_path / "runs").glob("*.jsonl") for line in p.read_text().splitlines()]
    assert rc == 0 and rec["runtime"] == "executorch" and rec["format"] == "executorch", rec.get("error")
    assert rec["parity"]["ok"] and rec["artifact"]["input"]["shape"] == [1, 3, af.SIZE, af.SIZE]
