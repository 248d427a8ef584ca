"""The export manifest (contract 2): the only reader and writer of ``manifest.json``.

An export folder holds ``manifest.json``, one artifact per format (file names: :mod:`mobileseg.formats`) and
``reference/input.npy`` + ``reference/output.npy``. Export writes the manifest with :func:`write` (atomically); the
runtimes, the bench, the ADB target and eval read it with :func:`load` / :func:`read` and find a format's files
with :func:`artifact_paths`. Numpy-free and torch-free: it is read where only a runtime is installed.
"""

from __future__ import annotations

import json
import os
import re

from .errors import MobilesegError
from .hashing import sha256_file

SCHEMA_VERSION = 1
FILE = "manifest.json"
REFERENCE_INPUT = "reference/input.npy"
REFERENCE_OUTPUT = "reference/output.npy"


# A user who edited an artifact on purpose (to debug it) runs it as it is with --allow-edited, which sets this.
ALLOW_EDITED_ENV = "MOBILESEG_ALLOW_EDITED"


class ArtifactError(MobilesegError):
    """An export folder or manifest is missing, incomplete, or lacks the requested format."""


class EditedArtifactError(ArtifactError):
    """An artifact file's bytes differ from the sha256 its manifest recorded (damaged, or edited by hand)."""


def export_dir_name(model: str, resolution, precision: str = "fp32", graph: str = "logits") -> str:
    """``<model>_<H>x<W>[_<precision>][_<graph>]`` (fp32 and logits keep the short name)."""
    h, w = resolution
    # a user's factory (pkg.mod:fn) or an artifact name: only characters safe in a folder name on every system
    name = f"{re.sub(r'[^A-Za-z0-9._-]+', '-', model)}_{h}x{w}"
    if precision != "fp32":
        name += f"_{precision}"
    if graph != "logits":
        name += f"_{graph}"
    return name


def read(export_dir) -> dict | None:
    """The manifest in ``export_dir``, or None when there is none or it cannot be read (e.g. before an export)."""
    try:
        with open(os.path.join(os.fspath(export_dir), FILE)) as f:
            man = json.load(f)
    except (OSError, ValueError):
        return None
    return man if isinstance(man, dict) else None


def write(export_dir, manifest: dict) -> None:
    """Write ``manifest.json`` atomically (a reader never sees half a manifest)."""
    export_dir = os.fspath(export_dir)
    tmp = os.path.join(export_dir, FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump({k: v for k, v in manifest.items() if not k.startswith("_")}, f, indent=2)
    os.replace(tmp, os.path.join(export_dir, FILE))


def load(export_dir_or_manifest) -> tuple[str, dict]:
    """``(export_dir, manifest)`` from an export folder, a ``manifest.json`` path, or an already-read manifest dict.

    A dict must carry ``_dir`` (the folder its file paths are relative to) or paths must be absolute. A missing or
    unreadable manifest is an :class:`ArtifactError` saying what to run.
    """
    if isinstance(export_dir_or_manifest, dict):
        man = export_dir_or_manifest
        return man.get("_dir", ""), man
    path = os.fspath(export_dir_or_manifest)
    if os.path.isdir(path):
        path = os.path.join(path, FILE)
    if not os.path.isfile(path):
        raise ArtifactError(f"no export manifest at {path}: run `mobileseg export` first (or pass the export folder)")
    try:
        with open(path) as f:
            man = json.load(f)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path} ({exc}): re-run `mobileseg export --force`") from None
    if not isinstance(man, dict):
        raise ArtifactError(
            f"{path} holds a JSON {type(man).__name__}, not the object an export manifest is: "
            "re-run `mobileseg export --force` into that folder"
        )
    return os.path.dirname(os.path.abspath(path)), man


def format_entry(manifest: dict, fmt: str) -> dict | None:
    return (manifest.get("formats") or {}).get(fmt)


def ok_formats(manifest: dict | None) -> set[str]:
    """Formats whose entry passed (what a later export into the same folder keeps)."""
    return {f for f, e in ((manifest or {}).get("formats") or {}).items() if e and e.get("ok")}


def relative_files(entry: dict | None) -> list[str]:
    """The artifact file paths of a format entry, relative to the export folder."""
    return [f["path"] if isinstance(f, dict) else f for f in (entry or {}).get("files") or []]


