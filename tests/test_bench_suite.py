"""Suite files: the shipped ones parse; every kind of mistake is one clear sentence naming the file."""

import pytest

from mobileseg.bench.suite import SuiteError, load_suite
from mobileseg.cli import main

GOOD = """
name = "t"
[settings]
warmup = 1
repeats = 2
[[cells]]
models = ["topformer-t"]
resolutions = [64, "128x128"]
runtimes = ["onnxruntime", "torch"]
"""


def test_shipped_suites_parse():
    smoke = load_suite("bench/smoke.toml")
    assert {c.runtime for c in smoke.cells()} == {"onnxruntime", "ncnn", "litert", "torch"}
    paper = load_suite("bench/paper.toml")
    cells = paper.cells()
    keys = {(c.model, c.resolution) for c in cells}
    assert ("topformer-t", (448, 448)) in keys
    for m in ("topformer-t", "topformer-s", "topformer-b"):
        assert (m, (512, 512)) in keys
        assert {c.runtime for c in cells if c.model == m} == {"onnxruntime", "ncnn", "litert", "torch"}


def test_good_suite_expands(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(GOOD)
    s = load_suite(p)
    cells = s.cells()
    assert len(cells) == 4 and cells[0].resolution == (64, 64) and cells[0].format == "onnx"
    assert s.settings == {"warmup": 1, "repeats": 2}


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[[cells]\nmodels = 1", "not valid TOML"),
        ("nmae = 'x'\n[[cells]]\nmodels=['topformer-t']\nresolutions=[64]\nruntimes=['torch']", "unknown key 'nmae'"),
        ("[[cells]]\nmodels=['topformer-q']\nresolutions=[64]\nruntimes=['torch']", "unknown model 'topformer-q'"),
        ("[[cells]]\nmodels=['topformer-t']\nresolutions=[64]\nruntimes=['tensorrt']", "unknown runtime 'tensorrt'"),
        ("[[cells]]\nmodels=['topformer-t']\nresolutions=[100]\nruntimes=['torch']", "multiple of 64"),
        ("[[cells]]\nmodels='topformer-t'\nresolutions=[64]\nruntimes=['torch']", "must be a list"),
        ("[[cells]]\nmodels=['topformer-t']\nruntimes=['torch']", "missing 'resolutions'"),
        ("name='x'", "no [[cells]] group"),
        ("[settings]\nrepeats=0\n[[cells]]\nmodels=['topformer-t']\nresolutions=[64]\nruntimes=['torch']", "'repeats'"),
        ("[[cells]]\nmodels=['topformer-t-cls']\nresolutions=[64]\nruntimes=['torch']", "classification model"),
    ],
)
def test_bad_suites_are_one_clear_sentence(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(SuiteError) as ei:
        load_suite(p)
    msg = str(ei.value)
    assert needle in msg and str(p) in msg and "\n" not in msg


def test_bad_suite_on_the_command_line_exits_2_without_traceback(tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text("[[cells]]\nmodels=['topformer-t']\nresolutions=[64]\nruntimes=['tensorrt']")
    assert main(["bench", "--suite", str(p), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobileseg: error:") and "unknown runtime 'tensorrt'" in err and "Traceback" not in err
    assert main(["bench", "--suite", str(tmp_path / "missing.toml"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_suite_min_time_of_zero_is_refused_like_the_flag():
    """The suite's [settings] follow the bench flags' rules: --min-time 0 is refused, so is min_time = 0."""
    from mobileseg.bench.suite import SuiteError, parse_suite

    cells = [{"models": ["topformer-t"], "resolutions": [64], "runtimes": ["onnxruntime"]}]
    with pytest.raises(SuiteError, match="'min_time' must be a number of seconds above 0"):
        parse_suite({"settings": {"min_time": 0}, "cells": cells})
    assert parse_suite({"settings": {"min_time": 0.5, "cooldown_s": 0}, "cells": cells}).settings["min_time"] == 0.5
