"""The opt-in Vulkan variant of the debian emulated device: its rootfs plus Debian's arm64 lavapipe (Mesa's CPU
Vulkan driver), so ncnn-vulkan's aarch64 host side and shaders are checked on ARM (``emulator build --vulkan``).

A layer, not a profile: it lives in ``emulator/debian-vulkan/`` with its own ``rootfs.json`` and its own recipe,
keyed by the debian rootfs' recipe hash plus the packages added here, so the default ``debian`` and ``android``
recipes (and their cache keys) are untouched by it. Build: the debian rootfs (built first when missing) is copied,
``debootstrap --download-only --include=mesa-vulkan-drivers`` resolves and fetches the driver with its arm64
dependencies, and every package the base lacks is unpacked with ``dpkg -x``.

Under proot the Vulkan loader cannot open the driver manifests it finds by itself, so the daemon of this variant
names lavapipe's manifest in ``VK_ICD_FILENAMES`` (:data:`ENV`) for every shell command (``emulator start --vulkan``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from . import build

NAME = "debian-vulkan"
DEBS = ["mesa-vulkan-drivers"]
ICD_JSON = "/usr/share/vulkan/icd.d/lvp_icd.aarch64.json"
ENV = {"VK_ICD_FILENAMES": ICD_JSON}
LAYER_VERSION = 1  # bump when the steps below change in a way that invalidates old builds


def layer_dir() -> Path:
    return build.emulator_dir() / NAME


def rootfs_dir() -> Path:
    return layer_dir() / "rootfs"


def recipe(mirror: str | None = None) -> dict:
    base = build.recipe(mirror, build.profiles.DEFAULT)
    return {
        "layer_version": LAYER_VERSION,
        "base": build.recipe_hash(base),
        "debs": DEBS,
        "icd": ICD_JSON,
        "mirror": base["mirror"],
    }


def status() -> dict:
    """What is built of the Vulkan variant: whether it is current (its base unchanged too), size and build time."""
    meta_path = layer_dir() / "rootfs.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    want = build.recipe_hash(recipe(meta.get("recipe", {}).get("mirror")))
    built = bool(meta) and (rootfs_dir() / ICD_JSON.lstrip("/")).is_file()
    return {
        "profile": NAME,
        "rootfs": str(rootfs_dir()),
        "built": built,
        "current": built and meta.get("hash") == want,
        "hash": meta.get("hash"),
        "wanted_hash": want,
        "build_seconds": meta.get("build_seconds"),
        "bytes": meta.get("bytes"),
        "added": meta.get("added"),
    }


def is_built() -> bool:
    return status()["current"]


def _package(deb: Path) -> str:
    return deb.name.split("_", 1)[0]


def build_rootfs(force: bool = False, mirror: str | None = None, log=print) -> dict:
    """Build (or reuse) the Vulkan variant's rootfs; returns :func:`status` plus what was done."""
    from . import device_files

    base = build.build(mirror=mirror, log=log, profile=build.profiles.DEFAULT)
    r = recipe(mirror)
    h = build.recipe_hash(r)
    st = status()
    if st["current"] and not force:
        log(f"emulator rootfs ({NAME}) is current ({st['rootfs']}, recipe {h}); nothing to do")
        return {**st, "rebuilt": False}
    t0 = time.monotonic()
    ldir = layer_dir()
    ldir.mkdir(parents=True, exist_ok=True)
    debs_dir, tmp = ldir / "debs.tmp", ldir / "rootfs.tmp"
    for d in (debs_dir, tmp):
        if d.exists():
            shutil.rmtree(d)
    # 1. the driver and its dependencies, resolved by debootstrap against the same suite and mirror as the base
    build._run(
        [
            "debootstrap",
            "--arch=arm64",
            "--download-only",
            "--variant=minbase",
            f"--include={','.join(build.DEBS + DEBS)}",
            build.SUITE,
            str(debs_dir),
            r["mirror"],
        ],
        "debootstrap --download-only of the Vulkan driver",
        log,
    )
    # 2. a copy of the base rootfs with every package it lacks unpacked into it
    build._run(["cp", "-a", "--reflink=auto", base["rootfs"], str(tmp)], "copy of the debian rootfs", log)
    base_root = Path(base["rootfs"])
    new = [
        deb
        for deb in sorted((debs_dir / "var/cache/apt/archives").glob("*.deb"))
        if not (base_root / "usr/share/doc" / _package(deb)).exists()
    ]
    if not any(_package(deb) in DEBS for deb in new):
        raise build.EmulatorBuildError(
            f"debootstrap did not fetch {', '.join(DEBS)}: check the mirror with --mirror URL"
        )
    log(f"unpacking {len(new)} packages: {' '.join(_package(d) for d in new)}")
    for deb in new:
        build._run(["dpkg", "-x", str(deb), str(tmp)], f"dpkg -x {deb.name}", log=lambda _m: None)
    if not (tmp / ICD_JSON.lstrip("/")).is_file():
        raise build.EmulatorBuildError(
            f"{ICD_JSON} is missing after unpacking {', '.join(DEBS)}: the Debian package "
            "layout changed; update mobileseg.emulator.vulkan.ICD_JSON"
        )
    device_files.install(tmp, build.profiles.DEFAULT)
    shutil.rmtree(debs_dir)
    final = rootfs_dir()
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    meta = {
        "hash": h,
        "recipe": r,
        "build_seconds": round(time.monotonic() - t0, 1),
        "bytes": build._du(final),
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "added": sorted(_package(d) for d in new),
    }
    (ldir / "rootfs.json").write_text(json.dumps(meta, indent=2))
    log(f"built {final} in {meta['build_seconds']} s ({meta['bytes'] / 1e6:.1f} MB, {len(new)} packages added)")
    return {**status(), "rebuilt": True}


def env_args() -> list[str]:
    """The daemon arguments that put :data:`ENV` into every shell command of the device."""
    return [a for k, v in ENV.items() for a in ("--env", f"{k}={v}")]
