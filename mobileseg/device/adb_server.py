"""ADB through the adb server (the default transport): :class:`AdbServer` and :class:`AdbServerDevice` on adbutils.

A phone on USB is held by the adb server that platform-tools and Android Studio run; adb itself, scrcpy and
uiautomator2 talk to that server instead of claiming the device, and so does this transport. Remote servers (a lab
host, a device farm handing out ``adb connect`` addresses) work the same way.

The server is found as adb finds it (:func:`server_address`): ``ADB_SERVER_SOCKET=tcp:HOST:PORT``, else
``ANDROID_ADB_SERVER_ADDRESS`` / ``ANDROID_ADB_SERVER_PORT``, else localhost:5037. When a local server does not answer
and an ``adb`` binary is on PATH, ``adb start-server`` starts one (:func:`connect_server`).

:class:`AdbServerDevice` has the interface of the direct transport (:class:`mobileseg.device.adb_direct.AdbDevice`):
``shell(cmd, timeout) -> (rc, output)`` over shell v2 (exit code from the protocol; a marker on devices without
shell v2), ``push`` with the sha256 skip-and-verify of :class:`~mobileseg.device.transport.DeviceTransport`,
``pull``, a total deadline on every command, and :class:`~mobileseg.device.adb_direct.DeviceLostError` when the device (or
the server) goes away. adbutils' own shell timeout is per read and its push has none and drops the device's failure
reason, hence the two small loops below on adbutils' connections.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import require
from .transport import (
    DEFAULT_TIMEOUT,
    RC_MARKER,
    AdbError,
    DeviceLostError,
    DeviceTimeoutError,
    DeviceTransport,
    DeviceUnauthorizedError,
    NoDeviceError,
    PushError,
)

DEFAULT_PORT = 5037
SERVER_TIMEOUT = 10.0  # one host:* request (list, version, connect)
START_TIMEOUT = 30.0
TRANSPORT = "adb-server"


class NoServerError(AdbError):
    """No adb server answers and none could be started."""


# -- finding the server -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int
    source: str  # which setting named it: ADB_SERVER_SOCKET, ANDROID_ADB_SERVER_ADDRESS/PORT, default, --adb-server
    name: str | None = None  # the lab's name for it (--adb-server NAME=HOST:PORT; mobileseg.device.lab)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def local(self) -> bool:
        return self.host in ("localhost", "127.0.0.1", "::1")


def _port(text: str, setting: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise NoServerError(f"{setting} must name a TCP port (1-65535), not {text!r}")
    return int(text)


def server_address(env=None) -> ServerAddress:
    """Where adb would look for its server, from the same environment variables adb reads."""
    env = os.environ if env is None else env
    spec = (env.get("ADB_SERVER_SOCKET") or "").strip()
    if spec:
        if not spec.startswith("tcp:"):
            raise NoServerError(f"ADB_SERVER_SOCKET={spec} is not supported: use tcp:HOST:PORT (or tcp:PORT)")
        rest = spec[4:]
        host, sep, port = rest.rpartition(":")
        host = host.strip("[]") if sep else "localhost"
        return ServerAddress(host or "localhost", _port(port, "ADB_SERVER_SOCKET"), "ADB_SERVER_SOCKET")
    host = (env.get("ANDROID_ADB_SERVER_ADDRESS") or "").strip()
    port = (env.get("ANDROID_ADB_SERVER_PORT") or "").strip()
    if host or port:
        return ServerAddress(
            host or "localhost",
            _port(port, "ANDROID_ADB_SERVER_PORT") if port else DEFAULT_PORT,
            "ANDROID_ADB_SERVER_ADDRESS/PORT",
        )
    return ServerAddress("localhost", DEFAULT_PORT, "default")


def _adbutils():
    return require("adbutils", "adb", "talking to the adb server")


_CLIENT_CLASS = None


def _client(addr: ServerAddress, timeout: float | None):
    """An adbutils client that never starts a server by itself (adbutils would run its own bundled adb)."""
    global _CLIENT_CLASS
    if _CLIENT_CLASS is None:
        adbutils = _adbutils()

        class Connection(adbutils.AdbConnection):
            def _safe_connect(self):
                return self._create_socket()

        class Client(adbutils.AdbClient):
            def __init__(self, host, port, socket_timeout=None):
                super().__init__(host, port, socket_timeout)
                self.default_timeout = socket_timeout

            def make_connection(self, timeout: float | None = None):
                try:
                    conn = Connection(self.host, self.port)
                except (TimeoutError, socket.timeout):
                    raise adbutils.AdbTimeout(
                        f"connecting to the adb server at {self.host}:{self.port} timed out"
                    ) from None
                if timeout or self.default_timeout:
                    conn.conn.settimeout(timeout or self.default_timeout)
                return conn

        _CLIENT_CLASS = Client
    return _CLIENT_CLASS(addr.host, addr.port, timeout)


def server_version(addr: ServerAddress, timeout: float = 2.0) -> int | None:
    """The server's protocol version (41 for adb 1.0.41), or None when nothing answers there."""
    adbutils = _adbutils()
    try:
        return _client(addr, timeout).server_version()
    except (adbutils.AdbError, OSError, ValueError, EOFError):
        return None


