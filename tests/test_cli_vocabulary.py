"""One command-line vocabulary: the same word means the same thing in every command; old spellings still parse."""

from __future__ import annotations

import argparse

import pytest

from mobileseg.cli import build_parser


def subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def visible_options(p) -> set[str]:
    return {o for a in p._actions if a.help != argparse.SUPPRESS for o in a.option_strings}


def test_no_command_shows_an_old_spelling():
    old = {"--export-root", "--no-progress", "--runtime", "--device", "--precision", "--graph"}
    singular_ok = {
        "export": {"--precision", "--graph"},
        "eval": {"--runtime", "--precision"},
        "bench": {"--device"},
        "choose": {"--device"},  # one device: its latency is what the budget is about
        "compare": {"--runtime"},  # compare --run times one runtime
        "parity": {"--precision", "--runtime", "--device"},
    }  # one artifact, run once, on one device
    for name, p in subparsers().items():
        shown = visible_options(p) & old - singular_ok.get(name, set())
        assert not shown, f"mobileseg {name} shows {shown}"


def test_progress_is_quiet_and_exports_live_in_export_dir_everywhere():
    cmds = subparsers()
    for name in ("bench", "eval", "export"):
        assert "--quiet" in visible_options(cmds[name]), name
        assert "--export-dir" in visible_options(cmds[name]), name


@pytest.mark.parametrize(
    "argv, dest, want",
    [
        (["bench", "--runtimes", "onnxruntime,ncnn", "litert"], "runtimes", ["onnxruntime", "ncnn", "litert"]),
        (["bench", "--precision", "fp16"], "precisions", ["fp16"]),
        (["report", "--runtime", "ncnn", "--runtime", "litert"], "runtimes", ["ncnn", "litert"]),
        (["report", "--devices", "host-x,pixel"], "devices", ["host-x", "pixel"]),
        (["eval", "-m", "x", "--data", "d", "--export-root", "E"], "export_dir", "E"),
        (["eval", "-m", "x", "--data", "d", "--no-progress"], "quiet", True),
        (["export", "-m", "x", "--formats", "onnx,ncnn", "tflite"], "formats", ["onnx", "ncnn", "tflite"]),
    ],
)
def test_lists_take_commas_or_spaces_and_old_spellings_parse(argv, dest, want):
    from mobileseg.commands._args import split_list

    value = getattr(build_parser().parse_args(argv), dest)
    assert (split_list(value) if isinstance(value, list) else value) == want
