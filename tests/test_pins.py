"""tools/pins.py: the lock file it writes is the one CI installs from, and drift reports what moved and what broke."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import pins  # noqa: E402


def test_the_committed_lock_pins_every_package_of_this_python_once():
    lock = pins.lock_path()
    assert lock.exists(), f"no file of tested versions for this Python: {lock}"
    pinned = pins.read_lock(lock)
    names = [pins._norm(n) for n in pinned]
    assert len(names) == len(set(names))
    assert {
        "torch",
        "numpy",
        "onnxruntime",
        "ncnn",
        "ai-edge-litert",
        "transformers",
        "pytest",
        "ruff",
        "adbutils",
        "pip",
    } <= set(names)
    assert all("+" not in v for v in pinned.values())  # local tags (torch's +cpu) are stripped


def test_diff_names_moved_new_and_gone_packages():
    old = {"transformers": "5.23.0", "onnxruntime": "1.31.1", "retry2": "0.9.5", "numpy": "2.4.6"}
    new = {"Transformers": "5.24.0", "onnxruntime": "1.32.0", "numpy": "2.4.6", "rich": "15.0.0"}
    assert pins.diff(old, new) == [
        "  moved   onnxruntime: 1.31.1 -> 1.32.0",
        "  gone    retry2==0.9.5",
        "  new     rich==15.0.0",
        "  moved   Transformers: 5.23.0 -> 5.24.0",
    ]


def test_tally_and_broken_tests_come_from_the_junit_report(tmp_path):
    junit = tmp_path / "j.xml"
    junit.write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
        '<testcase classname="tests.test_a" name="test_ok"/>'
        '<testcase classname="tests.test_a" name="test_bad"><failure message="rel-L2 1.4e-5 &gt; 1e-5"/>'
        '</testcase><testcase classname="tests.test_a" name="test_skip"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    assert pins.tally(junit) == "3 tests: 1 passed, 1 failed, 0 errors, 1 skipped"
    assert pins.failed_tests(junit) == ["  failure tests.test_a::test_bad  rel-L2 1.4e-5 > 1e-5"]
    assert "did not start" in pins.tally(tmp_path / "missing.xml")
