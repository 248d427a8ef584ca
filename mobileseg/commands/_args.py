"""The one command-line vocabulary, shared by every sub-command.

* ``--out``: where the command writes (a folder; ``eval`` appends ``eval.jsonl`` in it).
* ``--export-dir``: the folder that holds export folders (read and written; default ``export/``).
* Lists (``--models``, ``--res``, ``--runtimes``, ``--formats``, ``--precisions``, ``--graphs``, ``--devices``) take
  values separated by spaces or commas, and may be repeated; a singular name (``--runtime``, ``--format``,
  ``--precision``) takes exactly one value.
* ``--quiet``/``-q``: no progress lines.
* ``--harness`` / ``--adb-transport``: what runs the cells on an ADB device and how it is reached (one choice list).
* ``--allow-edited``: run artifact files whose bytes differ from their manifest's sha256 (edited on purpose).

Old spellings stay as hidden aliases (``--export-root``, ``--no-progress``, ``report --runtime/--device``,
``bench --precision/--graph``) so scripts keep working; ``--help`` shows only the names above.
"""

from __future__ import annotations

import argparse


def split_list(values) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``; None or empty -> None."""
    if not values:
        return None
    out = []
    for v in values if isinstance(values, (list, tuple)) else [values]:
        out += [p for p in str(v).replace(",", " ").split() if p]
    return out or None


def add_list(p, name: str, help: str, aliases=(), **kw) -> None:
    """A list option (``--name a b`` or ``--name a,b``, repeatable); ``aliases``: hidden old spellings."""
    dest = name.lstrip("-").replace("-", "_")
    p.add_argument(name, nargs="+", action="extend", dest=dest, help=help, **kw)
    for alias in aliases:
        p.add_argument(alias, nargs="+", action="extend", dest=dest, help=argparse.SUPPRESS)


def add_quiet(p, aliases=()) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    for alias in aliases:
        p.add_argument(alias, action="store_true", dest="quiet", help=argparse.SUPPRESS)


def add_export_dir(p, default: str = "export", aliases=()) -> None:
    p.add_argument(
        "--export-dir",
        default=default,
        help=f"folder holding the export folders (artifacts are reused; default {default}/)",
    )
    for alias in aliases:
        p.add_argument(alias, dest="export_dir", help=argparse.SUPPRESS)


def add_allow_edited(p) -> None:
    """``--allow-edited``: commands that load an export's files check them against the manifest's sha256 first
    (:func:`mobileseg.manifest.verify_files`); this runs a file edited on purpose as it is (cli.main sets
    ``MOBILESEG_ALLOW_EDITED``, so device and child-process paths see it too)."""
    p.add_argument(
        "--allow-edited",
        action="store_true",
        help="run artifact files that differ from their manifest's sha256 (edited on purpose) as they are",
    )


HARNESSES = ("auto", "python", "native")
ADB_TRANSPORTS = ("auto", "server", "direct")  # mobileseg.device.selection.TRANSPORTS


def add_harness(p, help: str) -> None:
    """``--harness auto|python|native`` (the device harness; bench, choose and parity)."""
    p.add_argument("--harness", choices=HARNESSES, default="auto", help=help)


def add_adb_transport(p, help: str) -> None:
    """``--adb-transport auto|server|direct`` (bench, choose and parity)."""
    p.add_argument("--adb-transport", choices=ADB_TRANSPORTS, default="auto", help=help)
