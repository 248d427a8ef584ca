"""``mobileseg choose`` on the emulated ARM64 device: it runs, refuses to rank by emulated latency (qemu's timings
say nothing about a phone) and still reports every candidate's parity."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("adb_shell")

from emulated_devices import launch  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.emulator]


def test_choose_on_the_emulated_device_refuses_latency_and_reports_parity(key, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))  # the direct transport signs with its adbkey
    from mobileseg.cli import main
    from mobileseg.emulator import control

    proc, port = launch(key, "debian")
    try:
        rc = main(
            [
                "choose",
                "--device",
                f"adb:127.0.0.1:{port}",
                "--adb-transport",
                "direct",
                "--harness",
                "python",
                "--budget-ms",
                "33",
                "--models",
                "topformer-t",
                "--res",
                "64",
                "--runtimes",
                "ncnn",
                "onnxruntime",
                "--precisions",
                "fp32",
                "--max-time",
                "120",
                "--quiet",
                "--out",
                str(tmp_path / "out"),
                "--export-dir",
                str(tmp_path / "export"),
            ]
        )
    finally:
        control.terminate(proc)
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "choose.json").read_text())
    assert rc == 1 and summary["state"] == "refused", out
    assert "choose refuses to rank by latency" in out and "emulated device" in out
    assert not (tmp_path / "out" / "card.json").exists()  # no recommendation, so no card
    cands = summary["candidates"]
    assert len(cands) == 2 and all(c["fate"] == "not ranked (numerics only)" for c in cands)
    assert all(c["parity_ok"] is True and c["rel_l2"] is not None for c in cands), cands
    assert all(c["records"] == 1 for c in cands)  # one batch each, for parity; no racing on qemu's timings
