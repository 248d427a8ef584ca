"""Build the emulated ARM64 device: an arm64 Debian root filesystem with Python and the aarch64 wheels.

Recipe (DESIGN.md section 5): ``debootstrap --foreign --variant=minbase --include=python3`` downloads and unpacks the
base system, then every downloaded .deb is unpacked with ``dpkg -x`` (no second stage, so no binfmt_misc is needed).
The aarch64 wheels are fetched by the host's pip (``--platform manylinux..._aarch64 --only-binary=:all:``) and
installed into the rootfs' site-packages with ``pip install --target``. Programs in the rootfs run under
``proot -r ROOTFS -q qemu-aarch64-static``; the emulated device files (ARM /proc/cpuinfo, getprop, cpufreq and
thermal entries) are written by :mod:`mobileseg.emulator.device_files`.

The result lives in the cache folder (``$MOBILESEG_CACHE`` or ``~/.cache/mobileseg``) under ``emulator/`` and is
rebuilt only when the recipe (its hash is stored in ``emulator/rootfs.json``) changes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..errors import MobilesegError

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBS = ["python3"]
# Pinned so that a build is reproducible and its hash changes when a pin does.
WHEELS = ["numpy==2.4.6", "onnxruntime==1.31.1", "ncnn==1.0.20261020", "ai-edge-litert==2.3.0"]
PLATFORMS = ["manylinux_2_17_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64",
             "manylinux_2_34_aarch64", "manylinux2014_aarch64"]
PYTHON_VERSION = "3.11"
SITE_PACKAGES = "usr/local/lib/python3.11/dist-packages"
HOST_TOOLS = {"debootstrap": "debootstrap", "proot": "proot", "qemu-aarch64-static": "qemu-user-static",
              "dpkg": "dpkg"}
RECIPE_VERSION = 3  # bump when the steps below change in a way that invalidates old builds


class EmulatorBuildError(MobilesegError):
    pass


def cache_root() -> Path:
    return Path(os.environ.get("MOBILESEG_CACHE") or Path.home() / ".cache" / "mobileseg")


def emulator_dir() -> Path:
    return cache_root() / "emulator"


def rootfs_dir() -> Path:
    return emulator_dir() / "rootfs"


def recipe(mirror: str | None = None) -> dict:
    from . import device_files

    return {"version": RECIPE_VERSION, "suite": SUITE, "arch": "arm64", "variant": "minbase", "debs": DEBS,
            "mirror": mirror or default_mirror(), "wheels": WHEELS, "platforms": PLATFORMS,
            "python_version": PYTHON_VERSION, "device_files": device_files.fingerprint()}


def recipe_hash(r: dict) -> str:
    return hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:16]


def default_mirror() -> str:
    """The host's Debian mirror (from /etc/apt/sources.list[.d]) or deb.debian.org."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("URIs:"):
                uri = line.split()[1]
                if "security" not in uri:
                    return uri.rstrip("/")
            elif line.startswith("deb ") and "security" not in line:
                parts = [p for p in line.split() if not p.startswith("[")]
                if len(parts) > 1:
                    return parts[1].rstrip("/")
    return DEFAULT_MIRROR


def check_host_tools() -> None:
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)})
    if missing:
        raise EmulatorBuildError(
            f"the emulated device needs the Debian packages {', '.join(missing)}: "
            f"install them with: sudo apt-get install {' '.join(missing)}")


def status() -> dict:
    """What is built: the rootfs path, its recipe hash, whether it is current, its size and build time."""
    meta_path = emulator_dir() / "rootfs.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    want = recipe_hash(recipe(meta.get("recipe", {}).get("mirror")))
    built = bool(meta) and (rootfs_dir() / "usr/bin/python3").exists()
    return {"rootfs": str(rootfs_dir()), "built": built, "current": built and meta.get("hash") == want,
            "hash": meta.get("hash"), "wanted_hash": want, "build_seconds": meta.get("build_seconds"),
            "bytes": meta.get("bytes"), "wheels": meta.get("wheels")}


def is_built() -> bool:
    return status()["current"]


def _run(cmd: list[str], what: str, log, env=None) -> None:
    log(f"$ {' '.join(cmd)}")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise EmulatorBuildError(f"{what} failed (exit {proc.returncode}); its last lines:\n{tail}")


def _du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def build(force: bool = False, mirror: str | None = None, log=print) -> dict:
    """Build (or reuse) the emulated device's rootfs; returns :func:`status` plus what was done."""
    check_host_tools()
    r = recipe(mirror)
    h = recipe_hash(r)
    st = status()
    if st["current"] and not force:
        log(f"emulator rootfs is current ({st['rootfs']}, recipe {h}); nothing to do")
        return {**st, "rebuilt": False}
    t0 = time.monotonic()
    edir = emulator_dir()
    edir.mkdir(parents=True, exist_ok=True)
    tmp = edir / "rootfs.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    # 1. base system: download + first stage only, then unpack every .deb (no binfmt needed)
    _run(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", f"--include={','.join(DEBS)}",
          SUITE, str(tmp), r["mirror"]], "debootstrap", log)
    debs = sorted((tmp / "var/cache/apt/archives").glob("*.deb"))
    if not debs:
        raise EmulatorBuildError("debootstrap downloaded no packages: check the mirror with --mirror URL")
    log(f"unpacking {len(debs)} packages")
    for deb in debs:
        _run(["dpkg", "-x", str(deb), str(tmp)], f"dpkg -x {deb.name}", log=lambda _m: None)
    for deb in debs:
        deb.unlink()
    # 2. aarch64 wheels, downloaded once into the cache, installed into the rootfs' site-packages
    wheels = cache_root() / "wheels" / "aarch64-cp311"
    wheels.mkdir(parents=True, exist_ok=True)
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    common = [*plat, "--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "download", "--quiet", "-d", str(wheels), *common, *WHEELS], "pip download of the aarch64 wheels",
         log)
    site = tmp / SITE_PACKAGES
    site.mkdir(parents=True, exist_ok=True)
    _run([*pip, "install", "--quiet", "--no-index", "--find-links", str(wheels), "--target", str(site),
          "--no-compile", *common, *WHEELS], "pip install of the aarch64 wheels into the rootfs", log)
    # 3. the emulated device's files: ARM cpuinfo, getprop, cpufreq/thermal, /data/local/tmp
    from . import device_files

    device_files.install(tmp)
    final = rootfs_dir()
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    installed = sorted(p.name for p in wheels.glob("*.whl"))
    meta = {"hash": h, "recipe": r, "build_seconds": round(time.monotonic() - t0, 1), "bytes": _du(final),
            "wheels": installed, "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (edir / "rootfs.json").write_text(json.dumps(meta, indent=2))
    log(f"built {final} in {meta['build_seconds']} s ({meta['bytes'] / 1e6:.0f} MB)")
    return {**status(), "rebuilt": True}