def connect_server(
    addr: ServerAddress | None = None, start: bool = True, adb_binary: str | None = None, env=None
) -> "AdbServer":
    """The adb server at ``addr`` (default: :func:`server_address`); starts a local one with ``adb start-server``."""
    addr = addr or server_address(env)
    version = server_version(addr)
    if version is None and start and addr.local:
        adb = adb_binary or shutil.which("adb")
        if adb:
            # adb itself starts a server only for "localhost" (tcp:127.0.0.1:PORT counts as remote to it): start it
            # on the loopback port named, whatever spelling the setting used
            run_env = {
                k: v
                for k, v in (os.environ if env is None else env).items()
                if k not in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_ADDRESS")
            }
            run_env["ANDROID_ADB_SERVER_PORT"] = str(addr.port)
            try:
                subprocess.run(
                    [adb, "start-server"],
                    env=run_env,
                    capture_output=True,
                    timeout=START_TIMEOUT,
                    stdin=subprocess.DEVNULL,
                )
            except (OSError, subprocess.TimeoutExpired):
                pass
            version = server_version(addr, timeout=5.0)
            if version is not None:
                return AdbServer(addr, version, started=True)
    if version is None:
        raise NoServerError(_no_server_message(addr, start))
    return AdbServer(addr, version)


def _no_server_message(addr: ServerAddress, start: bool) -> str:
    where = f"no adb server answers at {addr} (from {addr.source})"
    if not addr.local:
        return f"{where}: start it on that host (adb -a start-server) or fix {addr.source}"
    if start and not shutil.which("adb"):
        return (
            f"{where} and no 'adb' is on PATH to start one: install Android platform-tools (Debian/Ubuntu: "
            "apt install adb), or pass --adb-transport direct for a device reached over TCP"
        )
    return f"{where}: start it with: adb start-server"


# -- the server -------------------------------------------------------------------------------------------------------


@dataclass
class ServerEntry:
    """One line of ``adb devices -l``."""

    serial: str
    state: str  # device, unauthorized, offline, authorizing, connecting, recovery, sideload, ...
    tags: dict

    @property
    def model(self) -> str:
        return (self.tags.get("model") or "").replace("_", " ")