def artifact_paths(export_dir_or_manifest, fmt_entry, fmt: str) -> tuple[str, dict, dict, list[str]]:
    """``(export_dir, manifest, fmt_entry, [absolute file paths])`` for format ``fmt``; every file must exist.

    ``fmt_entry`` may be None (take the manifest's entry for ``fmt``) or a format entry of the manifest.
    """
    export_dir, man = load(export_dir_or_manifest)
    if fmt_entry is None:
        fmt_entry = format_entry(man, fmt)
        if fmt_entry is None:
            raise ArtifactError(
                f"the export in {export_dir or '?'} has no {fmt} artifact: re-run `mobileseg export --formats {fmt}`"
            )
    if fmt_entry.get("ok") is False and not fmt_entry.get("files"):
        raise ArtifactError(f"the {fmt} export failed ({fmt_entry.get('error')}); nothing to load")
    paths = []
    for p in relative_files(fmt_entry):
        p = p if os.path.isabs(p) else os.path.join(export_dir, p)
        if not os.path.isfile(p):
            raise ArtifactError(f"artifact file missing: {p}: re-run `mobileseg export --force`")
        paths.append(p)
    verify_files(export_dir, man, fmt_entry, fmt)
    return export_dir, man, fmt_entry, paths


_VERIFIED: dict = {}  # (path, size, mtime_ns) -> sha256: a bench loads one file once per cell, hashed once


def rebuild_command(export_dir: str, man: dict, fmt: str) -> str:
    """The ``mobileseg export`` command that writes ``fmt`` into ``export_dir`` again."""
    if man.get("source") == "artifact":  # a staged file of another tool: bench stages it again
        return f"`mobileseg bench --artifact {(man.get('artifact') or {}).get('path')}`"
    res = "x".join(map(str, man.get("resolution") or []))
    parts = [
        f"--model {man.get('model')}",
        f"--res {res}" if res else "",
        f"--formats {fmt}",
        f"--precision {man['precision']}" if man.get("precision", "fp32") != "fp32" else "",
        f"--graph {man['graph']}" if man.get("graph", "logits") != "logits" else "",
        f"--out {export_dir}",
    ]
    return "`mobileseg export " + " ".join(p for p in parts if p) + " --force`"


def verify_files(export_dir: str, man: dict, fmt_entry: dict, fmt: str) -> None:
    """Check every file of ``fmt_entry`` against the sha256 its manifest recorded, before a runtime reads it (a
    damaged file would end in the runtime's own traceback). :class:`EditedArtifactError` names the file; with
    ``MOBILESEG_ALLOW_EDITED=1`` (``--allow-edited``) an edited file is run as it is, and so is one whose record
    says it was edited on purpose (``edited`` {sha256}: the faults of :mod:`mobileseg.numerics.inject`)."""
    if os.environ.get(ALLOW_EDITED_ENV, "") not in ("", "0"):
        return
    for f in (fmt_entry or {}).get("files") or []:
        if not isinstance(f, dict) or not f.get("sha256"):
            continue
        p = f["path"] if os.path.isabs(f["path"]) else os.path.join(export_dir, f["path"])
        try:
            st = os.stat(p)
        except OSError:
            continue  # a missing file is artifact_paths' sentence (or the push's)
        key = (os.path.abspath(p), st.st_size, st.st_mtime_ns)
        if key not in _VERIFIED:
            _VERIFIED[key] = sha256_file(p)
        if _VERIFIED[key] not in (f["sha256"], (f.get("edited") or {}).get("sha256")):  # edited: said so
            raise EditedArtifactError(
                f"{p} differs from its manifest (sha256 {_VERIFIED[key][:12]}, recorded {f['sha256'][:12]}): it is "
                f"damaged or was edited; {rebuild_command(export_dir, man, fmt)} rebuilds it, or pass "
                "--allow-edited to run the file as it is"
            )


def file_record(path: str, export_dir: str) -> dict:
    """A manifest ``files`` item: path relative to the folder, size and sha256."""
    return {"path": os.path.relpath(path, export_dir), "bytes": os.path.getsize(path), "sha256": sha256_file(path)}


def intact_entry(export_dir: str, old: dict | None, fmt: str, key: str) -> dict | None:
    """The old manifest's entry for ``fmt`` when it passed, its cache key matches and every file is unchanged."""
    entry = format_entry(old or {}, fmt)
    if not entry or entry.get("cache_key") != key or not entry.get("ok"):
        return None
    for f in entry.get("files", []):
        p = os.path.join(export_dir, f["path"])
        if not os.path.isfile(p) or os.path.getsize(p) != f["bytes"] or sha256_file(p) != f["sha256"]:
            return None
    return entry
