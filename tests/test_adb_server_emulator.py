"""``mobileseg bench`` on the emulated ARM64 device registered in Debian's real adb server (no libusb, no transport
option), and on two emulated devices at once: the selection error lists both, ``adb:all`` measures both into
per-device files, a device killed mid-suite stops only its own worker and ``--resume`` completes it.

Tiny plans (TopFormer-T at 64x64, one or two runtimes, 2-5 timed runs) keep this inside the CI budget; the timings
are emulated.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("adbutils")

from adb_server_helpers import Server, free_emulator_port, free_port  # noqa: E402

from mobileseg.cli import main  # noqa: E402
from mobileseg.emulator import build, control  # noqa: E402
from mobileseg.results.store import ResultStore  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.emulator]

PLAN = ["--threads", "1", "--models", "topformer-t", "--res", "64", "--warmup", "1"]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("export")  # one export of TopFormer-T 64x64 for every test of this module


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A private adb server with its emulator scan on, and a way to start emulated devices (before or after it)."""
    import shutil

    if not shutil.which("adb"):
        pytest.skip("Debian's adb is not installed (sudo apt-get install adb)")
    if not build.is_built():
        pytest.skip("the emulated device is not built: run `mobileseg emulator build` first")
    from mobileseg.device.native_build import cache_root

    home = tmp_path / "home"
    (home / ".android").mkdir(parents=True)
    for var in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_ADDRESS", "ANDROID_SERIAL", "ADB_LOCAL_TRANSPORT_MAX_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MOBILESEG_CACHE", str(cache_root()))
    monkeypatch.setenv("HOME", str(home))
    port = free_port()
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    import os

    server = Server(dict(os.environ), port)
    procs = []

    def device(port_=0):
        proc, p = control.launch(
            port=port_, rootfs=str(build.rootfs_dir()), log_path=str(tmp_path / f"emu{len(procs)}.log")
        )
        procs.append(proc)
        return proc, p

    server.device = device
    server.procs = procs
    yield server
    server.adb("kill-server", timeout=15)
    for p in procs:
        control.terminate(p)


