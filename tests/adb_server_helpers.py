"""Helpers for tests against Debian's real adb server (the fixtures are in adb_server_fixtures.py)."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_emulator_port() -> int:
    """An adb port the server's emulator scan looks at (odd, 5555-5585) that nothing listens on."""
    for port in range(5555, 5586, 2):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        with socket.socket() as s:  # nothing answers there either (another user's emulator on another address)
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    pytest.skip("every emulator port 5555-5585 is taken on this machine")


class Server:
    """One private adb server: ``adb(...)`` runs the client against it; ``wait_state(serial, state)``."""

    def __init__(self, env: dict, port: int):
        self.env = env
        self.port = port

    def adb(self, *args, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["adb", *args], env=self.env, capture_output=True, text=True, timeout=timeout, **kw)

    def start(self) -> None:
        r = self.adb("start-server")
        if r.returncode != 0:
            raise RuntimeError(f"adb start-server failed: {r.stderr}")

    def devices(self) -> dict:
        out = self.adb("devices").stdout.splitlines()[1:]
        return dict(line.split("\t", 1) for line in out if "\t" in line)

    def wait_state(self, serial: str, states=("device",), limit_s: float = 30.0) -> str | None:
        end = time.monotonic() + limit_s
        state = None
        while time.monotonic() < end:
            state = self.devices().get(serial)
            if state in states:
                return state
            time.sleep(0.1)
        return state

    def connect(self, serial: str, states=("device",)) -> str | None:
        self.adb("connect", serial)
        return self.wait_state(serial, states)
