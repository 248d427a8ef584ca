"""Proof that a cell's files came from its own device and its own run.

Two devices that share storage (emulated devices on one rootfs, a lab's network share) would overwrite each other's
harness files, and each host worker would pull whichever was written last: one device's measurement recorded as
another's. Two things prevent and reveal that:

- every harness run writes files named with a fresh run token (:func:`run_token`), removed once pulled, so two
  runs never share a file name even on shared storage;
- each target writes a fresh random mark to its device once (:func:`place`, ``<workdir>/.device-mark``), and every
  cell reads it back on the device while it runs (the Python harness copies it into its timings, the other drivers
  echo it in the same shell command: :func:`readback`). :func:`check` refuses a cell whose mark is another's: its
  device's storage is shared with another device's. The mark is in the record (``device.mark``).
"""

from __future__ import annotations

import posixpath
import secrets
import shlex

from ..errors import MobilesegError
from .probe import WORKDIR
from .transport import AdbError

MARK_FILE = posixpath.join(WORKDIR, ".device-mark")
MARK_LINE = "__mobileseg_device_mark="


class SharedStorageError(MobilesegError):
    """A cell read another device's mark: the device's storage is not its own."""


def run_token() -> str:
    """A fresh token for one harness run's file names."""
    return secrets.token_hex(4)


def place(device) -> str:
    """Write a fresh mark to the device (one per opened target); returns it."""
    mark = secrets.token_hex(8)
    q = shlex.quote
    rc, out = device.shell(f"mkdir -p {q(WORKDIR)} && echo {mark} > {q(MARK_FILE)}", 60)
    if rc != 0:
        raise AdbError(
            f"cannot write to {WORKDIR} on the device (exit {rc}: {out.strip()[-200:]}): "
            "check its free space and permissions"
        )
    return mark


def readback() -> str:
    """Shell text to put before a harness command: prints the device's mark on its own line."""
    return f"echo {MARK_LINE}$(cat {shlex.quote(MARK_FILE)} 2>/dev/null); "


def split(log: str) -> tuple[str | None, str]:
    """``(mark, the rest of the log)`` of a command run after :func:`readback` (mark None: no mark line)."""
    mark, rest = None, []
    for line in log.splitlines(keepends=True):
        if mark is None and line.startswith(MARK_LINE):
            mark = line[len(MARK_LINE) :].strip()
        else:
            rest.append(line)
    return mark, "".join(rest)


def check(expected: str | None, got: str | None, serial: str, what: str) -> None:
    """Raise :class:`SharedStorageError` when a cell on ``serial`` read another mark than its target placed."""
    if not expected or got is None or got == expected:
        return
    raise SharedStorageError(
        f"{what} on {serial} read the mark {got or '(none)'} instead of this device's "
        f"{expected}: its storage is shared with another device (or was wiped mid-run), so its "
        "files could be another device's; give each device its own storage and run again"
    )


def remove(device, *remote: str) -> None:
    """Remove one run's files once pulled (best effort: a device that went away keeps them)."""
    try:
        device.shell("rm -f " + " ".join(shlex.quote(r) for r in remote), 60)
    except MobilesegError:
        pass