class AdbServer:
    """One adb server: list its devices, ``adb connect`` an address, open a device."""

    def __init__(self, addr: ServerAddress, version: int | None = None, started: bool = False):
        self.addr = addr
        self.version = version
        self.started = started  # this process ran ``adb start-server``

    def _call(self, fn, what: str, timeout: float = SERVER_TIMEOUT):
        adbutils = _adbutils()
        try:
            return fn(_client(self.addr, timeout))
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise NoServerError(
                f"the adb server at {self.addr} did not answer {what} ({exc}): check it with: adb devices"
            ) from None

    def devices(self) -> list[ServerEntry]:
        """Every device the server lists, in any state (``adb devices -l``)."""
        infos = self._call(lambda c: c.list(extended=True), "the device list")
        return [ServerEntry(i.serial, i.state, dict(i.tags)) for i in infos]

    def state(self, serial: str) -> str | None:
        """The state the server lists ``serial`` in; None when not listed."""
        return next((e.state for e in self.devices() if e.serial == serial), None)

    def connect(self, address: str, wait_s: float = SERVER_TIMEOUT) -> str:
        """``adb connect HOST:PORT``; returns the state it settles in (device, unauthorized, authorizing...).

        Nothing answering there as an adb device (refused, no reply, or listed ``offline`` at the end) is one
        sentence saying so and what ``adb connect`` said; the server is told to forget the address again."""
        try:
            reply = self._call(lambda c: c.connect(address, timeout=wait_s), f"'connect {address}'", wait_s + 5)
        except NoServerError:
            if server_version(self.addr) is None:
                raise
            reply = f"no reply within {wait_s + 5:.0f} s"  # the server answers, the address does not
        reply = " ".join(str(reply).split())
        deadline = time.monotonic() + wait_s
        state = self.state(address)
        while state in (None, "offline", "connecting", "authorizing") and time.monotonic() < deadline:
            if state is None and (
                "unable" in reply or "failed to connect" in reply or "cannot" in reply or reply.startswith("no reply")
            ):
                break
            time.sleep(0.1)
            state = self.state(address)
        if state in (None, "offline", "connecting"):
            self.disconnect(address)
            listed = f", and the server listed it as {state}" if state else ""
            raise NoDeviceError(
                f"nothing answered as an adb device at {address} (adb connect through the server "
                f"at {self.addr} said: {reply or 'nothing'}{listed}): check the address and that "
                "the device listens there (adb tcpip 5555 on the phone, or mobileseg emulator start "
                "--port PORT), then run the command again"
            )
        return state

    def disconnect(self, address: str) -> None:
        """``adb disconnect HOST:PORT`` (best effort: a failed connect leaves no stale entry behind)."""
        try:
            self._call(lambda c: c.disconnect(address), f"'disconnect {address}'")
        except AdbError:
            pass

    def device(self, serial: str, **kw) -> "AdbServerDevice":
        return AdbServerDevice(serial, server=self, **kw)

    def describe(self) -> dict:
        return {"address": str(self.addr), "source": self.addr.source, "version": self.version}


# -- one device through the server ------------------------------------------------------------------------------------


def _why(exc) -> str:
    """adbutils errors carry (message, path) tuples; show the message."""
    args = [str(a) for a in getattr(exc, "args", ()) if a]
    return args[0] if args else type(exc).__name__


def unauthorized_message(serial: str) -> str:
    return (
        f"the device {serial} did not authorize this computer: unlock the phone and accept the 'Allow USB "
        "debugging?' prompt (tick 'Always allow'), then run the command again"
    )


def offline_message(serial: str) -> str:
    if _over_tcp(serial):  # nothing is plugged in: an address where no adb device completed the handshake
        return (
            f"the device {serial} is offline: nothing answers as an adb device at that address; check that "
            f"the device listens there, then adb disconnect {serial} and run the command again"
        )
    return f"the device {serial} is offline: unplug and replug it (or run adb reconnect), then run the command again"


def _over_tcp(serial: str) -> bool:
    """Whether the serial is a network address (HOST:PORT, or the emulator-N of a local emulator)."""
    host, sep, port = serial.rpartition(":")
    return (bool(sep) and bool(host) and port.isdigit()) or serial.startswith("emulator-")


