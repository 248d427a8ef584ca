"""The Python adbd against real ADB clients (adb-shell and Debian's `adb`), serving the host's shell and files.

Fast: no emulation. The same daemon serves the arm64 rootfs in tests/test_emulator.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess

import pytest

pytest.importorskip("adb_shell")

from mobileseg.device.adb_direct import (
    AdbDevice,
    DeviceLostError,
    DeviceUnauthorizedError,
    NoDeviceError,  # noqa: E402
    PushError,
    StorageFullError,
    load_signer,
)
from mobileseg.bench.targets import TargetLostError  # noqa: E402
from mobileseg.emulator import control  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def daemon(tmp_path):
    """Start adbd children; yields a function (keys, refuse, extra) -> port; all are ended at teardown."""
    procs = []

    def start(adb_keys=None, refuse=False, extra=None):
        proc, port = control.launch(
            adb_keys=adb_keys or tmp_path / "adb_keys",
            refuse_new_keys=refuse,
            extra_args=extra,
            log_path=str(tmp_path / "adbd.log"),
        )
        procs.append(proc)
        return port

    yield start
    for p in procs:
        control.terminate(p)


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "home" / ".android" / "adbkey"
    load_signer(path)  # creates the key pair like the adb client does
    return path


def _authorize(key_path, keys_file):
    keys_file.write_text(open(str(key_path) + ".pub").read().strip() + "\n")


# ---------------------------------------------------------------------------------------------- adb-shell client
def test_adb_shell_signature_auth_and_exit_codes(daemon, key, tmp_path):
    _authorize(key, tmp_path / "adb_keys")
    port = daemon(refuse=True)  # only a valid signature can get in
    with AdbDevice.open(f"adb:127.0.0.1:{port}", key_path=key) as dev:
        rc, out = dev.shell("echo hello; echo oops >&2; exit 7")
        assert rc == 7
        assert "hello" in out and "oops" in out
        assert dev.shell("true") == (0, "")
        rc, out = dev.shell("printf 'a\\nb\\n'")
        assert (rc, out) == (0, "a\nb\n")


def test_adb_shell_public_key_accepted_then_remembered(daemon, key, tmp_path):
    keys_file = tmp_path / "adb_keys"
    port = daemon()
    with AdbDevice.open(f"adb:127.0.0.1:{port}", key_path=key) as dev:
        assert dev.shell("echo ok") == (0, "ok\n")
    assert keys_file.read_text().split()[0] == open(str(key) + ".pub").read().split()[0]
    port2 = daemon(refuse=True)  # same adb_keys: now the signature is enough
    with AdbDevice.open(f"adb:127.0.0.1:{port2}", key_path=key) as dev:
        assert dev.shell("exit 3")[0] == 3


def test_adb_shell_refused_key_says_accept_the_prompt(daemon, key):
    port = daemon(refuse=True)
    with pytest.raises(DeviceUnauthorizedError, match="accept"):
        AdbDevice.open(f"adb:127.0.0.1:{port}", key_path=key, auth_timeout=2)


def test_no_device_at_address(key):
    with pytest.raises(NoDeviceError, match="no ADB device answers"):
        AdbDevice.open(f"adb:127.0.0.1:{_free_port()}", key_path=key)


def test_push_skips_identical_verifies_and_pulls(daemon, key, tmp_path):
    _authorize(key, tmp_path / "adb_keys")
    port = daemon()
    src = tmp_path / "blob.bin"
    data = os.urandom(2_500_000)  # several WRTE packets and sync DATA chunks
    src.write_bytes(data)
    remote = str(tmp_path / "device" / "sub" / "blob.bin")
    with AdbDevice.open(f"adb:127.0.0.1:{port}", key_path=key) as dev:
        assert dev.push(src, remote) is True
        assert hashlib.sha256(open(remote, "rb").read()).hexdigest() == hashlib.sha256(data).hexdigest()
        assert dev.push(src, remote) is False  # same sha256 on the device: skipped
        src.write_bytes(data[:1000])
        assert dev.push(src, remote) is True
        back = dev.pull(remote, tmp_path / "back.bin")
        assert back.read_bytes() == data[:1000]
        with pytest.raises(PushError, match="no such file"):
            dev.push(tmp_path / "missing.bin", remote)


def test_full_storage_gives_one_sentence(daemon, key, tmp_path):
    _authorize(key, tmp_path / "adb_keys")
    port = daemon(extra=["--storage-limit", "1000"])
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * 5000)
    with AdbDevice.open(f"adb:127.0.0.1:{port}", key_path=key) as dev:
        with pytest.raises(StorageFullError, match="storage is full"):
            dev.push(src, str(tmp_path / "device" / "big.bin"))
        assert not (tmp_path / "device" / "big.bin").exists()


def test_daemon_stopped_mid_session_is_device_lost(daemon, key, tmp_path, monkeypatch):
    _authorize(key, tmp_path / "adb_keys")
    procs = []
    real_launch = control.launch

    def spy(*a, **k):
        p, port = real_launch(*a, **k)
        procs.append(p)
        return p, port

    monkeypatch.setattr(control, "launch", spy)
    port = daemon()
    dev = AdbDevice.open(f"adb:127.0.0.1:{port}", key_path=key)
    assert dev.shell("echo up")[0] == 0
    src = tmp_path / "f.bin"
    src.write_bytes(b"data")
    control.terminate(procs[0])
    # every path raises the runner's TargetLostError (it stops and keeps the finished cells), never NoDeviceError
    # (an AdbError: the runner would record it as an error for each remaining cell)
    for call in (
        lambda: dev.shell("echo still there?", timeout=5),
        lambda: dev.push(src, str(tmp_path / "device" / "f.bin"), timeout=5),
        lambda: dev.pull(str(src), tmp_path / "back.bin", timeout=5),
        lambda: dev.shell("echo and again?", timeout=5),
    ):
        with pytest.raises(DeviceLostError, match="was lost") as info:
            call()
        assert isinstance(info.value, TargetLostError)
    dev.close()


def test_daemon_killed_during_a_command_is_device_lost_not_a_timeout(daemon, key, tmp_path, monkeypatch):
    """adb-shell reads b"" forever from a closed socket; the transport must say the device is gone instead of
    spinning until the command's timeout and calling it a timeout (a harness run's timeout is 30 minutes)."""
    import threading

    _authorize(key, tmp_path / "adb_keys")
    procs = []
    real_launch = control.launch

    def spy(*a, **k):
        p, port = real_launch(*a, **k)
        procs.append(p)
        return p, port

    monkeypatch.setattr(control, "launch", spy)
    port = daemon()
    dev = AdbDevice.open(f"adb:127.0.0.1:{port}", key_path=key)
    started = tmp_path / "started"
    killer = threading.Thread(target=lambda: (_wait_for(started), control.terminate(procs[0])))
    killer.start()
    try:
        with pytest.raises(DeviceLostError, match="was lost"):
            dev.shell(f"touch {started}; sleep 60", timeout=120)
    finally:
        killer.join()
        dev.close()


def _wait_for(path, limit_s: float = 60.0) -> None:
    import time

    end = time.monotonic() + limit_s
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.05)


def test_shell_timeout_kills_the_command(daemon, key, tmp_path):
    from mobileseg.device.adb_direct import DeviceTimeoutError

    _authorize(key, tmp_path / "adb_keys")
    port = daemon()
    marker = tmp_path / "ran"
    with AdbDevice.open(f"adb:127.0.0.1:{port}", key_path=key) as dev:
        with pytest.raises(DeviceTimeoutError):
            dev.shell(f"sleep 30; touch {marker}", timeout=1.5)
        assert dev.shell("echo again") == (0, "again\n")  # reconnects after the timeout


# ------------------------------------------------------------------------------------------ Debian's adb client
@pytest.fixture
def adb_client(tmp_path):
    if not shutil.which("adb"):
        pytest.skip("Debian's adb client is not installed (sudo apt-get install adb)")
    home = tmp_path / "adbhome"
    (home / ".android").mkdir(parents=True)
    env = dict(os.environ, HOME=str(home), ANDROID_ADB_SERVER_PORT=str(_free_port()), ANDROID_SDK_HOME=str(home))
    env.pop("ADB_VENDOR_KEYS", None)

    def adb(*args, timeout=30, **kw):
        return subprocess.run(["adb", *args], env=env, capture_output=True, text=True, timeout=timeout, **kw)

    adb.home = home
    yield adb
    adb("kill-server", timeout=15)


def test_adb_client_connect_shell_push_pull(daemon, adb_client, tmp_path):
    port = daemon()  # accepts the client's new public key
    serial = f"127.0.0.1:{port}"
    adb_client("connect", serial)
    r = adb_client("-s", serial, "wait-for-device", timeout=30)
    assert r.returncode == 0, r.stderr
    devices = adb_client("devices").stdout
    assert f"{serial}\tdevice" in devices
    r = adb_client("-s", serial, "shell", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3  # shell v2 carries the exit code
    assert r.stdout.strip() == "out" and r.stderr.strip() == "err"
    r = adb_client("-s", serial, "shell", "cat", input="through stdin\n")
    assert r.stdout == "through stdin\n"
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(1_500_000))
    remote = str(tmp_path / "on_device" / "payload.bin")
    r = adb_client("-s", serial, "push", str(src), remote)
    assert r.returncode == 0, r.stderr
    assert open(remote, "rb").read() == src.read_bytes()
    r = adb_client("-s", serial, "pull", remote, str(tmp_path / "pulled.bin"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pulled.bin").read_bytes() == src.read_bytes()
    r = adb_client("-s", serial, "shell", "ls", str(tmp_path / "on_device"))
    assert "payload.bin" in r.stdout
    # the client's key is now in adb_keys: a device refusing new keys still lets it in by signature
    port2 = daemon(refuse=True)
    adb_client("connect", f"127.0.0.1:{port2}")
    r = adb_client("-s", f"127.0.0.1:{port2}", "wait-for-device", timeout=30)
    assert r.returncode == 0
    assert adb_client("-s", f"127.0.0.1:{port2}", "shell", "exit 5").returncode == 5


def test_adb_client_refused_is_unauthorized(daemon, adb_client, tmp_path):
    port = daemon(adb_keys=tmp_path / "other_keys", refuse=True)
    serial = f"127.0.0.1:{port}"
    adb_client("connect", serial)
    state = ""
    for _ in range(50):
        state = adb_client("devices").stdout
        if f"{serial}\tunauthorized" in state:
            break
        subprocess.run(["sleep", "0.1"])
    assert f"{serial}\tunauthorized" in state
    r = adb_client("-s", serial, "shell", "echo never")
    assert r.returncode != 0 and "unauthorized" in r.stderr
    assert not (tmp_path / "other_keys").exists() or not (tmp_path / "other_keys").read_text().strip()
