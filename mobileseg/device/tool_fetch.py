"""Fetch the official prebuilt benchmark binaries into the cache (``mobileseg tools fetch``).

TFLite / LiteRT publish nightly prebuilt ``benchmark_model`` binaries for Android aarch64 (the "download links for
nightly pre-built TFLite tooling binaries" of the LiteRT performance docs, next to the benchmark tool's README).
:func:`fetch` downloads one, checks it is an aarch64 ELF executable (a proxy's HTML page is not cached as a binary),
and keeps it under ``<cache>/tools/<name>/`` with a JSON record of where it came from: URL, sha256, size and, since
a nightly has no release number, its version as the server dates it (``nightly-YYYY-MM-DD`` from Last-Modified, plus
the object generation / ETag). ``--tflite-benchmark auto`` uses the cached one (:func:`cached_binary`).

ONNX Runtime publishes no prebuilt ``onnxruntime_perf_test`` for Android: it is built from source with the NDK
(see the README).
"""

from __future__ import annotations

import email.utils
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import MobilesegError
from ..hashing import sha256_file
from .native_build import cache_root


class ToolFetchError(MobilesegError):
    """A tool could not be downloaded or is not what it should be."""


@dataclass(frozen=True)
class ToolSource:
    name: str  # the CLI name: mobileseg tools fetch NAME
    binary: str  # the file name it is cached as (the tool's own name)
    url: str
    url_env: str  # environment variable that overrides the URL (mirrors, tests)
    docs: str
    elf_machine: int = 183  # EM_AARCH64


TOOLS = {
    "tflite-benchmark": ToolSource(
        name="tflite-benchmark",
        binary="benchmark_model",
        url="https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/"
        "latest/android_aarch64_benchmark_model",
        url_env="MOBILESEG_TFLITE_BENCHMARK_URL",
        docs="https://ai.google.dev/edge/litert/performance/implementing_delegate "
        "(download links for nightly pre-built TFLite tooling binaries)",
    ),
}


def source(name: str) -> ToolSource:
    try:
        return TOOLS[name]
    except KeyError:
        raise ToolFetchError(
            f"unknown tool '{name}': mobileseg tools fetch {' | '.join(TOOLS)} (onnxruntime_perf_test "
            "has no prebuilt binary: build it from source, see the README)"
        ) from None


def tool_dir(name: str) -> Path:
    return cache_root() / "tools" / name


def _info_path(name: str) -> Path:
    return tool_dir(name) / "info.json"


def cached(name: str) -> dict | None:
    """The record of the cached binary, or None when there is none (or it no longer matches its sha256)."""
    src = source(name)
    try:
        info = json.loads(_info_path(name).read_text())
    except (OSError, ValueError):
        return None
    path = tool_dir(name) / src.binary
    if not path.is_file() or sha256_file(path) != info.get("sha256"):
        return None
    return {**info, "path": str(path)}


def cached_binary(name: str) -> Path:
    """The cached binary for ``--tflite-benchmark auto``; one sentence when it was never fetched."""
    info = cached(name)
    if info is None:
        flag = "--tflite-benchmark" if name == "tflite-benchmark" else f"the {name} option"
        raise ToolFetchError(
            f"{flag} auto uses the official binary fetched into the cache, and there is none: run "
            f"mobileseg tools fetch {name} (or pass {flag} PATH)"
        )
    return Path(info["path"])


def _check_elf(path: Path, src: ToolSource) -> None:
    head = path.read_bytes()[:20] if path.stat().st_size >= 20 else b""
    if head[:4] != b"\x7fELF":
        what = "an HTML page" if head.lstrip()[:1] == b"<" else "not an executable"
        raise ToolFetchError(
            f"the download of {src.binary} is {what} (a proxy or a changed URL?): check the URL, or "
            "download the file by hand and pass its path"
        )
    machine = int.from_bytes(head[18:20], "little")
    if head[4] != 2 or machine != src.elf_machine:
        raise ToolFetchError(
            f"the download of {src.binary} is not a 64-bit ARM (aarch64) binary (ELF machine {machine}): check the URL"
        )


def _version(headers) -> dict:
    out = {}
    last = headers.get("Last-Modified")
    if last:
        try:
            out["last_modified"] = email.utils.parsedate_to_datetime(last).strftime("%Y-%m-%dT%H:%M:%SZ")
            out["version"] = "nightly-" + out["last_modified"][:10]
        except (TypeError, ValueError):
            out["last_modified"] = last
    for key, header in (("generation", "x-goog-generation"), ("etag", "ETag")):
        if headers.get(header):
            out[key] = headers.get(header).strip('"')
    out.setdefault("version", "nightly-" + time.strftime("%Y-%m-%d", time.gmtime()) + " (download date)")
    return out


def fetch(name: str, url: str | None = None, force: bool = False, timeout: float = 60.0, progress=None) -> dict:
    """Download tool ``name`` into the cache (unless it is there already); returns its record with ``path``.

    ``url``: another location (default: ``$<url_env>`` or the official one). ``progress(done_bytes, total_bytes)``
    is called while downloading.
    """
    src = source(name)
    url = url or os.environ.get(src.url_env) or src.url
    have = cached(name)
    if have and not force and have.get("url") == url:
        return {**have, "cached": True}
    folder = tool_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{src.binary}-", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                req = urllib.request.Request(url, headers={"User-Agent": "mobileseg"})
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    done = 0
                    while chunk := resp.read(1 << 16):
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                    headers = resp.headers
            except urllib.error.HTTPError as exc:
                raise ToolFetchError(
                    f"cannot download {src.binary}: {url} answered HTTP {exc.code} ({exc.reason}): "
                    f"check the URL (documented at {src.docs})"
                ) from None
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                raise ToolFetchError(
                    f"cannot download {src.binary} from {url} ({reason}): check the network (or the "
                    "proxy: HTTPS_PROXY), or download it by hand and pass --tflite-benchmark PATH"
                ) from None
        if total is not None and done != total:
            raise ToolFetchError(
                f"the download of {src.binary} stopped after {done} of {total} bytes: run the command again"
            )
        _check_elf(tmp, src)
        tmp.chmod(0o755)
        final = folder / src.binary
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    info = {
        "tool": src.binary,
        "name": name,
        "url": url,
        "sha256": sha256_file(final),
        "bytes": final.stat().st_size,
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **_version(headers),
    }
    _info_path(name).write_text(json.dumps(info, indent=2) + "\n")
    return {**info, "path": str(final), "cached": False}