class AdbServerDevice(DeviceTransport):
    """One device the adb server lists, by serial (USB serial, HOST:PORT, emulator-5554)."""

    def __init__(
        self,
        serial: str,
        server: AdbServer | None = None,
        connect_timeout: float = SERVER_TIMEOUT,
        default_timeout: float = DEFAULT_TIMEOUT,
        aliases: list | None = None,
    ):
        self.serial = serial
        self.server = server or connect_server()
        self.connect_timeout = float(connect_timeout)
        self.default_timeout = float(default_timeout)
        self.aliases = list(aliases or [])  # other serials the server lists for this same device
        self._shell_v2: bool | None = None

    @classmethod
    def open(cls, serial: str, server: AdbServer | None = None, **kw) -> "AdbServerDevice":
        dev = cls(serial, server, **kw)
        dev.connect()
        return dev

    def transport_info(self) -> dict:
        return {
            "transport": TRANSPORT,
            "serial": self.serial,
            "adb_server": str(self.server.addr),
            "adb_server_source": self.server.addr.source,
            "adb_server_version": self.server.version,
            **({"adb_server_name": self.server.addr.name} if self.server.addr.name else {}),
            **({"aliases": self.aliases} if self.aliases else {}),
            "client": f"adbutils {_adbutils().__version__}",
        }

    def _device(self, timeout: float | None):
        return _client(self.server.addr, timeout).device(self.serial)

    def connect(self) -> "AdbServerDevice":
        """Check the server lists the device ready; one sentence for each state that is not."""
        state = self.server.state(self.serial)
        if state == "device":
            self._features()
            return self
        if state == "unauthorized":
            raise DeviceUnauthorizedError(unauthorized_message(self.serial))
        if state == "offline":
            raise NoDeviceError(offline_message(self.serial))
        if state is None:
            raise NoDeviceError(f"the adb server at {self.server.addr} does not list {self.serial}: see adb devices")
        raise NoDeviceError(
            f"the device {self.serial} is in state '{state}', not 'device': wait until it has "
            "booted (adb wait-for-device) and run again"
        )

    def _features(self) -> bool:
        if self._shell_v2 is None:
            adbutils = _adbutils()
            try:
                feats = self._device(self.connect_timeout).get_features()
            except (adbutils.AdbError, OSError, EOFError) as exc:
                raise self._broken(exc, "asking the device for its features") from None
            self._shell_v2 = "shell_v2" in feats.split(",")
        return self._shell_v2

    # -- failures ------------------------------------------------------------------------------------------------
    def _broken(self, exc, what: str) -> AdbError:
        """What a failed request means: the device (or the server) is gone, or this one request failed."""
        dropped = isinstance(exc, (OSError, EOFError)) or type(exc).__name__ == "AdbConnectionError"
        try:
            state = self.server.state(self.serial)
            for _ in range(20 if dropped else 0):  # a dropped stream: the server may still be tearing it down
                if state != "device":
                    break
                time.sleep(0.1)
                state = self.server.state(self.serial)
        except NoServerError:
            return DeviceLostError(
                f"the ADB device {self.serial} was lost (the adb server at {self.server.addr} "
                "stopped answering): restart it (adb start-server) and reconnect the device"
            )
        if state != "device":
            why = "no longer listed by the adb server" if state is None else f"now {state}"
            return DeviceLostError(
                f"the ADB device {self.serial} was lost ({why}): reconnect it (for the emulated "
                "device: mobileseg emulator start, then adb connect)"
            )
        return AdbError(f"{what} failed on {self.serial}: {_why(exc)}")

    def _timed_out(self, message: str) -> AdbError:
        try:
            state = self.server.state(self.serial)
        except NoServerError:
            state = None
        if state != "device":
            return self._broken(TimeoutError(message), message)
        return DeviceTimeoutError(message)

    # -- commands ------------------------------------------------------------------------------------------------
    def shell(self, cmd: str, timeout: float | None = None) -> tuple[int, str]:
        """Run ``cmd`` with ``sh`` on the device; return (exit code, stdout+stderr). Raises on timeout/loss."""
        adbutils = _adbutils()
        timeout = float(timeout or self.default_timeout)
        deadline = time.monotonic() + timeout
        v2 = self._features()
        try:
            conn = self._device(min(timeout, self.connect_timeout)).open_transport(timeout=timeout)
            try:
                if v2:
                    conn.send_command(f"shell,v2,raw:{cmd}")
                    conn.check_okay()
                    return self._read_v2(conn, deadline, cmd)
                conn.send_command(f"shell:({cmd}); echo {RC_MARKER}$?")
                conn.check_okay()
                return self._read_v1(conn, deadline, cmd)
            finally:
                conn.close()
        except (socket.timeout, TimeoutError, adbutils.AdbTimeout):
            raise self._timed_out(f"the device command timed out after {timeout:.0f} s: {cmd[:120]}") from None
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise self._broken(exc, f"the device command '{cmd[:80]}'") from None

    @staticmethod
    def _recv_exact(conn, n: int, deadline: float) -> bytes:
        buf = b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline")
            conn.conn.settimeout(left)
            chunk = conn.conn.recv(n - len(buf))
            if not chunk:
                raise EOFError("the connection closed before the command ended")
            buf += chunk
        return buf

    def _read_v2(self, conn, deadline: float, cmd: str) -> tuple[int, str]:
        """Shell v2 packets: id (1 stdout, 2 stderr, 3 exit), little-endian length, payload."""
        out = bytearray()
        while True:
            kind, length = struct.unpack("<BI", self._recv_exact(conn, 5, deadline))
            data = self._recv_exact(conn, length, deadline) if length else b""
            if kind in (1, 2):
                out += data
            elif kind == 3:
                return (data[0] if data else 255), out.decode("utf-8", errors="replace").replace("\r\n", "\n")

    def _read_v1(self, conn, deadline: float, cmd: str) -> tuple[int, str]:
        out = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline")
            conn.conn.settimeout(left)
            chunk = conn.conn.recv(65536)
            if not chunk:
                break
            out += chunk
        text = out.decode("utf-8", errors="replace").replace("\r\n", "\n")
        idx = text.rfind(RC_MARKER)
        if idx < 0:
            raise EOFError("the command's output ended early")
        rc_text = text[idx + len(RC_MARKER) :].strip().split()
        return (int(rc_text[0]) if rc_text and rc_text[0].isdigit() else 255), text[:idx]

    def _push_once(self, local: Path, remote: str, timeout: float) -> None:
        """One sync SEND of ``local`` (64 KiB DATA chunks); the device's failure reason is kept."""
        adbutils = _adbutils()
        try:
            conn = self._device(timeout).open_transport(timeout=timeout)
            try:
                conn.send_command("sync:")
                conn.check_okay()
                target = f"{remote},{0o100644}".encode()
                conn.conn.sendall(b"SEND" + struct.pack("<I", len(target)) + target)
                with open(local, "rb") as f:
                    while chunk := f.read(65536):
                        conn.conn.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                conn.conn.sendall(b"DONE" + struct.pack("<I", int(local.stat().st_mtime)))
                status = conn.read_exact(4)
                if status == b"FAIL":
                    size = struct.unpack("<I", conn.read_exact(4))[0]
                    msg = conn.read_exact(size).decode("utf-8", errors="replace")
                    if "space" in msg.lower() or "ENOSPC" in msg:
                        raise self.storage_full(local, remote)
                    raise PushError(msg or "the device refused the file")
                if status != b"OKAY":
                    raise PushError(f"unexpected sync reply {status!r}")
            finally:
                conn.close()
        except (socket.timeout, TimeoutError, adbutils.AdbTimeout) as exc:
            err = self._timed_out(f"pushing {local.name} timed out after {timeout:.0f} s")
            if isinstance(err, DeviceLostError):
                raise err from None
            raise PushError(f"timed out ({exc})") from None
        except PushError:
            raise
        except (adbutils.AdbError, OSError, EOFError) as exc:
            err = self._broken(exc, f"pushing {local.name}")
            if isinstance(err, DeviceLostError):
                raise err from None
            raise PushError(str(err)) from None

    def pull(self, remote: str, local, timeout: float | None = None) -> Path:
        adbutils = _adbutils()
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        timeout = float(timeout or self.default_timeout)
        try:
            _client(self.server.addr, timeout).sync(self.serial).pull_file(remote, local)
        except (socket.timeout, TimeoutError, adbutils.AdbTimeout):
            raise self._timed_out(f"pulling {remote} timed out after {timeout:.0f} s") from None
        except (adbutils.AdbError, OSError, EOFError) as exc:
            local.unlink(missing_ok=True)
            err = self._broken(exc, f"pulling {remote}")
            if isinstance(err, DeviceLostError):
                raise err from None
            raise AdbError(f"cannot pull {remote} from the device: {_why(exc)}") from None
        return local
