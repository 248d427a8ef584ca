"""What every ADB transport shares: its errors, the sha256 skip-and-verify push, checked commands, getprop.

A transport (:class:`mobileseg.device.adb_server.AdbServerDevice` through the adb server, or the direct adb-shell
:class:`mobileseg.device.adb_direct.AdbDevice`) provides ``shell(cmd, timeout) -> (rc, output)``, ``_push_once(local,
remote, timeout)``, ``pull(remote, local, timeout)``, ``close()`` and ``transport_info()`` (what the record says
about how the device was reached); this base adds the rest, so both behave the same for the harness drivers.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from pathlib import Path

from ..errors import MobilesegError, TargetLostError
from ..hashing import sha256_file

DEFAULT_TIMEOUT = 60.0
RC_MARKER = "__mobileseg_rc="  # shell v1 has no exit status: commands run as ``(cmd); echo <marker>$?``


class AdbError(MobilesegError):
    """A device command failed in a way the user can act on."""


class NoDeviceError(AdbError):
    pass


class DeviceUnauthorizedError(AdbError):
    pass


class DeviceLostError(TargetLostError):
    """The device went away mid-run (unplugged, connection dropped, daemon or adb server stopped)."""


class DeviceTimeoutError(AdbError):
    pass


class PushError(AdbError):
    pass


class StorageFullError(PushError):
    pass


class DeviceTransport:
    """Base of the ADB transports: everything above a single shell command and a single file transfer."""

    serial: str | None = None
    default_timeout: float = DEFAULT_TIMEOUT

    # -- provided by each transport ------------------------------------------------------------------------------
    def shell(self, cmd: str, timeout: float | None = None) -> tuple[int, str]:  # pragma: no cover - interface
        raise NotImplementedError

    def _push_once(self, local: Path, remote: str, timeout: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def pull(self, remote: str, local, timeout: float | None = None) -> Path:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def transport_info(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------------------------
    def check(self, cmd: str, timeout: float | None = None, what: str | None = None) -> str:
        """Run ``cmd``; return its output or raise :class:`AdbError` naming ``what`` failed."""
        rc, out = self.shell(cmd, timeout)
        if rc != 0:
            tail = " ".join(out.strip().splitlines()[-3:])[:300]
            raise AdbError(f"{what or 'the device command'} failed (exit {rc}): {tail or cmd[:120]}")
        return out

    def remote_sha256(self, remote: str, timeout: float | None = None) -> str | None:
        q = shlex.quote(remote)
        rc, out = self.shell(f"sha256sum {q} 2>/dev/null || toybox sha256sum {q}", timeout)
        if rc != 0:
            return None
        m = re.search(r"\b([0-9a-f]{64})\b", out)
        return m.group(1) if m else None

    def push(
        self, local: str | os.PathLike, remote: str, timeout: float | None = None, local_sha256: str | None = None
    ) -> bool:
        """Push one file unless the device has it already (same sha256); verify; retry once. True when sent."""
        local = Path(local)
        if not local.is_file():
            raise PushError(f"cannot push {local}: no such file")
        want = local_sha256 or sha256_file(local)
        if self.remote_sha256(remote, timeout) == want:
            return False
        timeout = float(timeout or max(self.default_timeout, 30 + local.stat().st_size / 2e6))
        self.shell(f"mkdir -p {shlex.quote(posixpath.dirname(remote) or '/')}", timeout)
        last = None
        for _attempt in range(2):
            try:
                self._push_once(local, remote, timeout)
            except StorageFullError:
                raise
            except PushError as exc:
                last = str(exc)
                continue
            got = self.remote_sha256(remote, timeout)
            if got == want:
                return True
            last = f"checksum after push is {got or 'missing'}, expected {want[:12]}..."
        raise PushError(
            f"pushing {local.name} to {remote} failed twice ({last}): check the connection and the "
            "free space on the device"
        )

    @staticmethod
    def storage_full(local: Path, remote: str) -> StorageFullError:
        return StorageFullError(
            f"the device storage is full while pushing {local.name} to {remote}: free space on "
            "the device (adb shell rm -r /data/local/tmp/mobileseg) and run again"
        )

    def getprop(self, name: str, timeout: float | None = None) -> str:
        rc, out = self.shell(f"getprop {shlex.quote(name)} 2>/dev/null", timeout)
        return out.strip() if rc == 0 else ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
