"""Start, stop and inspect the emulated ARM64 device (the adbd of :mod:`.adbd` serving the built rootfs).

The daemon runs detached; its pid, port and log live in ``<cache>/emulator/run/``. ``stop`` ends only the process
recorded there (and its process group: shell commands still running in the rootfs).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import MobilesegError
from . import build

DEFAULT_PORT = 5560


def run_dir() -> Path:
    return build.emulator_dir() / "run"


def _state_file() -> Path:
    return run_dir() / "adbd.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child (started by this process and not reaped) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def status() -> dict:
    st = {"build": build.status(), "running": False}
    try:
        info = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return st
    if _alive(int(info.get("pid", 0))):
        st.update(running=True, **info, device=f"adb:127.0.0.1:{info['port']}")
    return st


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start(port: int = DEFAULT_PORT, adb_keys: str | None = None, refuse_new_keys: bool = False,
          host_mode: bool = False, wait_s: float = 20.0, extra_args: list[str] | None = None) -> dict:
    """Start the daemon detached and wait until it listens; returns :func:`status`."""
    st = status()
    if st["running"]:
        raise MobilesegError(f"the emulated device is already running on port {st['port']} (pid {st['pid']}): "
                             "use it, or stop it with: mobileseg emulator stop")
    if not host_mode:
        build.check_host_tools()
        if not st["build"]["built"]:
            raise MobilesegError("the emulated device is not built yet: run mobileseg emulator build (about a "
                                 "minute and 420 MB under the cache folder)")
    if port and not _port_free(port):
        raise MobilesegError(f"port {port} is in use on 127.0.0.1: pick another with --port")
    rd = run_dir()
    rd.mkdir(parents=True, exist_ok=True)
    port_file = rd / "port"
    port_file.unlink(missing_ok=True)
    keys = adb_keys or str(build.emulator_dir() / "adb_keys")
    cmd = [sys.executable, "-m", "mobileseg.emulator.adbd", "--port", str(port), "--port-file", str(port_file),
           "--adb-keys", keys, *(["--refuse-new-keys"] if refuse_new_keys else []),
           *([] if host_mode else ["--rootfs", str(build.rootfs_dir())]), *(extra_args or [])]
    log = open(rd / "adbd.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                            cwd=str(Path(__file__).resolve().parents[2]))
    log.close()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (rd / "adbd.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise MobilesegError(f"the emulated device's adbd exited at start (exit {proc.returncode}): "
                                 f"{' '.join(tail)}")
        if port_file.exists() and port_file.read_text().strip():
            break
        time.sleep(0.1)
    else:
        _kill(proc.pid)
        raise MobilesegError(f"the emulated device's adbd did not start within {wait_s:.0f} s: see {rd / 'adbd.log'}")
    info = {"pid": proc.pid, "port": int(port_file.read_text()), "adb_keys": keys, "rootfs": None if host_mode else
            str(build.rootfs_dir()), "log": str(rd / "adbd.log"), "started": time.time()}
    _state_file().write_text(json.dumps(info))
    return status()


def launch(port: int = 0, adb_keys: str | None = None, rootfs: str | None = None, refuse_new_keys: bool = False,
           extra_args: list[str] | None = None, log_path: str | None = None, wait_s: float = 20.0):
    """Run an adbd child (not recorded as *the* emulator; tests use this) and wait until it listens.

    Returns ``(process, port)``; end it with :func:`terminate`.
    """
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="mobileseg-adbd-"))
    port_file = tmp / "port"
    cmd = [sys.executable, "-m", "mobileseg.emulator.adbd", "--port", str(port), "--port-file", str(port_file),
           *(["--adb-keys", str(adb_keys)] if adb_keys else ["--no-auth"]),
           *(["--refuse-new-keys"] if refuse_new_keys else []), *(["--rootfs", str(rootfs)] if rootfs else []),
           *(extra_args or [])]
    log = open(log_path or tmp / "adbd.log", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                            cwd=str(Path(__file__).resolve().parents[2]))
    log.close()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MobilesegError(f"adbd exited at start (exit {proc.returncode}), see {log.name}")
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text())
        time.sleep(0.05)
    terminate(proc)
    raise MobilesegError(f"adbd did not start within {wait_s:.0f} s, see {log.name}")


def terminate(proc) -> None:
    """End an adbd started by :func:`launch` and every shell command it still runs."""
    _kill(proc.pid)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _kill(pid: int, wait_s: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                pass
            if not _alive(pid):
                return
            time.sleep(0.05)


def stop() -> bool:
    """Stop the daemon started by :func:`start`; False when none was running."""
    try:
        info = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return False
    pid = int(info.get("pid", 0))
    running = pid > 0 and _alive(pid)
    if running:
        _kill(pid)
    _state_file().unlink(missing_ok=True)
    return running
