"""``mobileseg tools fetch tflite-benchmark`` against a local HTTP server serving a fixture binary."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from mobileseg.cli import main
from mobileseg.device import tool_fetch
from mobileseg.device.tool_fetch import ToolFetchError

STAMP = 1767225600  # 2026-01-01T00:00:00Z, the fixture's Last-Modified


def elf(machine: int = 183, size: int = 200_000) -> bytes:
    """An ELF64 header for ``machine`` (183: aarch64) followed by seeded filler bytes."""
    import random

    head = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + (2).to_bytes(2, "little") + machine.to_bytes(2, "little")
    rng = random.Random(machine)
    return head + bytes(rng.getrandbits(8) for _ in range(size - len(head)))


@pytest.fixture
def http_files(tmp_path):
    """Serve ``tmp_path/www`` on 127.0.0.1; yields (base URL, folder, list of requested paths)."""
    root = tmp_path / "www"
    root.mkdir()
    seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def do_GET(self):
            seen.append(self.path)
            super().do_GET()

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILESEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MOBILESEG_TFLITE_BENCHMARK_URL", raising=False)
    return tmp_path / "cache"


def serve(root: Path, name: str, data: bytes) -> Path:
    path = root / name
    path.write_bytes(data)
    os.utime(path, (STAMP, STAMP))
    return path


def test_fetch_records_sha256_and_version_and_caches(http_files, cache):
    base, root, seen = http_files
    data = elf()
    serve(root, "android_aarch64_benchmark_model", data)
    url = f"{base}/android_aarch64_benchmark_model"
    info = tool_fetch.fetch("tflite-benchmark", url=url)
    path = Path(info["path"])
    assert path == cache / "tools" / "tflite-benchmark" / "benchmark_model" and path.read_bytes() == data
    assert os.access(path, os.X_OK)
    assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["bytes"] == len(data)
    assert info["version"] == "nightly-2026-01-01" and info["last_modified"] == "2026-01-01T00:00:00Z"
    assert info["url"] == url and info["cached"] is False
    saved = json.loads((path.parent / "info.json").read_text())
    assert saved["sha256"] == info["sha256"] and saved["version"] == "nightly-2026-01-01"
    # the second fetch is the cached copy: no request
    again = tool_fetch.fetch("tflite-benchmark", url=url)
    assert again["cached"] is True and again["sha256"] == info["sha256"] and len(seen) == 1
    assert tool_fetch.cached_binary("tflite-benchmark") == path
    assert tool_fetch.fetch("tflite-benchmark", url=url, force=True)["cached"] is False and len(seen) == 2


def test_the_url_comes_from_the_environment(http_files, monkeypatch):
    base, root, seen = http_files
    serve(root, "bm", elf())
    monkeypatch.setenv("MOBILESEG_TFLITE_BENCHMARK_URL", f"{base}/bm")
    assert tool_fetch.fetch("tflite-benchmark")["url"] == f"{base}/bm" and seen == ["/bm"]


def test_a_changed_cached_file_is_fetched_again(http_files):
    base, root, seen = http_files
    serve(root, "bm", elf())
    info = tool_fetch.fetch("tflite-benchmark", url=f"{base}/bm")
    Path(info["path"]).write_bytes(b"truncated")
    assert tool_fetch.cached("tflite-benchmark") is None
    assert tool_fetch.fetch("tflite-benchmark", url=f"{base}/bm")["cached"] is False and len(seen) == 2


@pytest.mark.parametrize(
    "name, data, match",
    [
        ("page.html", b"<html><body>Sign in to the proxy</body></html>" * 10, "is an HTML page"),
        ("x86", elf(machine=62), "not a 64-bit ARM"),
    ],
)
def test_what_is_not_an_aarch64_binary_is_refused_and_not_cached(http_files, name, data, match):
    base, root, _ = http_files
    serve(root, name, data)
    with pytest.raises(ToolFetchError, match=match):
        tool_fetch.fetch("tflite-benchmark", url=f"{base}/{name}")
    assert tool_fetch.cached("tflite-benchmark") is None
    assert [p.name for p in tool_fetch.tool_dir("tflite-benchmark").iterdir()] == []


def test_http_errors_and_no_network_are_one_sentence(http_files):
    base, _, _ = http_files
    with pytest.raises(ToolFetchError, match="answered HTTP 404"):
        tool_fetch.fetch("tflite-benchmark", url=f"{base}/missing")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with pytest.raises(ToolFetchError, match="cannot download benchmark_model .* check the network"):
        tool_fetch.fetch("tflite-benchmark", url=f"http://127.0.0.1:{dead}/bm", timeout=5)


def test_auto_without_a_fetched_binary_says_how_to_fetch():
    with pytest.raises(ToolFetchError, match="run mobileseg tools fetch tflite-benchmark"):
        tool_fetch.cached_binary("tflite-benchmark")
    with pytest.raises(ToolFetchError, match="unknown tool 'ort-perf-test'.*build it from source"):
        tool_fetch.fetch("ort-perf-test")


def test_the_cli(http_files, capsys):
    base, root, _ = http_files
    data = elf()
    serve(root, "bm", data)
    assert main(["tools", "path", "tflite-benchmark"]) == 1
    assert "run mobileseg tools fetch tflite-benchmark" in capsys.readouterr().err
    assert main(["tools", "fetch", "tflite-benchmark", "--url", f"{base}/bm"]) == 0
    out = capsys.readouterr().out
    assert "benchmark_model nightly-2026-01-01 downloaded" in out and hashlib.sha256(data).hexdigest() in out
    assert main(["tools", "fetch", "tflite-benchmark", "--url", f"{base}/bm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True
    assert main(["tools", "path", "tflite-benchmark"]) == 0
    assert capsys.readouterr().out.strip().endswith("tools/tflite-benchmark/benchmark_model")
    assert main(["tools", "fetch", "tflite-benchmark", "--url", f"{base}/nope", "--force"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobileseg: error: cannot download benchmark_model") and err.count("\n") == 1
