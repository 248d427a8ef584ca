"""Build the native ncnn harness (``device_scripts/native``) for phones that have no Python.

ncnn's source is the PyPI sdist at exactly the version of the installed ``ncnn`` Python package, so the native harness
and the Python runtime adapter compute with the same library. Two stages, each cached under the cache folder
(``$MOBILESEG_CACHE`` or ``~/.cache/mobileseg``):

- ``ncnn-lib/<version>-<toolchain>-<options hash>/``: the static ``libncnn.a`` + headers (minutes, built once);
- ``harness/<version>-<toolchain>-<library key>-<harness source hash>/``: the harness binary (seconds).

Toolchains: ``android-arm64`` (the NDK given by ``--ndk`` or ``ANDROID_NDK_HOME``), ``aarch64-linux-gnu`` (Debian's
cross compiler, fully static: a static binary needs no bionic and runs on Android too) and ``host`` (the machine's
own compiler, used by the tests to compare the harness with the ncnn Python package).

The Vulkan variant (``vulkan=True``, ``mobileseg harness build --vulkan``) runs ``ncnn-vulkan`` on a phone's GPU. ncnn
then loads the phone's ``libvulkan.so`` at run time (its own minimal loader, ``NCNN_SIMPLEVK``), which only a
binary linked against bionic can do: a static glibc binary cannot load bionic's library, so the variant is built
with the NDK only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..resources import project_path
from ..errors import MissingDependencyError, MobilesegError
from ..hashing import sha256_file as _sha256

HARNESS_NAME = "mobileseg-ncnn-harness"
PYPI_SIMPLE_URL = "https://pypi.org/simple/ncnn/"
TOOLCHAINS = ("auto", "android-arm64", "aarch64-linux-gnu", "host")

# Only the library: no GPU, no tools/benchmark/examples, no image helpers the harness does not use.
NCNN_CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DNCNN_VULKAN=OFF",
    "-DNCNN_BUILD_TOOLS=OFF",
    "-DNCNN_BUILD_BENCHMARK=OFF",
    "-DNCNN_BUILD_EXAMPLES=OFF",
    "-DNCNN_BUILD_TESTS=OFF",
    "-DNCNN_PYTHON=OFF",
    "-DNCNN_SHARED_LIB=OFF",
    "-DNCNN_C_API=OFF",
    "-DNCNN_PIXEL_ROTATE=OFF",
    "-DNCNN_PIXEL_AFFINE=OFF",
    "-DNCNN_PIXEL_DRAWING=OFF",
)

# The Vulkan variant: the same library with ncnn's compute shaders (glslang from the sdist compiles them at build
# time) and ncnn's own loader, which dlopen()s the device's libvulkan.so instead of linking it.
NCNN_VULKAN_CMAKE_OPTIONS = tuple(o for o in NCNN_CMAKE_OPTIONS if o != "-DNCNN_VULKAN=OFF") + (
    "-DNCNN_VULKAN=ON",
    "-DNCNN_SIMPLEVK=ON",
    "-DNCNN_SYSTEM_GLSLANG=OFF",
)
VULKAN_NEEDS_NDK = (
    "the Vulkan native harness needs the Android NDK (--ndk PATH or ANDROID_NDK_HOME): it loads the "
    "phone's libvulkan.so, which a static glibc binary cannot; without the NDK use the CPU harness, or "
    "the device's Python harness (--harness python) where the board has Python and a Vulkan driver"
)


def ncnn_cmake_options(vulkan: bool = False) -> tuple[str, ...]:
    return NCNN_VULKAN_CMAKE_OPTIONS if vulkan else NCNN_CMAKE_OPTIONS


class ToolchainError(MobilesegError):
    """A compiler, CMake or the NDK is missing; the message names the package or variable that provides it."""


class HarnessBuildError(MobilesegError):
    """The ncnn library or the harness failed to build; the message points at the build log."""


def cache_root() -> Path:
    """The cache folder shared by builds: ``$MOBILESEG_CACHE`` or ``~/.cache/mobileseg``."""
    return Path(os.environ.get("MOBILESEG_CACHE") or Path.home() / ".cache" / "mobileseg").expanduser()


def harness_source_dir() -> Path:
    """``device_scripts/native`` of the source tree (the harness is built from source, never shipped as a binary)."""
    src = project_path("device_scripts", "native")
    if not (src / "CMakeLists.txt").is_file():
        raise HarnessBuildError(
            f"the native harness source is not at {src}: run mobileseg from a source checkout "
            "(pip install -e .) to build the harness"
        )
    return src


def harness_source_hash(src: Path | None = None) -> str:
    """sha256 (16 hex digits) over the harness source files' names and contents."""
    src = src or harness_source_dir()
    h = hashlib.sha256()
    for p in sorted(q for q in src.rglob("*") if q.is_file() and q.suffix in {".cpp", ".h", ".hpp", ".txt", ".cmake"}):
        h.update(p.relative_to(src).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def ncnn_version() -> str:
    """Version of the installed ncnn Python package (the sdist built is exactly this version)."""
    from importlib import metadata

    try:
        return metadata.version("ncnn")
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            "the Python package 'ncnn' is not installed (its version chooses the ncnn "
            "source the native harness is built from): install it with: "
            "pip install 'mobileseg[ncnn]' -c constraints.txt"
        ) from None


