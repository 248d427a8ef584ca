"""A user's runs never write where the committed reference results live, and devices are named apart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mobileseg.bench import env
from mobileseg.cli import build_parser
from mobileseg.results import paths

ROOT = Path(__file__).resolve().parents[1]
GIT = shutil.which("git") and (ROOT / ".git").exists()


def _default(argv, dest):
    return getattr(build_parser().parse_args(argv), dest)


def test_every_default_output_is_under_the_runs_folder():
    outs = [
        _default(["bench"], "out"),
        _default(["report"], "out"),
        _default(["eval", "--model", "m", "--data", "d"], "out"),
    ]
    for out in outs:
        assert Path(out).is_relative_to(paths.RUNS_DIR), out
        assert not Path(out).is_relative_to(paths.REFERENCE_DIR)


@pytest.mark.skipif(not GIT, reason="not a git checkout")
def test_the_runs_folder_is_ignored_and_the_reference_folder_is_not():
    def ignored(p):
        return subprocess.run(["git", "check-ignore", "-q", p], cwd=ROOT).returncode == 0

    assert ignored(os.path.join(paths.RUNS_DIR, "host-x-t1.jsonl"))
    assert ignored(os.path.join(paths.REPORT_DIR, "report.html"))
    assert not ignored(os.path.join(paths.REFERENCE_DIR, "host-amd-epyc-t1.jsonl"))


def test_host_name_is_the_full_cpu_model_plus_a_machine_id(monkeypatch):
    monkeypatch.setattr(env, "cpu_model", lambda: "AMD EPYC 7B13 64-Core Processor")
    monkeypatch.setattr(env, "machine_id", lambda: "a" * 32)
    first = env.host_device_id()
    assert first.startswith("host-amd-epyc-7b13-") and len(first.rsplit("-", 1)[1]) == 6
    assert env.host_device_id() == first  # stable on one machine
    monkeypatch.setattr(env, "machine_id", lambda: "b" * 32)
    assert env.host_device_id() != first  # a second EPYC machine gets its own results file


def test_adb_device_name_has_a_serial_id():
    from mobileseg.bench.targets.adb import AdbTarget

    def named(desc):
        t = AdbTarget.__new__(AdbTarget)
        t._desc, t.emulated = desc, False
        return t.device_id()

    a = named({"model": "Pixel 9", "serialno": "AAA111"})
    b = named({"model": "Pixel 9", "serialno": "BBB222"})
    assert a.startswith("adb-pixel-9-") and a != b
    tcp = named({"model": "Pixel 9", "serial": "10.0.0.5:5555", "soc": "Tensor G4", "cores": 8})
    assert tcp == named({"model": "Pixel 9", "serial": "10.0.0.5:5601", "soc": "Tensor G4", "cores": 8})


@pytest.mark.slow
@pytest.mark.skipif(not GIT, reason="not a git checkout")
def test_the_readme_main_job_leaves_a_fresh_clone_clean(tmp_path):
    """From a fresh clone: `mobileseg bench --device local --threads 1 --suite bench/smoke.toml && mobileseg report`
    modifies no tracked file and leaves nothing untracked that git does not ignore."""
    pytest.importorskip("onnxruntime")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    run = [sys.executable, "-m", "mobileseg"]
    environ = dict(os.environ, PYTHONPATH=str(clone))  # the clone's own code, not the checkout's
    for cmd in (["bench", "--device", "local", "--threads", "1", "--suite", "bench/smoke.toml"], ["report"]):
        p = subprocess.run(run + cmd, cwd=clone, env=environ, capture_output=True, text=True, timeout=1800)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert list((clone / paths.RUNS_DIR).glob("host-*-t1.jsonl")), "the run wrote no records"
    assert (clone / paths.REPORT_DIR / "report.html").is_file()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout
