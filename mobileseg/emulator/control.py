"""Start, stop and list emulated devices (the adbd of :mod:`.adbd` serving a built rootfs), several at once.

Each daemon runs detached and is known by its port: its pid, profile, log, port file and its own writable device
storage (``storage/``: ``/data``, ``/sdcard``, ``/tmp`` bound over the shared rootfs's) live in
``<cache>/emulator/run/<port>/``. ``stop`` ends only processes recorded there (and their process groups: shell
commands still running in the rootfs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import MobilesegError
from . import build, profiles

DEFAULT_PORT = 5560


def run_dir() -> Path:
    return build.emulator_dir() / "run"


def _port_dir(port: int) -> Path:
    return run_dir() / str(int(port))


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


def running() -> list[dict]:
    """The emulated devices started by :func:`start` that are still running, by port (stale records are removed)."""
    out = []
    for state in sorted(
        run_dir().glob("*/adbd.json"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0
    ):
        try:
            info = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(info.get("pid", 0))):
            out.append({**info, "device": f"adb:127.0.0.1:{info['port']}"})
        else:
            shutil.rmtree(state.parent, ignore_errors=True)
    return out


def status() -> dict:
    devices = running()
    from . import vulkan

    return {
        "build": {name: build.status(name) for name in sorted(profiles.PROFILES)},
        "vulkan": vulkan.status(),
        "devices": devices,
        "running": bool(devices),
    }


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind ``port`` now.

    With SO_REUSEADDR, as the daemon binds (asyncio's default): connections of a stopped daemon left in TIME_WAIT
    -- the adb server probes ports 5555-5585 every second -- do not make the port look taken; a listener does.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon_cmd(
    port: int,
    port_file: Path,
    adb_keys,
    rootfs,
    profile: str | None,
    refuse_new_keys: bool,
    refuse_auth: bool,
    offline: bool,
    extra_args,
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mobileseg.emulator.adbd",
        "--port",
        str(port),
        "--port-file",
        str(port_file),
        *(["--adb-keys", str(adb_keys)] if adb_keys else ["--no-auth"]),
        *(["--refuse-new-keys"] if refuse_new_keys else []),
        *(["--refuse-auth"] if refuse_auth else []),
        *(["--offline"] if offline else []),
        *(["--rootfs", str(rootfs), "--profile", profiles.get(profile).name] if rootfs else []),
        *(extra_args or []),
    ]


def _spawn(cmd: list[str], log_path: Path, port_file: Path, wait_s: float):
    """Run the daemon detached and wait until it wrote its port; returns ``(process, port)``."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise MobilesegError(
                f"the emulated device's adbd exited at start (exit {proc.returncode}): {' '.join(tail)}"
            )
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text())
        time.sleep(0.05)
    _kill(proc.pid)
    raise MobilesegError(f"the emulated device's adbd did not start within {wait_s:.0f} s: see {log_path}")


def start(
    port: int = DEFAULT_PORT,
    adb_keys: str | None = None,
    refuse_new_keys: bool = False,
    host_mode: bool = False,
    wait_s: float = 20.0,
    extra_args: list[str] | None = None,
    profile: str | None = None,
    refuse_auth: bool = False,
    offline: bool = False,
    vulkan: bool = False,
) -> dict:
    """Start one emulated device on ``port`` (0: a free one), detached; returns its record (see :func:`running`).

    ``vulkan``: the debian device with lavapipe (:mod:`.vulkan`), its driver named in the shell's environment."""
    from . import vulkan as vk

    prof = profiles.get(profile)
    if vulkan and prof.name != profiles.DEFAULT:
        raise MobilesegError(f"--vulkan is a variant of the {profiles.DEFAULT} profile, not of {prof.name}")
    port = int(port)
    if not 0 <= port <= 65535:
        raise MobilesegError(f"--port must be between 0 and 65535, not {port}")
    for info in running():
        if port and info["port"] == port:
            raise MobilesegError(
                f"an emulated device ({info.get('profile', 'debian')}) is already running on port "
                f"{port} (pid {info['pid']}): use it, stop it with mobileseg emulator stop --port "
                f"{port}, or pick another --port"
            )
    if not host_mode:
        build.check_host_tools(prof.name)
        if vulkan and not vk.status()["built"]:
            raise MobilesegError(
                "the emulated device with Vulkan is not built yet: run mobileseg emulator build "
                "--vulkan (a few minutes; it adds arm64 lavapipe to the debian rootfs)"
            )
        if not vulkan and not build.status(prof.name)["built"]:
            raise MobilesegError(
                f"the emulated device ({prof.name}) is not built yet: run mobileseg emulator build "
                f"--profile {prof.name}"
            )
    if port and not port_free(port):
        raise MobilesegError(f"port {port} is in use on 127.0.0.1: pick another with --port")
    port = port or _free_port()
    rd = _port_dir(port)
    rd.mkdir(parents=True, exist_ok=True)
    port_file = rd / "port"
    port_file.unlink(missing_ok=True)
    keys = adb_keys or str(build.emulator_dir() / "adb_keys")
    rootfs = None if host_mode else vk.rootfs_dir() if vulkan else build.rootfs_dir(prof.name)
    extra = [*(vk.env_args() if vulkan else []), *(extra_args or [])]
    if rootfs:  # its own /data, /sdcard, /tmp, kept while it runs (stop removes them with the run folder)
        extra += ["--storage", str(rd / "storage")]
    cmd = _daemon_cmd(port, port_file, keys, rootfs, prof.name, refuse_new_keys, refuse_auth, offline, extra)
    proc, port = _spawn(cmd, rd / "adbd.log", port_file, wait_s)
    info = {
        "pid": proc.pid,
        "port": port,
        "profile": None if host_mode else vk.NAME if vulkan else prof.name,
        "adb_keys": keys,
        "rootfs": None if host_mode else str(rootfs),
        "log": str(rd / "adbd.log"),
        "started": time.time(),
        "mode": "offline"
        if offline
        else "refuse-auth"
        if refuse_auth
        else "refuse-new-keys"
        if refuse_new_keys
        else "normal",
    }
    (rd / "adbd.json").write_text(json.dumps(info))
    return {**info, "device": f"adb:127.0.0.1:{port}"}


def launch(
    port: int = 0,
    adb_keys: str | None = None,
    rootfs: str | None = None,
    refuse_new_keys: bool = False,
    extra_args: list[str] | None = None,
    log_path: str | None = None,
    wait_s: float = 20.0,
    profile: str | None = None,
    refuse_auth: bool = False,
    offline: bool = False,
):
    """Run an adbd child that is not recorded in the run folder (tests use this) and wait until it listens.

    Returns ``(process, port)``; end it with :func:`terminate`.
    """
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="mobileseg-adbd-"))
    port_file = tmp / "port"
    cmd = _daemon_cmd(port, port_file, adb_keys, rootfs, profile, refuse_new_keys, refuse_auth, offline, extra_args)
    return _spawn(cmd, Path(log_path or tmp / "adbd.log"), port_file, wait_s)


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


def stop(port: int | None = None, all_: bool = False) -> list[int]:
    """Stop emulated devices started by :func:`start`; returns the ports stopped.

    ``port``: that one; ``all_``: every one; neither: the only one running (several: one sentence listing them).
    """
    devices = running()
    if port is not None:
        devices = [d for d in devices if d["port"] == int(port)]
    elif not all_ and len(devices) > 1:
        listed = ", ".join(f"{d['port']} ({d.get('profile') or 'host'})" for d in devices)
        raise MobilesegError(
            f"{len(devices)} emulated devices are running, on ports {listed}: stop one with "
            "--port N or all of them with --all"
        )
    stopped = []
    for d in devices:
        _kill(int(d["pid"]))
        shutil.rmtree(_port_dir(d["port"]), ignore_errors=True)
        stopped.append(d["port"])
    return stopped
