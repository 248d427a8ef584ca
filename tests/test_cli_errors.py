"""Bad input through the real command line: one sentence on stderr, a non-zero exit, never a traceback.

Each case is one a new user hit while trying the tool (a folder where a file belongs, a file where a folder belongs,
a nonsense setting); the check that catches it runs before anything is exported or measured.
"""

from __future__ import annotations

import pytest

from cli_helpers import one_sentence
from mobileseg.cli import main

BENCH = [
    "bench",
    "--device",
    "local",
    "--models",
    "topformer-t",
    "--res",
    "128",
    "--runtimes",
    "onnxruntime",
    "--no-sgemm",
    "--quiet",
]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path


# -- where results, CSVs and reports are written ----------------------------------------------------------------


def test_results_file_that_is_a_folder_fails_before_measuring(capsys, in_tmp):
    (in_tmp / "folder").mkdir()
    for extra in ([], ["--resume"]):
        err = one_sentence(capsys, BENCH + ["--results-file", "folder"] + extra)
        assert "it is a folder, not a file" in err and "--results-file" in err
    assert list((in_tmp / "folder").iterdir()) == []


def test_bench_out_that_is_a_file(capsys, in_tmp):
    err = one_sentence(capsys, BENCH + ["--out", "a-file"])
    assert "a file is in the way" in err and "--out" in err
    assert not (in_tmp / "export").exists()  # nothing was exported


def test_results_csv_that_is_a_folder_or_under_a_file(capsys, in_tmp):
    (in_tmp / "records.jsonl").write_text("")
    assert "it is a folder" in one_sentence(capsys, ["results", "records.jsonl", "--csv", str(in_tmp)])
    assert "a file is in the way" in one_sentence(capsys, ["results", "records.jsonl", "--csv", "a-file/out.csv"])


def test_report_out_that_is_a_file(capsys, in_tmp):
    err = one_sentence(capsys, ["report", "--published-only", "--out", "a-file"])
    assert "cannot write the report" in err and "--out" in err


def test_reading_a_results_file_that_cannot_be_read(capsys, in_tmp):
    from mobileseg.errors import ResultsFileError
    from mobileseg.results.store import ResultStore

    (in_tmp / "folder.jsonl").mkdir()
    with pytest.raises(ResultsFileError, match="it is a folder"):
        ResultStore(in_tmp / "folder.jsonl").read()


# -- bench settings and suite files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--threads", "0"], "threads must be a positive integer, not 0"),
        (["--threads", "-2"], "threads must be a positive integer, not -2"),
        (["--min-time", "-1"], "--min-time must be a number of seconds above 0"),
        (["--min-time", "0"], "--min-time must be a number of seconds above 0"),
        (["--cooldown", "-3"], "--cooldown must be 0 or more seconds"),
    ],
)
def test_bench_settings_are_checked_once_before_any_cell(capsys, in_tmp, extra, words):
    err = one_sentence(capsys, BENCH + ["--results-file", "r.jsonl"] + extra)
    assert words in err
    assert not (in_tmp / "r.jsonl").exists()  # no error record per cell was written


def test_suite_that_is_a_folder(capsys, in_tmp):
    (in_tmp / "suites").mkdir()
    assert "is a folder, not a file" in one_sentence(capsys, ["bench", "--suite", "suites"])


# -- checkpoints ------------------------------------------------------------------------------------------------


def test_weights_that_are_a_folder(capsys, in_tmp):
    err = one_sentence(capsys, ["export", "--model", "topformer-t", "--res", "128", "--weights", str(in_tmp)])
    assert "is a folder: give the checkpoint file itself" in err


def test_unreadable_checkpoints_say_why_in_one_sentence(tmp_path):
    import argparse

    import torch

    from mobileseg.checkpoint import read_checkpoint
    from mobileseg.errors import CheckpointError

    garbage = tmp_path / "garbage.pth"
    garbage.write_text("garbage")
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    pickled = tmp_path / "pickled.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": argparse.Namespace(lr=0.1)}, pickled)
    for path, words in ((garbage, "corrupted"), (truncated, "corrupted"), (pickled, "argparse.Namespace")):
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(path)
        msg = str(info.value)
        assert words in msg and "\n" not in msg and "weights_only` argument" not in msg, msg


# -- input sizes beyond the machine -----------------------------------------------------------------------------


def test_an_input_beyond_the_machines_memory_is_one_sentence(capsys, monkeypatch):
    """numpy's MemoryError and torch's allocator RuntimeError both become the out-of-memory sentence (raised here
    by stand-ins: a real 100000x100000 allocation would depend on this machine's memory); other errors stay."""
    import numpy as np
    import torch

    import mobileseg.commands.info as info

    def huge_numpy(args):
        return np.empty((1, 3, 10**6, 10**6))  # 24 TB: refused by every machine

    def torch_allocator(args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 119923212288 bytes. Error code 12 (Cannot allocate memory)"
        )

    for fake, size in ((huge_numpy, "TiB at once"), (torch_allocator, "111.7 GiB at once")):
        monkeypatch.setattr(info, "run", fake)
        err = one_sentence(capsys, ["info", "--model", "topformer-t", "--res", "99968"])
        assert "out of memory" in err and size in err and "--res" in err, err
    monkeypatch.setattr(info, "run", lambda args: torch.zeros(2) @ torch.zeros(3))
    with pytest.raises(RuntimeError):
        main(["info", "--model", "topformer-t"])


# -- devices ------------------------------------------------------------------------------------------------------


def test_usb_without_libusb_names_the_mobileseg_extra(monkeypatch):
    import sys

    from mobileseg.device.adb_direct import AdbDevice
    from mobileseg.errors import MobilesegError

    pytest.importorskip("adb_shell")
    monkeypatch.setitem(sys.modules, "adb_shell.transport.usb_transport", None)  # import fails as without libusb1
    dev = AdbDevice("adb")
    assert dev.transport == "usb"
    with pytest.raises(MobilesegError, match=r"pip install 'mobileseg\[usb\]' -c constraints.txt"):
        dev._make_device()


def test_export_dir_that_is_a_file_names_export_dir(capsys, in_tmp):
    """bench records this sentence for each cell; there --out is the results folder, so the hint must say --export-dir."""
    err = one_sentence(
        capsys, ["export", "--model", "topformer-t", "--res", "128", "--formats", "onnx", "--export-dir", "a-file"]
    )
    assert "cannot write to the output folder" in err and "--export-dir" in err


@pytest.mark.parametrize("n", ["0", "-1"])
def test_num_classes_below_one(capsys, n):
    err = one_sentence(capsys, ["info", "--model", "topformer-t", "--res", "128", "--num-classes", n])
    assert "--num-classes" in err and "at least 1" in err