@dataclass
class Toolchain:
    """How to compile for one target: the CMake arguments and the identity of the compiler (part of cache keys)."""

    name: str  # android-arm64 | aarch64-linux-gnu | host
    cmake_args: list[str]
    compiler_id: str  # first line of `<cxx> --version` (or the NDK's revision)
    link_static: bool = True
    env: dict = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return (
            "x86_64"
            if self.name == "host" and os.uname().machine == "x86_64"
            else (os.uname().machine if self.name == "host" else "arm64-v8a")
        )

    def key(self, extra: str = "") -> str:
        h = hashlib.sha256("\n".join([self.name, self.compiler_id, *self.cmake_args, extra]).encode())
        return f"{self.name}-{h.hexdigest()[:12]}"


def _first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (
        (out.stdout or out.stderr).strip().splitlines()[0]
        if out.returncode == 0 and (out.stdout or out.stderr)
        else None
    )


def _require_cmake() -> str:
    cmake = shutil.which("cmake")
    if not cmake:
        raise ToolchainError("cmake is not installed: install the Debian package cmake (apt-get install cmake)")
    return cmake


def _ndk_toolchain(ndk: str, api: int = 24) -> Toolchain:
    root = Path(ndk).expanduser()
    tc_file = root / "build" / "cmake" / "android.toolchain.cmake"
    if not tc_file.is_file():
        raise ToolchainError(
            f"{root} is not an Android NDK (no build/cmake/android.toolchain.cmake): pass --ndk "
            "or set ANDROID_NDK_HOME to the NDK folder (e.g. ~/Android/Sdk/ndk/<version>)"
        )
    rev = "unknown"
    props = root / "source.properties"
    if props.is_file():
        m = re.search(r"Pkg\.Revision\s*=\s*(\S+)", props.read_text())
        rev = m.group(1) if m else rev
    args = [
        f"-DCMAKE_TOOLCHAIN_FILE={tc_file}",
        "-DANDROID_ABI=arm64-v8a",
        f"-DANDROID_PLATFORM=android-{api}",
        "-DANDROID_STL=c++_static",
    ]
    return Toolchain("android-arm64", args, f"android-ndk {rev}", link_static=False)


def _gnu_cross_toolchain() -> Toolchain:
    cxx, cc = shutil.which("aarch64-linux-gnu-g++"), shutil.which("aarch64-linux-gnu-gcc")
    if not cxx or not cc:
        raise ToolchainError(
            "no Android NDK and no aarch64 cross compiler: install the Debian package "
            "g++-aarch64-linux-gnu (apt-get install g++-aarch64-linux-gnu) or set "
            "ANDROID_NDK_HOME to an Android NDK"
        )
    args = [
        "-DCMAKE_SYSTEM_NAME=Linux",
        "-DCMAKE_SYSTEM_PROCESSOR=aarch64",
        f"-DCMAKE_C_COMPILER={cc}",
        f"-DCMAKE_CXX_COMPILER={cxx}",
        "-DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER",
        "-DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY",
        "-DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY",
    ]
    return Toolchain("aarch64-linux-gnu", args, _first_line([cxx, "--version"]) or cxx)


