"""Build the emulated ARM64 devices' root filesystems, one per profile (:mod:`.profiles`), cached by recipe hash.

``debian`` (docs/adb.md): ``debootstrap --foreign --variant=minbase --include=python3`` downloads and unpacks
the base system, then every downloaded .deb is unpacked with ``dpkg -x`` (no second stage, so no binfmt_misc is
needed). The aarch64 wheels of the runtimes are fetched by the host's pip (``--platform manylinux..._aarch64
--only-binary=:all:``) at the versions of the project's lock file (the host's installed versions when there is none),
so host-against-ARM parity compares one version with itself, and installed with ``pip install --target``.

``android``: no Python, no Debian userland: Debian's static arm64 busybox (one pinned, sha256-checked .deb from the
same mirror, unpacked with ``dpkg -x``) as ``/system/bin/busybox``, with ``/system/bin/sh`` and a toybox-like set of
applets linked to it. A few seconds to build.

Programs in a rootfs run under ``proot -r ROOTFS -q qemu-aarch64-static``; the emulated device files (ARM
/proc/cpuinfo, getprop, cpufreq and thermal entries) are written by :mod:`mobileseg.emulator.device_files`. Each
profile lives in the cache folder (``$MOBILESEG_CACHE`` or ``~/.cache/mobileseg``) under ``emulator/<profile>/``
(debian: ``emulator/``) and is rebuilt only when its recipe (hash stored in ``rootfs.json`` there) changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import MobilesegError
from . import profiles

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBS = ["python3"]
# The runtimes installed on the debian profile; their versions come from the lock file (see runtime_wheels).
RUNTIMES = ["numpy", "onnxruntime", "ncnn", "ai-edge-litert"]
# Used only when neither the lock file nor the host has a package (a host without the LiteRT extra, say).
FALLBACK_PINS = {"numpy": "2.4.6", "onnxruntime": "1.31.1", "ncnn": "1.0.20261020", "ai-edge-litert": "2.3.0"}
PLATFORMS = [
    "manylinux_2_17_aarch64",
    "manylinux_2_27_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_34_aarch64",
    "manylinux2014_aarch64",
]
PYTHON_VERSION = "3.11"  # bookworm's python3; also names the lock file requirements/py3.11.txt
SITE_PACKAGES = "usr/local/lib/python3.11/dist-packages"
LOCK_FILE = Path(__file__).resolve().parents[2] / "requirements" / f"py{PYTHON_VERSION}.txt"
# busybox for the android profile: pinned so that a build is reproducible (the Packages index is read only when the
# mirror no longer has this file).
BUSYBOX_DEB = {
    "package": "busybox-static",
    "version": "1:1.35.0-4+deb12u1+b1",
    "filename": "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_arm64.deb",
    "sha256": "732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5",
}
# The applets a stock Android toybox (plus its sh and awk) offers, linked to busybox where busybox has them.
ANDROID_APPLETS = (
    "[ awk base64 basename cat chgrp chmod chown cmp cp cut date dd df diff dirname dmesg du echo egrep env expr "
    "false fgrep find free getopt grep groups gunzip gzip head hostname id kill killall ln ls md5sum mkdir mkfifo "
    "mknod mktemp more mount mv nc netstat nl nproc od paste pidof printf ps pwd readlink realpath renice rm rmdir "
    "sed seq setsid sh sha1sum sha256sum sha512sum sleep sort stat strings stty sync sysctl tac tail tar taskset "
    "tee test time timeout top touch tr true truncate tty umount uname uniq unlink uptime wc which whoami xargs "
    "xxd yes zcat"
).split()
HOST_TOOLS = {"debootstrap": "debootstrap", "proot": "proot", "qemu-aarch64-static": "qemu-user-static", "dpkg": "dpkg"}
PROFILE_HOST_TOOLS = {"debian": HOST_TOOLS, "android": {k: v for k, v in HOST_TOOLS.items() if k != "debootstrap"}}
RECIPE_VERSION = 4  # bump when the steps below change in a way that invalidates old builds


class EmulatorBuildError(MobilesegError):
    pass


def cache_root() -> Path:
    return Path(os.environ.get("MOBILESEG_CACHE") or Path.home() / ".cache" / "mobileseg")


def emulator_dir() -> Path:
    return cache_root() / "emulator"


def profile_dir(profile: str | None = None) -> Path:
    """Where a profile's rootfs and rootfs.json live: ``emulator/<profile>/``; debian keeps ``emulator/`` itself
    (where it was before there were profiles, so existing caches stay valid)."""
    name = profiles.get(profile).name
    return emulator_dir() if name == profiles.DEFAULT else emulator_dir() / name


def rootfs_dir(profile: str | None = None) -> Path:
    return profile_dir(profile) / "rootfs"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path | None = None) -> dict:
    """``{normalised name: version}`` of a pip-freeze style lock file (``name==version`` lines, ``#`` comments)."""
    pins = {}
    for line in Path(path or LOCK_FILE).read_text().splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^]]*\])?\s*==\s*([^\s\\]+)", line)
        if m:
            pins[_norm(m.group(1))] = m.group(3)
    return pins


