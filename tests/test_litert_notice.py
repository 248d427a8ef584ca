"""LiteRT's "Created TensorFlow Lite XNNPACK delegate" line is held back from stderr; every other line goes through."""

import os
import sys

from mobileseg.runtimes.litert import XNNPACK_NOTICE, without_xnnpack_notice


def test_only_the_delegate_notice_is_held_back(capfd):
    with without_xnnpack_notice():
        os.write(2, f"{XNNPACK_NOTICE}\nERROR: a real failure\n".encode())  # what native code writes
        print("a Python warning", file=sys.stderr)
    err = capfd.readouterr().err
    assert XNNPACK_NOTICE not in err
    assert "ERROR: a real failure" in err and "a Python warning" in err


def test_stderr_is_restored_when_the_block_raises(capfd):
    try:
        with without_xnnpack_notice():
            os.write(2, b"before the failure\n")
            raise ValueError("boom")
    except ValueError:
        pass
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "before the failure" in err and "after" in err
