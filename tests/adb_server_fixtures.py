"""Fixtures for tests against Debian's real adb server: a private server on a free port, adbd children to connect.

Used with ``pytest_plugins = ["adb_server_fixtures"]``. Every server runs with its own HOME (its own adbkey) on a port
no one else uses, and is killed at teardown. The emulator port scan (5555-5585) is off unless a test asks for it
(``ADB_LOCAL_TRANSPORT_MAX_PORT=5000``), so devices other processes run on this machine do not show up in listings.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from adb_server_helpers import Server, free_port

from mobileseg.emulator import control


@pytest.fixture
def adb_env(tmp_path, monkeypatch):
    """Point this process (and every adb it runs) at a private server port; yields a :class:`Server` not started."""
    if not shutil.which("adb"):
        pytest.skip("Debian's adb is not installed (sudo apt-get install adb)")
    home = tmp_path / "adbhome"
    (home / ".android").mkdir(parents=True)
    port = free_port()
    for var in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_ADDRESS", "ANDROID_SERIAL", "ADB_VENDOR_KEYS"):
        monkeypatch.delenv(var, raising=False)
    from mobileseg.device.native_build import cache_root

    monkeypatch.setenv("MOBILESEG_CACHE", str(cache_root()))  # the builds stay where they are when HOME moves
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    monkeypatch.setenv("ADB_LOCAL_TRANSPORT_MAX_PORT", "5000")  # no emulator scan
    server = Server(dict(os.environ), port)
    yield server
    subprocess.run(["adb", "kill-server"], env=server.env, capture_output=True, timeout=15)


@pytest.fixture
def adb_server(adb_env):
    adb_env.start()
    return adb_env


@pytest.fixture
def daemons(tmp_path):
    """Start host-mode adbd children (the host's shell and files); yields start(**launch kwargs) -> (proc, port)."""
    procs = []

    def start(**kw):
        kw.setdefault("log_path", str(tmp_path / f"adbd{len(procs)}.log"))
        proc, port = control.launch(**kw)
        procs.append(proc)
        return proc, port

    yield start
    for p in procs:
        control.terminate(p)