def _host_toolchain() -> Toolchain:
    cxx, cc = shutil.which("g++") or shutil.which("c++"), shutil.which("gcc") or shutil.which("cc")
    if not cxx or not cc:
        raise ToolchainError("no host C++ compiler: install the Debian package g++ (apt-get install g++)")
    args = [f"-DCMAKE_C_COMPILER={cc}", f"-DCMAKE_CXX_COMPILER={cxx}"]
    if os.uname().machine in ("x86_64", "i686"):
        # The host build only checks numerics against the Python package: baseline SSE2 kernels build ~6x faster
        # than the runtime-dispatched AVX/AVX2/AVX-512 variants and compute the same fp32 results within limits.
        args += ["-DNCNN_RUNTIME_CPU=OFF", "-DNCNN_AVX=OFF"]
    return Toolchain("host", args, _first_line([cxx, "--version"]) or cxx)


def find_toolchain(toolchain: str = "auto", ndk: str | None = None) -> Toolchain:
    """The toolchain to build with: the NDK if given (or ANDROID_NDK_HOME), else Debian's aarch64 cross compiler."""
    if toolchain not in TOOLCHAINS:
        raise ToolchainError(f"unknown toolchain {toolchain!r}: choose one of {', '.join(TOOLCHAINS)}")
    _require_cmake()
    if toolchain == "host":
        return _host_toolchain()
    if toolchain in ("auto", "android-arm64"):
        ndk = ndk or os.environ.get("ANDROID_NDK_HOME") or os.environ.get("ANDROID_NDK_ROOT")
        if ndk:
            return _ndk_toolchain(ndk)
        if toolchain == "android-arm64":
            raise ToolchainError("no Android NDK: pass --ndk PATH or set ANDROID_NDK_HOME to the NDK folder")
    return _gnu_cross_toolchain()


class _Lock:
    """An exclusive file lock, so two processes building into the same cache folder wait for each other."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def __enter__(self):
        self.f = open(self.path, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


# -- ncnn source ----------------------------------------------------------------------------------------------------


def _sdist_url(version: str) -> tuple[str, str | None]:
    """URL and sha256 of ``ncnn-<version>.tar.gz`` from PyPI's simple index (pip refuses it: setup.py stamps today)."""
    want = f"ncnn-{version}.tar.gz"
    try:
        with urllib.request.urlopen(PYPI_SIMPLE_URL, timeout=60) as r:
            page = r.read().decode("utf-8", "replace")
    except OSError as exc:
        raise HarnessBuildError(
            f"could not reach {PYPI_SIMPLE_URL} to fetch the ncnn {version} source ({exc}): "
            f"download {want} yourself and set MOBILESEG_NCNN_SDIST to its path"
        ) from None
    for href in re.findall(r'href="([^"]+)"', page):
        url, _, frag = href.partition("#")
        if url.rsplit("/", 1)[-1] == want:
            sha = frag.split("=", 1)[1] if frag.startswith("sha256=") else None
            return urllib.request.urljoin(PYPI_SIMPLE_URL, url), sha
    raise HarnessBuildError(
        f"PyPI has no source distribution {want} for the installed ncnn: install an ncnn "
        "version that has one, or set MOBILESEG_NCNN_SDIST to a local copy of it"
    )


def ncnn_source(version: str | None = None, log=print) -> Path:
    """The extracted ncnn sdist of ``version`` (default: the installed package's), downloaded once into the cache."""
    version = version or ncnn_version()
    with _Lock(cache_root() / "locks" / f"ncnn-src-{version}.lock"):
        return _ncnn_source(version, log)


