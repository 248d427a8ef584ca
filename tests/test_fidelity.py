"""The benchncnn fidelity command: its output parser, the command it runs, and one sentence for a bad path."""

import os

import pytest

from mobileseg.errors import MobilesegError
from mobileseg.perf.fidelity import benchncnn_command, check_binary, main, parse_benchncnn
from mobileseg.resources import project_path


def test_parse_benchncnn_output():
    text = project_path("tests", "fixtures", "benchncnn", "stdout.txt").read_text()
    ((name, row),) = parse_benchncnn(text).items()
    assert name.endswith("model.ncnn.param") and row == {"min_ms": 61.25, "max_ms": 66.8, "avg_ms": 62.43}
    many = parse_benchncnn(
        "      squeezenet  min =   11.73  max =   11.88  avg =   11.78\n"
        "       mobilenet  min =   21.63  max =   21.73  avg =   21.68\n"
    )
    assert list(many) == ["squeezenet", "mobilenet"] and many["mobilenet"]["avg_ms"] == 21.68
    with pytest.raises(MobilesegError, match="no 'min"):
        parse_benchncnn("Usage: benchncnn [loop count]")


def test_command_pins_one_thread_cpu_only():
    cmd = benchncnn_command("/b/benchncnn", "/m/model.ncnn.param", (512, 256, 3), 50, 1)
    assert cmd == [
        "taskset",
        "-c",
        "1",
        "/b/benchncnn",
        "50",
        "1",
        "0",
        "-1",
        "0",
        "param=/m/model.ncnn.param",
        "shape=[512,256,3]",
    ]


def test_bad_benchncnn_path_is_one_sentence(tmp_path, capsys):
    assert main(["--benchncnn", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(MobilesegError, match="folder"):
        check_binary(tmp_path)
    f = tmp_path / "benchncnn"
    f.write_text("")
    os.chmod(f, 0o644)
    with pytest.raises(MobilesegError, match="not executable"):
        check_binary(f)