def bench(capsys, *args) -> tuple[int, str, str]:
    rc = main(["bench", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def records(folder: Path, port: int) -> list[dict]:
    """Every record measured on 127.0.0.1:PORT (or its emulator-N alias), from the results files of ``folder``."""
    serials = (f"127.0.0.1:{port}", f"emulator-{port - 1}")
    return [
        r
        for path in sorted(Path(folder).glob("*.jsonl"))
        for r in ResultStore(path).read()
        if r["device"]["serial"] in serials
    ]


def test_bench_through_the_adb_server_with_every_form_of_device(lab, export_dir, tmp_path, capsys, monkeypatch):
    emu_port = free_emulator_port()
    _proc, _ = lab.device(emu_port)  # running before the server: its scan lists it as emulator-N
    lab.start()
    emu, tcp = f"emulator-{emu_port - 1}", f"127.0.0.1:{emu_port}"
    assert lab.wait_state(emu) == "device", lab.devices()
    mine = {emu, tcp}
    others = [s for s in lab.devices() if s not in mine]  # another user's emulators on this machine
    if others:
        pytest.skip(f"other emulated devices are listed by the scan ({', '.join(others)}): --device adb is ambiguous")
    assert lab.connect(tcp) == "device"  # now listed twice: one device
    out = tmp_path / "results"
    common = [*PLAN, "--runtimes", "ncnn", "--repeats", "2", "--export-dir", str(export_dir), "--out", str(out)]

    rc, stdout, err = bench(capsys, "--device", "adb", *common)
    assert rc == 0, err
    assert f"{tcp} and {emu} are one device (the same adb port 127.0.0.1:{emu_port}): using {tcp}" in err
    (rec,) = records(out, emu_port)
    dev = rec["device"]
    assert dev["transport"] == "adb-server" and dev["serial"] == tcp and dev["emulated"] is True
    assert dev["adb"]["adb_server"] == f"localhost:{lab.port}" and dev["adb"]["aliases"] == [emu]
    assert rec["status"] == "ok" and rec["parity"]["ok"] and rec["affinity"] == [dev["pinned_cpu"]]

    # the emulator-N serial, kept when named
    rc, _, err = bench(capsys, "--device", f"adb:{emu}", *common, "--results-file", str(tmp_path / "emu.jsonl"))
    assert rc == 0, err
    assert ResultStore(tmp_path / "emu.jsonl").read()[0]["device"]["serial"] == emu

    # ADB_SERVER_SOCKET instead of ANDROID_ADB_SERVER_PORT, with HOST:PORT
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT")
    monkeypatch.setenv("ADB_SERVER_SOCKET", f"tcp:127.0.0.1:{lab.port}")
    rc, _, err = bench(capsys, "--device", f"adb:{tcp}", *common, "--results-file", str(tmp_path / "sock.jsonl"))
    assert rc == 0, err
    adb = ResultStore(tmp_path / "sock.jsonl").read()[0]["device"]["adb"]
    assert adb["adb_server"] == f"127.0.0.1:{lab.port}" and adb["adb_server_source"] == "ADB_SERVER_SOCKET"

    # a HOST:PORT the server does not list yet: adb connect through the server, then measured
    _proc2, port2 = lab.device()
    rc, _, err = bench(capsys, "--device", f"adb:127.0.0.1:{port2}", *common)
    assert rc == 0, err
    assert f"adb connect 127.0.0.1:{port2}: device" in err
    (rec2,) = records(out, port2)
    assert rec2["device"]["transport"] == "adb-server" and rec2["status"] == "ok"


def test_two_devices_in_parallel_a_lost_one_and_resume(lab, export_dir, tmp_path, capsys):
    lab.start()
    (_pa, port_a), (proc_b, port_b) = lab.device(), lab.device()
    for port in (port_a, port_b):
        assert lab.connect(f"127.0.0.1:{port}") == "device"
    a, b = f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"
    out = tmp_path / "results"
    common = [
        *PLAN,
        "--runtimes",
        "onnxruntime",
        "ncnn",
        "--repeats",
        "5",
        "--export-dir",
        str(export_dir),
        "--out",
        str(out),
    ]

    # --device adb with two devices: one sentence listing both
    rc, _, err = bench(capsys, "--device", "adb", *common)
    assert rc == 2 and f"{a} (mobileseg emulated ARM64)" in err and f"{b} (mobileseg emulated ARM64)" in err
    assert "--device adb:SERIAL" in err and err.count("\n") == 1

    # adb:all, and B's daemon killed once its first cell is in its file
    def kill_b_after_one_cell():
        end = time.monotonic() + 600  # hang guard
        while time.monotonic() < end:
            try:
                done = out.exists() and records(out, port_b)
            except Exception:  # noqa: BLE001 - a line being written: look again
                done = False
            if done:
                control.terminate(proc_b)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_b_after_one_cell)
    killer.start()
    try:
        rc, stdout, err = bench(capsys, "--device", "adb:all", *common)
    finally:
        killer.join()
    assert rc == 3, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"mobileseg: error: device lost: {b} (") and "--resume" in last
    assert f"the other device(s) finished: {a}" in last
    assert [r["runtime"] for r in records(out, port_a)] == ["onnxruntime", "ncnn"]  # A finished
    assert [r["status"] for r in records(out, port_b)] == ["ok"]  # B's finished cell is kept
    assert f"({b}): LOST after 1 cell(s)" in stdout
    # both ran at once: B's first cell started before A's last one finished
    ra, rb = records(out, port_a), records(out, port_b)
    assert rb[0]["timestamp"] <= ra[-1]["timestamp"]

    # B comes back on the same port; --resume measures only what B has left
    lab.device(port_b)
    assert lab.wait_state(b) == "device"
    rc, stdout, err = bench(capsys, "--device", f"adb:{a},{b}", *common, "--resume")
    assert rc == 0, err
    assert [r["runtime"] for r in records(out, port_b)] == ["onnxruntime", "ncnn"]
    assert len(records(out, port_a)) == 2 and "0 cell(s) measured, 2 skipped" in stdout
    assert records(out, port_b)[-1]["status"] == "ok"
    assert len(list(out.glob("*.jsonl"))) == 2  # one file per device, the same one after the restart


