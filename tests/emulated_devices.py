"""One place for what device tests need of the emulated ARM64 device: why it cannot run here, and launching one.

New emulator tests import these instead of writing their own skip reason and launch lines.
"""

from __future__ import annotations

import shutil

import pytest


def skip_reason(profile: str = "debian") -> str | None:
    """Why an emulated ``profile`` device cannot run on this machine (None when it can)."""
    missing = [t for t in ("proot", "qemu-aarch64-static") if not shutil.which(t)]
    if missing:
        return f"{', '.join(missing)} not installed (sudo apt-get install proot qemu-user-static)"
    from mobileseg.emulator import build

    if not build.is_built(profile):
        return f"the emulated {profile} device is not built: run `mobileseg emulator build --profile {profile}`"
    return None


def launch(key, profile: str = "debian", extra=None):
    """``(process, port)`` of a fresh emulated device that trusts ``key`` only (skips the test when it cannot run)."""
    why = skip_reason(profile)
    if why:
        pytest.skip(why)
    from mobileseg.emulator import build, control

    return control.launch(
        adb_keys=key.parent / "adb_keys",
        refuse_new_keys=True,
        rootfs=str(build.rootfs_dir(profile)),
        profile=profile,
        extra_args=extra,
    )


def native_harness():
    """The cross-built native harness binary (skips the test when no aarch64 toolchain is installed)."""
    from mobileseg.device import native_build

    try:
        return native_build.build_harness(jobs=2).path
    except native_build.ToolchainError as exc:
        pytest.skip(str(exc))