def runtime_wheels() -> tuple[list[str], dict]:
    """``name==version`` of the runtimes for the debian profile, and where each version came from.

    The lock file (``requirements/py3.11.txt``) first, so that the device runs what the host was tested with; else
    the version installed on the host; else :data:`FALLBACK_PINS`.
    """
    import importlib.metadata as md

    lock = read_lock() if LOCK_FILE.is_file() else {}
    wheels, source = [], {}
    for name in RUNTIMES:
        version, where = lock.get(_norm(name)), str(LOCK_FILE.name)
        if version is None:
            try:
                version, where = md.version(name), "host"
            except md.PackageNotFoundError:
                version, where = FALLBACK_PINS[name], "fallback pin"
        wheels.append(f"{name}=={version}")
        source[name] = where
    return wheels, source


def recipe(mirror: str | None = None, profile: str | None = None) -> dict:
    from . import device_files

    prof = profiles.get(profile)
    r = {
        "version": RECIPE_VERSION,
        "profile": prof.name,
        "suite": SUITE,
        "arch": "arm64",
        "mirror": mirror or default_mirror(),
        "device_files": device_files.fingerprint(),
    }
    if prof.name == "android":
        return {**r, "busybox": BUSYBOX_DEB, "applets": ANDROID_APPLETS}
    return {
        **r,
        "variant": "minbase",
        "debs": DEBS,
        "wheels": runtime_wheels()[0],
        "platforms": PLATFORMS,
        "python_version": PYTHON_VERSION,
    }


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


def check_host_tools(profile: str | None = None) -> None:
    tools = PROFILE_HOST_TOOLS.get(profiles.get(profile).name, HOST_TOOLS)
    missing = sorted({pkg for tool, pkg in tools.items() if not shutil.which(tool)})
    if missing:
        raise EmulatorBuildError(
            f"the emulated device needs the Debian packages {', '.join(missing)}: "
            f"install them with: sudo apt-get install {' '.join(missing)}"
        )


def _complete(profile: str | None) -> Path:
    """The file whose presence says the rootfs of ``profile`` is whole."""
    prof = profiles.get(profile)
    return rootfs_dir(prof.name) / ("usr/bin/python3" if prof.python else prof.shell.lstrip("/"))


def status(profile: str | None = None) -> dict:
    """What is built for ``profile``: rootfs path, recipe hash, whether it is current, size and build time."""
    prof = profiles.get(profile)
    meta_path = profile_dir(prof.name) / "rootfs.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    want = recipe_hash(recipe(meta.get("recipe", {}).get("mirror"), prof.name))
    built = bool(meta) and os.path.lexists(_complete(prof.name))
    return {
        "profile": prof.name,
        "rootfs": str(rootfs_dir(prof.name)),
        "built": built,
        "current": built and meta.get("hash") == want,
        "hash": meta.get("hash"),
        "wanted_hash": want,
        "build_seconds": meta.get("build_seconds"),
        "bytes": meta.get("bytes"),
        "wheels": meta.get("wheels"),
        "runtime_source": meta.get("runtime_source"),
    }


def is_built(profile: str | None = None) -> bool:
    return status(profile)["current"]


def _run(cmd: list[str], what: str, log, env=None) -> str:
    log(f"$ {' '.join(cmd)}")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise EmulatorBuildError(f"{what} failed (exit {proc.returncode}); its last lines:\n{tail}")
    return proc.stdout


def _du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def _build_debian(tmp: Path, r: dict, log) -> dict:
    # 1. base system: download + first stage only, then unpack every .deb (no binfmt needed)
    _run(
        [
            "debootstrap",
            "--arch=arm64",
            "--foreign",
            "--variant=minbase",
            f"--include={','.join(DEBS)}",
            SUITE,
            str(tmp),
            r["mirror"],
        ],
        "debootstrap",
        log,
    )
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
    want = r["wheels"]
    _run([*pip, "download", "--quiet", "-d", str(wheels), *common, *want], "pip download of the aarch64 wheels", log)
    site = tmp / SITE_PACKAGES
    site.mkdir(parents=True, exist_ok=True)
    _run(
        [
            *pip,
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheels),
            "--target",
            str(site),
            "--no-compile",
            *common,
            *want,
        ],
        "pip install of the aarch64 wheels into the rootfs",
        log,
    )
    installed = sorted(p.name for p in site.glob("*.dist-info"))
    return {"wheels": installed, "runtime_source": runtime_wheels()[1]}