def _ncnn_source(version: str, log) -> Path:
    dest = cache_root() / "ncnn-src"
    src = dest / f"ncnn-{version}"
    if (src / "CMakeLists.txt").is_file() and (src / ".mobileseg-complete").is_file():
        return src
    dest.mkdir(parents=True, exist_ok=True)
    local = os.environ.get("MOBILESEG_NCNN_SDIST")
    if local:
        tarball = Path(local).expanduser()
        if not tarball.is_file():
            raise HarnessBuildError(f"MOBILESEG_NCNN_SDIST={local} does not exist: point it at ncnn-{version}.tar.gz")
    else:
        tarball = dest / f"ncnn-{version}.tar.gz"
        if not tarball.is_file():
            url, sha = _sdist_url(version)
            log(f"downloading {url}")
            tmp = tarball.with_suffix(".part")
            try:
                with urllib.request.urlopen(url, timeout=300) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise HarnessBuildError(
                    f"downloading {url} failed ({exc}): retry, or download it yourself and set "
                    "MOBILESEG_NCNN_SDIST to its path"
                ) from None
            if sha and _sha256(tmp) != sha:
                tmp.unlink(missing_ok=True)
                raise HarnessBuildError(f"the downloaded {tarball.name} does not match PyPI's sha256: retry the build")
            tmp.rename(tarball)
    shutil.rmtree(src, ignore_errors=True)
    with tarfile.open(tarball) as tf:
        top = {m.name.split("/", 1)[0] for m in tf.getmembers()}
        if top != {f"ncnn-{version}"} or any(
            m.name.startswith("/") or ".." in m.name.split("/") for m in tf.getmembers()
        ):
            raise HarnessBuildError(
                f"{tarball} is not the ncnn {version} sdist (top folder {sorted(top)}): delete it and build again"
            )
        try:
            tf.extractall(dest, filter="data")
        except TypeError:  # Python without extraction filters (< 3.10.12 / 3.11.4): the members were checked above
            tf.extractall(dest)
    (src / ".mobileseg-complete").write_text(version + "\n")
    return src


# -- builds ---------------------------------------------------------------------------------------------------------


@dataclass
class BuildResult:
    path: Path  # the harness binary
    toolchain: str
    ncnn_version: str
    key: str
    cached: bool  # True when nothing had to be compiled
    seconds: float
    ncnn_lib_seconds: float | None = None


def _run(cmd: list[str], logf, cwd: Path | None = None, env: dict | None = None) -> None:
    logf.write("$ " + " ".join(cmd) + "\n")
    logf.flush()
    rc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=cwd, env=env).returncode
    if rc != 0:
        raise HarnessBuildError(f"`{' '.join(cmd[:3])} ...` failed (exit {rc}): see the build log {logf.name}")


def _nice() -> list[str]:
    return ["nice", "-n", "10"] if shutil.which("nice") else []


def _ncnn_lib_key(tc: Toolchain, version: str, vulkan: bool = False) -> str:
    return f"{version}-{tc.key(' '.join(ncnn_cmake_options(vulkan)))}"


def build_ncnn(
    tc: Toolchain, version: str, jobs: int = 2, log=print, vulkan: bool = False
) -> tuple[Path, float | None]:
    """Static ncnn for ``tc`` installed into the cache; returns (install prefix, seconds or None when cached)."""
    key = _ncnn_lib_key(tc, version, vulkan)
    root = cache_root() / "ncnn-lib" / key
    prefix = root / "install"
    done = root / ".complete"
    with _Lock(cache_root() / "locks" / f"ncnn-lib-{key}.lock"):
        if done.is_file():
            return prefix, None
        src = ncnn_source(version, log=log)
        shutil.rmtree(prefix, ignore_errors=True)
        build = root / "build"  # kept when a build was interrupted: make resumes where it stopped
        build.mkdir(parents=True, exist_ok=True)
        date = version.rsplit(".", 1)[-1]  # 1.0.YYYYMMDD: keep ncnn's own version string instead of today's date
        t0 = time.monotonic()
        log(
            f"building ncnn {version} for {tc.name} with {jobs} job(s) (several minutes, once; log: {root / 'build.log'})"
        )
        with open(root / "build.log", "a") as logf:
            _run(
                [
                    "cmake",
                    "-S",
                    str(src),
                    "-B",
                    str(build),
                    f"-DCMAKE_INSTALL_PREFIX={prefix}",
                    f"-DNCNN_VERSION={date}",
                    *ncnn_cmake_options(vulkan),
                    *tc.cmake_args,
                ],
                logf,
            )
            _run([*_nice(), "cmake", "--build", str(build), "-j", str(jobs)], logf)
            _run(["cmake", "--install", str(build)], logf)
        shutil.rmtree(build, ignore_errors=True)  # objects are large; the installed library is all we need
        done.write_text(version + "\n")
        return prefix, time.monotonic() - t0