def test_two_devices_running_the_same_cell_at_once_each_record_is_its_own_devices(lab, export_dir, tmp_path, capsys):
    """Each record carries the mark its target wrote to its device, read back on that device by its cell: with
    storage shared between the devices, one device's timings were recorded as the other's."""
    lab.start()
    ports = [lab.device()[1] for _ in range(2)]
    serials = [f"127.0.0.1:{p}" for p in ports]
    for s in serials:
        assert lab.connect(s) == "device"
    out = tmp_path / "results"
    rc, _, err = bench(
        capsys,
        "--device",
        f"adb:{serials[0]},{serials[1]}",
        *PLAN,
        "--runtimes",
        "onnxruntime",
        "--repeats",
        "3",
        "--export-dir",
        str(export_dir),
        "--out",
        str(out),
    )
    assert rc == 0, err
    recs = [records(out, p) for p in ports]
    assert [len(r) for r in recs] == [1, 1] and len(list(out.glob("*.jsonl"))) == 2
    marks = []
    for serial, (rec,) in zip(serials, recs):
        on_device = lab.adb("-s", serial, "shell", "cat /data/local/tmp/mobileseg/.device-mark").stdout.strip()
        assert rec["device"]["serial"] == serial and rec["device"]["mark"] == on_device, (serial, on_device)
        marks.append(on_device)
    assert marks[0] != marks[1]
    assert recs[0][0]["samples_ms"] != recs[1][0]["samples_ms"]  # two measurements, not one recorded twice


def test_a_lab_of_two_adb_servers_in_one_command(lab, export_dir, tmp_path, capsys):
    """Two adb servers on two loopback ports, each holding one emulated device: one command, one worker and one
    results file per device, each record naming its server; then the same device through both servers is measured
    once, and a server that does not answer is one sentence."""
    import os
    import subprocess

    lab.start()
    port2 = free_port()
    second = Server(
        {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port2), "ADB_LOCAL_TRANSPORT_MAX_PORT": "5000"}, port2
    )
    second.start()
    try:
        a, b = (f"127.0.0.1:{lab.device()[1]}" for _ in range(2))
        assert lab.connect(a) == "device" and second.connect(b) == "device"
        s1, s2 = f"127.0.0.1:{lab.port}", f"127.0.0.1:{port2}"
        out = tmp_path / "results"
        common = [*PLAN, "--runtimes", "ncnn", "--repeats", "2", "--export-dir", str(export_dir), "--out", str(out)]
        rc, stdout, err = bench(
            capsys, "--device", "adb@one,adb@two", "--adb-server", f"one={s1}", f"two={s2}", *common
        )
        assert rc == 0, err
        files = sorted(out.glob("*.jsonl"))
        assert len(files) == 2 and "2 device(s) ran: 2 finished" in stdout
        by_serial = {r["device"]["serial"]: r for f in files for r in ResultStore(f).read()}
        assert sorted(by_serial) == sorted([a, b])
        assert (
            by_serial[a]["device"]["adb"]["adb_server"] == s1
            and by_serial[a]["device"]["adb"]["adb_server_name"] == "one"
        )
        assert by_serial[b]["device"]["adb"]["adb_server"] == s2 and all(
            r["status"] == "ok" for r in by_serial.values()
        )

        # one device of a declared server: the one-device path (no fleet)
        rc, _, err = bench(
            capsys,
            "--device",
            f"adb@two/{b}",
            "--adb-server",
            f"two={s2}",
            *common,
            "--results-file",
            str(tmp_path / "one.jsonl"),
        )
        assert rc == 0, err
        (rec,) = ResultStore(tmp_path / "one.jsonl").read()
        assert rec["device"]["serial"] == b and rec["device"]["adb"]["adb_server"] == s2

        # A through both servers: measured once, with a note
        assert second.connect(a) == "device"
        rc, _, err = bench(capsys, "--device", f"adb@{s1}/{a},adb@{s2}/{a}", *common, "--out", str(tmp_path / "once"))
        assert rc == 0, err
        assert f"{a} through the adb server at {s2} is {a} through {s1}" in err and "measured once" in err
        assert len(list((tmp_path / "once").glob("*.jsonl"))) == 1

        # a server that does not answer; a name that is not declared
        dead = f"127.0.0.1:{free_port()}"
        rc, _, err = bench(capsys, "--device", f"adb@{s1},adb@{dead}", *common)
        assert rc == 2 and f"no adb server answers at {dead}" in err and err.count("\n") == 1
        rc, _, err = bench(capsys, "--device", "adb@tow", "--adb-server", f"two={s2}", *common)
        assert rc == 2 and "unknown adb server 'tow' (did you mean 'two'?)" in err
    finally:
        subprocess.run(["adb", "kill-server"], env=second.env, capture_output=True, timeout=15)