def _download(url: str, dest: Path, sha256: str | None) -> Path:
    if dest.is_file() and (sha256 is None or _sha256(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=120) as resp, open(part, "wb") as f:
        shutil.copyfileobj(resp, f)
    if sha256 is not None and _sha256(part) != sha256:
        part.unlink()
        raise EmulatorBuildError(f"{url} does not have the expected sha256 {sha256[:12]}: check the mirror")
    part.replace(dest)
    return dest


def _sha256(path: Path) -> str:
    from ..hashing import sha256_file

    return sha256_file(path)


def _index_entry(mirror: str, package: str) -> dict:
    """Filename and SHA256 of ``package`` in the mirror's arm64 Packages index (when the pinned file is gone)."""
    import lzma

    url = f"{mirror}/dists/{SUITE}/main/binary-arm64/Packages.xz"
    with urllib.request.urlopen(url, timeout=120) as resp:
        text = lzma.decompress(resp.read()).decode("utf-8", "replace")
    for stanza in text.split("\n\n"):
        fields = dict(l.split(": ", 1) for l in stanza.splitlines() if ": " in l and not l.startswith(" "))
        if fields.get("Package") == package:
            return {
                "package": package,
                "version": fields["Version"],
                "filename": fields["Filename"],
                "sha256": fields["SHA256"],
            }
    raise EmulatorBuildError(f"the mirror {mirror} has no arm64 package {package}: pass another with --mirror URL")


def busybox_deb(mirror: str, log) -> tuple[Path, dict]:
    """The arm64 busybox-static .deb (cached under ``<cache>/debs``): the pinned one, else the mirror's current."""
    entry = dict(BUSYBOX_DEB)
    debs = cache_root() / "debs"
    try:
        try:
            path = _download(f"{mirror}/{entry['filename']}", debs / Path(entry["filename"]).name, entry["sha256"])
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            entry = _index_entry(mirror, entry["package"])
            log(f"the pinned {BUSYBOX_DEB['filename']} is gone from the mirror; using {entry['version']}")
            path = _download(f"{mirror}/{entry['filename']}", debs / Path(entry["filename"]).name, entry["sha256"])
    except (urllib.error.URLError, OSError) as exc:
        raise EmulatorBuildError(
            f"cannot download busybox-static from {mirror} ({getattr(exc, 'reason', exc)}): "
            "check the network or pass a reachable Debian mirror with --mirror URL"
        ) from None
    return path, entry


def _build_android(tmp: Path, r: dict, log) -> dict:
    deb, entry = busybox_deb(r["mirror"], log)
    unpacked = tmp.parent / "busybox.deb.d"
    shutil.rmtree(unpacked, ignore_errors=True)
    _run(["dpkg", "-x", str(deb), str(unpacked)], f"dpkg -x {deb.name}", log)
    bindir = tmp / "system/bin"
    bindir.mkdir(parents=True)
    shutil.copy2(unpacked / "bin/busybox", bindir / "busybox")
    shutil.rmtree(unpacked)
    have = set(_run(["qemu-aarch64-static", str(bindir / "busybox"), "--list"], "busybox --list", log).split())
    linked = [a for a in r["applets"] if a in have]
    for applet in linked:
        (bindir / applet).symlink_to("busybox")
    for d in ("system/xbin", "vendor/bin", "data/local/tmp", "proc", "sys", "dev", "sdcard", "storage"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    log(
        f"busybox {entry['version']}: {len(linked)} applets in /system/bin "
        f"(not in busybox: {' '.join(sorted(set(r['applets']) - have)) or 'none'})"
    )
    return {"busybox": entry, "applets": linked}


def build(force: bool = False, mirror: str | None = None, log=print, profile: str | None = None) -> dict:
    """Build (or reuse) the rootfs of ``profile``; returns :func:`status` plus what was done."""
    prof = profiles.get(profile)
    check_host_tools(prof.name)
    r = recipe(mirror, prof.name)
    h = recipe_hash(r)
    st = status(prof.name)
    if st["current"] and not force:
        log(f"emulator rootfs ({prof.name}) is current ({st['rootfs']}, recipe {h}); nothing to do")
        return {**st, "rebuilt": False}
    t0 = time.monotonic()
    pdir = profile_dir(prof.name)
    pdir.mkdir(parents=True, exist_ok=True)
    tmp = pdir / "rootfs.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    done = (_build_android if prof.name == "android" else _build_debian)(tmp, r, log)
    # the emulated device's files: ARM cpuinfo, getprop, cpufreq/thermal, /data/local/tmp
    from . import device_files

    device_files.install(tmp, prof)
    final = rootfs_dir(prof.name)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    meta = {
        "hash": h,
        "recipe": r,
        "build_seconds": round(time.monotonic() - t0, 1),
        "bytes": _du(final),
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **done,
    }
    (pdir / "rootfs.json").write_text(json.dumps(meta, indent=2))
    log(f"built {final} in {meta['build_seconds']} s ({meta['bytes'] / 1e6:.1f} MB)")
    return {**status(prof.name), "rebuilt": True}
