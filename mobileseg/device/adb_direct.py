"""The direct ADB transport: :class:`AdbDevice` on adb-shell, straight to the device's adbd (TCP, or USB with libusb),
with timeouts on every command. The default transport goes through the adb server instead
(:mod:`mobileseg.device.adb_server`); this one is for machines with no adb server or binary (``--adb-transport
direct``, or automatically when no server answers and none can be started: see :mod:`mobileseg.device.selection`).

API shared with the server transport (:class:`~mobileseg.device.transport.DeviceTransport`): ``AdbDevice.open(spec)``,
``shell(cmd, timeout) -> (rc, stdout)``, ``push(local, remote)`` (skips files whose sha256 on the device already
matches, verifies after the push, retries once), ``pull(remote, local)``, ``close()``, ``transport_info()``.

Device specs: ``adb`` (the only USB device), ``adb:SERIAL`` (a USB device), ``adb:HOST:PORT`` (TCP, ``adb tcpip``
phones and the emulated device). Authentication uses the standard ``~/.android/adbkey`` (created when missing, like
the adb client does), so a phone that trusts the adb client trusts mobileseg too.

Exit codes: adb-shell speaks shell v1 (no exit status), so commands run as ``(cmd); echo <marker>$?`` and the
marker line is parsed off the output.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from ..errors import require
from ..hashing import sha256_file  # noqa: F401  (re-exported)
from .transport import (
    RC_MARKER,
    AdbError,
    DeviceLostError,
    DeviceTimeoutError,  # noqa: F401  (re-exported)
    DeviceTransport,
    DeviceUnauthorizedError,
    NoDeviceError,
    PushError,
    StorageFullError,  # noqa: F401
)

DEFAULT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
AUTH_TIMEOUT = 30.0
TRANSPORT = "adb-direct"


def _TRANSPORT_ERRORS(ex) -> tuple:  # noqa: N802 - a constant that needs adb_shell imported
    """adb-shell exceptions (and OS errors) that mean the connection itself broke."""
    return (
        OSError,
        ex.AdbConnectionError,
        ex.UsbReadFailedError,
        ex.UsbWriteFailedError,
        ex.InvalidResponseError,
        ex.InvalidCommandError,
        ex.InvalidChecksumError,
    )


def default_key_path() -> Path:
    base = os.environ.get("ANDROID_USER_HOME") or os.path.join(os.path.expanduser("~"), ".android")
    return Path(base) / "adbkey"


def load_signer(key_path: str | os.PathLike | None = None):
    """The adb RSA key (``~/.android/adbkey``), created like the adb client does when it does not exist yet."""
    require("adb_shell", "adb", "talking to ADB devices")
    from adb_shell.auth.keygen import keygen
    from adb_shell.auth.sign_cryptography import CryptographySigner

    path = Path(key_path) if key_path else default_key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        keygen(str(path))
        os.chmod(path, 0o600)
    return CryptographySigner(str(path))


def parse_spec(spec: str) -> tuple[str, str | None, int | None]:
    """``adb`` -> ("usb", None, None); ``adb:SERIAL`` -> ("usb", SERIAL, None); ``adb:HOST:PORT`` -> ("tcp", HOST, PORT)."""
    s = (spec or "adb").strip()
    if s.startswith("adb:"):
        s = s[4:]
    elif s == "adb":
        s = ""
    if not s:
        return "usb", None, None
    m = re.fullmatch(r"\[?([^\]]+?)\]?:(\d{1,5})", s)
    if m:
        return "tcp", m.group(1), int(m.group(2))
    return "usb", s, None


def _eof_aware_tcp_transport(host: str, port: int):
    """adb-shell's TCP transport, except that a closed connection raises instead of reading b"" forever.

    adb-shell's ``TcpTransport.bulk_read`` returns b"" once the peer has closed the socket (daemon killed, phone
    gone), and its reader loops on that until the command's read timeout (30 minutes for a harness run) before
    calling it a timeout. Raising ``ConnectionResetError`` at once makes a dropped device a :class:`DeviceLostError`.
    """
    from adb_shell.transport.tcp_transport import TcpTransport

    class EofAwareTcpTransport(TcpTransport):
        def bulk_read(self, numbytes, transport_timeout_s):
            data = super().bulk_read(numbytes, transport_timeout_s)
            if not data and numbytes:
                raise ConnectionResetError(f"{host}:{port} closed the connection")
            return data

    return EofAwareTcpTransport(host, port)


class AdbDevice(DeviceTransport):
    """One ADB device reached directly (adb-shell). Every command has a timeout; a dropped connection raises
    :class:`DeviceLostError`."""

    def __init__(
        self,
        spec: str = "adb",
        key_path=None,
        connect_timeout: float = CONNECT_TIMEOUT,
        auth_timeout: float = AUTH_TIMEOUT,
        default_timeout: float = DEFAULT_TIMEOUT,
    ):
        self.spec = spec
        self.transport, self.address, self.port = parse_spec(spec)
        self.key_path = key_path
        self.connect_timeout = connect_timeout
        self.auth_timeout = auth_timeout
        self.default_timeout = default_timeout
        self._dev = None
        self._signer = None
        self._was_connected = False  # after a first connection, failing to reconnect means the device was lost
        self.serial = f"{self.address}:{self.port}" if self.transport == "tcp" else self.address

    def transport_info(self) -> dict:
        import adb_shell

        return {
            "transport": TRANSPORT,
            "serial": self.serial,
            "link": self.transport,
            "client": f"adb-shell {getattr(adb_shell, '__version__', '')}".strip(),
        }

    @classmethod
    def open(cls, spec: str = "adb", **kw) -> "AdbDevice":
        dev = cls(spec, **kw)
        dev.connect()
        return dev

    # -- connection ----------------------------------------------------------------------------------------------
    def _make_device(self):
        from adb_shell.adb_device import AdbDevice as _ShellDevice

        if self.transport == "tcp":
            return _ShellDevice(
                _eof_aware_tcp_transport(self.address, self.port), default_transport_timeout_s=self.connect_timeout
            )
        try:
            from adb_shell.adb_device import AdbDeviceUsb
            from adb_shell.transport.usb_transport import UsbTransport  # noqa: F401 (needs libusb1)
        except ImportError:
            raise NoDeviceError(
                "USB devices need the package 'libusb1': install it with: pip install 'mobileseg[usb]' -c "
                "constraints.txt; or connect over TCP: run "
                "'adb tcpip 5555' once with the phone plugged in and pass --device adb:PHONE_IP:5555"
            ) from None
        try:
            return AdbDeviceUsb(serial=self.address, default_transport_timeout_s=self.connect_timeout)
        except Exception as exc:
            raise NoDeviceError(self._no_device_message(exc)) from None

    def _no_device_message(self, exc) -> str:
        which = f"device '{self.address}'" if self.address else "a device"
        return (
            f"no ADB device found ({which} over USB: {exc}): plug in the phone with USB debugging enabled (and "
            "stop a running 'adb' server: adb kill-server, it holds the USB device), or pass "
            "--device adb:HOST:PORT"
        )

    def connect(self) -> "AdbDevice":
        """Connect and authenticate; one clear error per failure (no device, unauthorized)."""
        require("adb_shell", "adb", "talking to ADB devices")
        from adb_shell import exceptions as ex

        self.close()
        if self._signer is None:
            self._signer = load_signer(self.key_path)
        dev = self._make_device()
        offered = []
        try:
            dev.connect(
                rsa_keys=[self._signer],
                transport_timeout_s=self.connect_timeout,
                auth_timeout_s=self.auth_timeout,
                read_timeout_s=self.connect_timeout,
                auth_callback=lambda _d: offered.append(True),
            )
        except (ConnectionRefusedError, socket.gaierror) as exc:
            raise NoDeviceError(
                f"no ADB device answers at {self.serial} ({exc.strerror or exc}): start it (for the "
                "emulated device: mobileseg emulator start) or check the address"
            ) from None
        except ex.DeviceAuthError:
            raise DeviceUnauthorizedError(self._unauthorized_message()) from None
        except (
            ex.TcpTimeoutException,
            ex.AdbTimeoutError,
            socket.timeout,
            OSError,
            ex.UsbReadFailedError,
            ex.InvalidResponseError,
        ) as exc:
            self._safe_close(dev)
            if offered:
                raise DeviceUnauthorizedError(self._unauthorized_message()) from None
            if isinstance(exc, OSError) and not isinstance(exc, (socket.timeout, TimeoutError)):
                raise NoDeviceError(f"cannot connect to the ADB device {self.serial}: {exc}") from None
            raise NoDeviceError(
                f"the ADB device {self.serial} does not answer the ADB handshake ({exc}): check "
                "that this address is an adb daemon (adb tcpip PORT on the phone)"
            ) from None
        self._dev = dev
        self._was_connected = True
        return self

    def _unauthorized_message(self) -> str:
        return (
            f"the device {self.serial} did not authorize this computer: unlock the phone and accept the 'Allow "
            "USB debugging?' prompt (tick 'Always allow'), then run the command again"
        )

    @staticmethod
    def _safe_close(dev) -> None:
        try:
            dev.close()
        except Exception:
            pass

    def close(self) -> None:
        if self._dev is not None:
            self._safe_close(self._dev)
            self._dev = None

    def _device(self):
        if self._dev is None:
            if not self._was_connected:
                self.connect()
            else:  # the connection was closed (timeout, error): a device that no longer answers is lost
                try:
                    self.connect()
                except AdbError as exc:
                    raise self._lost(exc) from None
        return self._dev

    def _lost(self, exc) -> DeviceLostError:
        self.close()
        why = str(exc).split(": ", 1)[0] if isinstance(exc, AdbError) else f"{type(exc).__name__}: {exc}"
        return DeviceLostError(
            f"the ADB device {self.serial} was lost ({why}): reconnect it (for the emulated "
            "device: mobileseg emulator start)"
        )

    def _timed_out(self, message: str) -> AdbError:
        """The error for a command that timed out: lost when the device no longer answers, else a timeout."""
        self.close()  # the connection holds a half-read stream: start afresh
        try:
            self._device()
        except DeviceLostError as exc:
            return exc
        return DeviceTimeoutError(message)

    # -- commands ------------------------------------------------------------------------------------------------
    def shell(self, cmd: str, timeout: float | None = None) -> tuple[int, str]:
        """Run ``cmd`` with ``sh`` on the device; return (exit code, stdout+stderr). Raises on timeout/loss."""
        from adb_shell import exceptions as ex

        timeout = float(timeout or self.default_timeout)
        wrapped = f"({cmd}); echo {RC_MARKER}$?"
        dev = self._device()
        try:
            out = dev.shell(
                wrapped, transport_timeout_s=timeout, read_timeout_s=timeout, timeout_s=timeout, decode=True
            )
        except ex.AdbTimeoutError:
            raise self._timed_out(f"the device command timed out after {timeout:.0f} s: {cmd[:120]}") from None
        except (ex.TcpTimeoutException, socket.timeout, TimeoutError) as exc:
            raise self._timed_out(f"the device did not answer within {timeout:.0f} s ({exc}): {cmd[:120]}") from None
        except _TRANSPORT_ERRORS(ex) as exc:
            raise self._lost(exc) from None
        out = out.replace("\r\n", "\n")
        idx = out.rfind(RC_MARKER)
        if idx < 0:
            raise self._lost(RuntimeError("the command's output ended early"))
        rc_text = out[idx + len(RC_MARKER) :].strip().split()[0] if out[idx + len(RC_MARKER) :].strip() else ""
        rc = int(rc_text) if rc_text.isdigit() else 255
        return rc, out[:idx]

    def _push_once(self, local: Path, remote: str, timeout: float) -> None:
        from adb_shell import exceptions as ex

        dev = self._device()
        try:
            dev.push(str(local), remote, st_mode=0o100644, transport_timeout_s=timeout, read_timeout_s=timeout)
        except ex.PushFailedError as exc:
            msg = str(exc)
            if "space" in msg.lower() or "ENOSPC" in msg:
                raise self.storage_full(local, remote) from None
            raise PushError(msg or "the device refused the file") from None
        except (ex.AdbTimeoutError, ex.TcpTimeoutException, socket.timeout, TimeoutError) as exc:
            err = self._timed_out(f"timed out ({exc})")
            if isinstance(err, DeviceLostError):
                raise err from None
            raise PushError(f"timed out ({exc})") from None
        except _TRANSPORT_ERRORS(ex) as exc:
            raise self._lost(exc) from None

    def pull(self, remote: str, local: str | os.PathLike, timeout: float | None = None) -> Path:
        from adb_shell import exceptions as ex

        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        timeout = float(timeout or self.default_timeout)
        dev = self._device()
        try:
            dev.pull(remote, str(local), transport_timeout_s=timeout, read_timeout_s=timeout)
        except (ex.AdbCommandFailureException, ex.DevicePathInvalidError) as exc:
            raise AdbError(f"cannot pull {remote} from the device: {exc}") from None
        except (ex.AdbTimeoutError, ex.TcpTimeoutException, socket.timeout, TimeoutError) as exc:
            raise self._timed_out(f"pulling {remote} timed out after {timeout:.0f} s ({exc})") from None
        except _TRANSPORT_ERRORS(ex) as exc:
            raise self._lost(exc) from None
        return local
