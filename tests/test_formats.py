"""The one table of formats and runtimes (mobileseg.formats): every row is complete, and the readers follow it."""

from __future__ import annotations

from importlib import import_module

import pytest

from mobileseg import formats
from mobileseg.formats import FORMATS, RUNTIMES


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_has_a_converter_and_a_host_runtime(fmt):
    row = FORMATS[fmt]
    conv = import_module(f"mobileseg.export.{row.converter}")
    for name in ("convert", "check_available", "converter_versions", "CONVERTER"):
        assert hasattr(conv, name), f"mobileseg.export.{row.converter} lacks {name}"
    assert RUNTIMES[row.host_runtime].format == fmt
    assert row.files and all(f.startswith("model.") for f in row.files)
    assert set(row.precisions) <= set(formats.PRECISIONS)


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_every_runtime_row_names_its_adapter(name):
    from mobileseg.runtimes import get_runtime

    rt = get_runtime(name)
    assert rt.name == name and rt.format == RUNTIMES[name].format and rt.extra == RUNTIMES[name].extra
    for alias in RUNTIMES[name].aliases:
        assert get_runtime(alias).name == name


def test_readers_follow_the_table():
    from mobileseg.bench.suite import Cell, build_group
    from mobileseg.device import probe
    import mobileseg.export
    import mobileseg.runtimes

    # the table is the one list: no package keeps a copy of its names (they were tuples named like the table)
    assert not hasattr(mobileseg.export, "FORMATS") and not hasattr(mobileseg.runtimes, "RUNTIMES")
    g = build_group(["topformer-t"], [64], list(RUNTIMES))
    assert {Cell("topformer-t", (64, 64), r).format for r in g["runtimes"]} == set(FORMATS)
    for module in formats.device_modules():
        assert f'"{module}"' in probe._PROBE_SCRIPT  # the device probe looks for every device runtime module


def test_model_and_side_files():
    assert formats.model_file("ncnn", ["a/model.ncnn.bin", "a/model.ncnn.param"]) == "a/model.ncnn.param"
    assert formats.side_file("ncnn", ["a/model.ncnn.bin", "a/model.ncnn.param"]) == "a/model.ncnn.bin"
    assert formats.side_file("onnx", ["model.onnx"]) is None
    assert FORMATS["ncnn"].suffixes == (".ncnn.param", ".ncnn.bin")
    assert formats.runtime_key("ORT") == "onnxruntime" and formats.runtime_key("tensorrt") is None
