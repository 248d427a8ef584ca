"""The project explains itself: no tracked file points at a document outside the repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# spelled in pieces so this file does not name them itself
OUTSIDE = ["DESIGN" + ".md", "REFERENCE" + ".md", "../" + "shared", "/work/" + "shared"]


@pytest.mark.skipif(not (shutil.which("git") and (ROOT / ".git").exists()), reason="not a git checkout")
def test_no_file_names_a_document_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".bin", ".npy"}:
            continue
        text = path.read_text(errors="ignore")
        hits += [f"{name}: {word}" for word in OUTSIDE if word in text]
    assert not hits, hits


def test_the_docs_the_code_cites_exist():
    for doc in ("ARCHITECTURE.md", "converters.md", "adb.md", "models.md", "measurement.md"):
        assert (ROOT / "docs" / doc).is_file(), doc