def _harness_dir(tc: Toolchain, version: str, src_hash: str, vulkan: bool = False) -> Path:
    return cache_root() / "harness" / f"{_ncnn_lib_key(tc, version, vulkan)}-{src_hash}"


def find_vulkan_toolchain(toolchain: str = "auto", ndk: str | None = None) -> Toolchain:
    """The NDK toolchain for the Vulkan variant, or the one-sentence :data:`VULKAN_NEEDS_NDK`."""
    if toolchain not in ("auto", "android-arm64"):
        raise ToolchainError(VULKAN_NEEDS_NDK)
    ndk = ndk or os.environ.get("ANDROID_NDK_HOME") or os.environ.get("ANDROID_NDK_ROOT")
    if not ndk:
        raise ToolchainError(VULKAN_NEEDS_NDK)
    return find_toolchain("android-arm64", ndk)


def build_harness(
    toolchain: str = "auto", ndk: str | None = None, jobs: int = 2, log=print, vulkan: bool = False
) -> BuildResult:
    """Build (or reuse) the native harness; the Python API behind ``mobileseg harness build [--vulkan]``."""
    t0 = time.monotonic()
    tc = find_vulkan_toolchain(toolchain, ndk) if vulkan else find_toolchain(toolchain, ndk)
    version = ncnn_version()
    src = harness_source_dir()
    out = _harness_dir(tc, version, harness_source_hash(src), vulkan)
    binary = out / HARNESS_NAME
    if binary.is_file() and (out / ".complete").is_file():
        return BuildResult(binary, tc.name, version, out.name, True, time.monotonic() - t0)
    prefix, lib_seconds = build_ncnn(tc, version, jobs=jobs, log=log, vulkan=vulkan)
    with _Lock(cache_root() / "locks" / f"harness-{out.name}.lock"):
        if not (binary.is_file() and (out / ".complete").is_file()):
            shutil.rmtree(out, ignore_errors=True)
            build = out / "build"
            build.mkdir(parents=True)
            cmake_dir = next((p.parent for p in prefix.rglob("ncnnConfig.cmake")), None)
            if cmake_dir is None:
                raise HarnessBuildError(f"no ncnnConfig.cmake under {prefix}: delete {prefix.parent} and rebuild")
            with open(out / "build.log", "w") as logf:
                _run(
                    [
                        "cmake",
                        "-S",
                        str(src),
                        "-B",
                        str(build),
                        "-DCMAKE_BUILD_TYPE=Release",
                        f"-Dncnn_DIR={cmake_dir}",
                        f"-DMOBILESEG_NCNN_VERSION={version}",
                        f"-DMOBILESEG_STATIC={'ON' if tc.link_static else 'OFF'}",
                        *tc.cmake_args,
                    ],
                    logf,
                )
                _run([*_nice(), "cmake", "--build", str(build), "-j", str(jobs)], logf)
            shutil.copy2(build / HARNESS_NAME, binary)
            shutil.rmtree(build, ignore_errors=True)
            (out / ".complete").write_text(f"{version}\n{tc.name}\n{tc.compiler_id}\n")
            for old in out.parent.glob(f"{_ncnn_lib_key(tc, version, vulkan)}-*"):  # failed builds (kept for their log)
                if old != out and not (old / ".complete").is_file():
                    shutil.rmtree(old, ignore_errors=True)
    return BuildResult(binary, tc.name, version, out.name, False, time.monotonic() - t0, lib_seconds)


def harness_path(toolchain: str = "auto", ndk: str | None = None, vulkan: bool = False) -> Path | None:
    """The cached harness binary for the current ncnn version, toolchain and source, or None if not built yet."""
    tc = find_vulkan_toolchain(toolchain, ndk) if vulkan else find_toolchain(toolchain, ndk)
    out = _harness_dir(tc, ncnn_version(), harness_source_hash(), vulkan)
    binary = out / HARNESS_NAME
    return binary if binary.is_file() and (out / ".complete").is_file() else None
