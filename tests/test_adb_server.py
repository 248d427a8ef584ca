"""The adb-server transport (adbutils) against Debian's real adb server and the Python adbd.

The adbd children serve the host's shell and files (fast, no emulation); ``test_emulated_device_through_the_server``
does the same against the emulated ARM64 device.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

pytest.importorskip("adbutils")
pytest_plugins = ["adb_server_fixtures"]  # its fixtures: adb_env, adb_server, daemons

from adb_server_helpers import free_port  # noqa: E402

from mobileseg.errors import TargetLostError  # noqa: E402
from mobileseg.device import adb_server as srv  # noqa: E402
from mobileseg.device.adb_direct import (  # noqa: E402
    AdbError,
    DeviceLostError,
    DeviceTimeoutError,  # noqa: E402
    DeviceUnauthorizedError,
    NoDeviceError,
    PushError,
    StorageFullError,
)
from mobileseg.emulator import control  # noqa: E402


# ------------------------------------------------------------------------------------------ finding the server
@pytest.mark.parametrize(
    "env, want",
    [
        ({}, ("localhost", 5037, "default")),
        ({"ANDROID_ADB_SERVER_PORT": "6001"}, ("localhost", 6001, "ANDROID_ADB_SERVER_ADDRESS/PORT")),
        (
            {"ANDROID_ADB_SERVER_ADDRESS": "lab-host", "ANDROID_ADB_SERVER_PORT": "5038"},
            ("lab-host", 5038, "ANDROID_ADB_SERVER_ADDRESS/PORT"),
        ),
        ({"ANDROID_ADB_SERVER_ADDRESS": "10.0.0.2"}, ("10.0.0.2", 5037, "ANDROID_ADB_SERVER_ADDRESS/PORT")),
        # ADB_SERVER_SOCKET wins over the other two, as in adb
        (
            {"ADB_SERVER_SOCKET": "tcp:farm.example:5037", "ANDROID_ADB_SERVER_PORT": "6001"},
            ("farm.example", 5037, "ADB_SERVER_SOCKET"),
        ),
        ({"ADB_SERVER_SOCKET": "tcp:6002"}, ("localhost", 6002, "ADB_SERVER_SOCKET")),
        ({"ADB_SERVER_SOCKET": "tcp:[::1]:6003"}, ("::1", 6003, "ADB_SERVER_SOCKET")),
    ],
)
def test_server_address_follows_adb(env, want):
    a = srv.server_address(env)
    assert (a.host, a.port, a.source) == want


@pytest.mark.parametrize(
    "env, match",
    [
        ({"ADB_SERVER_SOCKET": "localabstract:adb"}, "use tcp:HOST:PORT"),
        ({"ADB_SERVER_SOCKET": "tcp:host:notaport"}, "must name a TCP port"),
        ({"ANDROID_ADB_SERVER_PORT": "99999"}, "must name a TCP port"),
    ],
)
def test_bad_server_settings_are_one_sentence(env, match):
    with pytest.raises(srv.NoServerError, match=match):
        srv.server_address(env)


def test_a_local_server_is_started_when_none_answers(adb_env):
    server = srv.connect_server()  # nothing listens on the private port yet: adb start-server
    assert server.started and server.version and server.version >= 39
    assert str(server.addr) == f"localhost:{adb_env.port}"
    assert srv.connect_server().started is False  # now it answers


def test_a_server_named_by_adb_server_socket_on_127_0_0_1_is_started_too(adb_env, monkeypatch):
    """adb itself refuses to start one there ("cannot start server on remote host"): only localhost is local to it."""
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT")
    monkeypatch.setenv("ADB_SERVER_SOCKET", f"tcp:127.0.0.1:{adb_env.port}")
    server = srv.connect_server()
    assert server.started and str(server.addr) == f"127.0.0.1:{adb_env.port}"
    assert adb_env.adb("devices").returncode == 0  # the fixture's client finds it on its port (and kills it)


def test_no_server_and_no_adb_binary(adb_env, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no adb to start a server with
    with pytest.raises(srv.NoServerError, match="no 'adb' is on PATH"):
        srv.connect_server()


def test_a_remote_server_is_never_started(monkeypatch):
    monkeypatch.setenv("ADB_SERVER_SOCKET", f"tcp:192.0.2.1:{free_port()}")  # TEST-NET-1: nothing answers
    with pytest.raises(srv.NoServerError, match="start it on that host"):
        srv.connect_server()


# ------------------------------------------------------------------------------------------ one device
@pytest.fixture
def device(adb_server, daemons):
    """The host adbd registered in the private server by adb connect; yields the transport on it."""
    _proc, port = daemons()
    serial = f"127.0.0.1:{port}"
    assert adb_server.connect(serial) == "device"
    dev = srv.connect_server().device(serial).connect()
    yield dev
    dev.close()


def test_shell_exit_codes_and_output(device):
    rc, out = device.shell("echo hello; echo oops >&2; exit 7")
    assert rc == 7 and "hello" in out and "oops" in out
    assert device.shell("true") == (0, "")
    assert device.shell("printf 'a\\nb\\n'") == (0, "a\nb\n")
    assert device.shell("exit 255")[0] == 255
    assert device.check("echo ok") == "ok\n"
    with pytest.raises(AdbError, match=r"the probe failed \(exit 3\)"):
        device.check("exit 3", what="the probe")


def test_through_adb_server_socket(adb_server, daemons, monkeypatch):
    _proc, port = daemons()
    serial = f"127.0.0.1:{port}"
    assert adb_server.connect(serial) == "device"
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT")
    monkeypatch.setenv("ADB_SERVER_SOCKET", f"tcp:127.0.0.1:{adb_server.port}")
    server = srv.connect_server()
    assert server.addr.source == "ADB_SERVER_SOCKET" and not server.started
    with server.device(serial).connect() as dev:
        assert dev.shell("echo via socket; exit 4") == (4, "via socket\n")
        info = dev.transport_info()
    assert info["transport"] == "adb-server" and info["adb_server"] == f"127.0.0.1:{adb_server.port}"
    assert info["serial"] == serial and info["client"].startswith("adbutils ")


def test_push_skips_identical_verifies_and_pulls(device, tmp_path):
    src = tmp_path / "blob.bin"
    data = os.urandom(2_500_000)  # several 64 KiB sync chunks
    src.write_bytes(data)
    remote = str(tmp_path / "device" / "sub" / "blob.bin")
    assert device.push(src, remote) is True
    assert hashlib.sha256(open(remote, "rb").read()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert device.push(src, remote) is False  # same sha256 on the device: skipped
    src.write_bytes(data[:1000])
    assert device.push(src, remote) is True
    assert device.pull(remote, tmp_path / "back.bin").read_bytes() == data[:1000]
    with pytest.raises(PushError, match="no such file"):
        device.push(tmp_path / "missing.bin", remote)
    with pytest.raises(AdbError, match="cannot pull .*No such file"):
        device.pull(str(tmp_path / "device" / "nothing"), tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()


def test_full_storage_gives_one_sentence(adb_server, daemons, tmp_path):
    _proc, port = daemons(extra_args=["--storage-limit", "1000"])
    serial = f"127.0.0.1:{port}"
    assert adb_server.connect(serial) == "device"
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * 5000)
    with srv.connect_server().device(serial).connect() as dev:
        with pytest.raises(StorageFullError, match="storage is full"):
            dev.push(src, str(tmp_path / "device" / "big.bin"))


def test_shell_timeout_then_the_device_still_answers(device, tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(DeviceTimeoutError, match="timed out after 2 s"):
        device.shell(f"sleep 30; touch {marker}", timeout=2)
    assert device.shell("echo again") == (0, "again\n")


def test_daemon_killed_during_a_command_is_device_lost(adb_server, daemons, tmp_path):
    proc, port = daemons()
    serial = f"127.0.0.1:{port}"
    assert adb_server.connect(serial) == "device"
    dev = srv.connect_server().device(serial).connect()
    started = tmp_path / "started"

    def kill_when_started():
        end = time.monotonic() + 60
        while not started.exists() and time.monotonic() < end:
            time.sleep(0.05)
        control.terminate(proc)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    try:
        with pytest.raises(DeviceLostError, match=f"{serial} was lost") as info:
            dev.shell(f"touch {started}; sleep 60", timeout=120)
    finally:
        killer.join()
    assert isinstance(info.value, TargetLostError)  # the runner stops and keeps the finished cells
    src = tmp_path / "f.bin"
    src.write_bytes(b"data")
    for call in (
        lambda: dev.shell("echo still there?", timeout=5),
        lambda: dev.push(src, str(tmp_path / "device" / "f.bin"), timeout=5),
        lambda: dev.pull(str(src), tmp_path / "back.bin", timeout=5),
    ):
        with pytest.raises(DeviceLostError, match="was lost"):
            call()


def test_server_killed_is_device_lost(device, adb_server):
    assert device.shell("echo up")[0] == 0
    adb_server.adb("kill-server")
    with pytest.raises(DeviceLostError, match="adb server .* stopped answering"):
        device.shell("echo gone?", timeout=5)


def test_unauthorized_and_unknown_serials(adb_server, daemons, tmp_path):
    _proc, port = daemons(adb_keys=tmp_path / "other_keys", refuse_new_keys=True)
    serial = f"127.0.0.1:{port}"
    assert adb_server.connect(serial, states=("unauthorized",)) == "unauthorized"
    server = srv.connect_server()
    with pytest.raises(DeviceUnauthorizedError, match="accept the 'Allow USB debugging\\?' prompt"):
        server.device(serial).connect()
    with pytest.raises(NoDeviceError, match="does not list 127.0.0.1:1"):
        server.device("127.0.0.1:1").connect()


# ------------------------------------------------------------------------------------------ the emulated device
@pytest.mark.slow
@pytest.mark.emulator
def test_emulated_device_through_the_server(adb_server, daemons, tmp_path):
    from mobileseg.emulator import build

    if not build.is_built():
        pytest.skip("the emulated device is not built: run `mobileseg emulator build` first")
    _proc, port = daemons(rootfs=str(build.rootfs_dir()))
    serial = f"127.0.0.1:{port}"
    assert adb_server.connect(serial) == "device"
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(300_000))
    with srv.connect_server().device(serial).connect() as dev:
        assert dev.shell("uname -m; exit 9") == (9, "aarch64\n")
        assert dev.getprop("ro.product.cpu.abi") == "arm64-v8a"
        remote = "/data/local/tmp/mobileseg-test/payload.bin"
        assert dev.push(src, remote) is True and dev.push(src, remote) is False
        assert dev.pull(remote, tmp_path / "back.bin").read_bytes() == src.read_bytes()
        dev.shell("rm -r /data/local/tmp/mobileseg-test")
