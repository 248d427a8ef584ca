"""The ``mobileseg`` command: a thin layer over the Python API.

Each sub-command lives in its own module under :mod:`mobileseg.commands` and exposes ``register(subparsers)``; the
module must import heavy packages (torch, converters, runtimes) inside its run function so that ``mobileseg --help``
stays fast. Errors a user can cause are :class:`~mobileseg.errors.MobilesegError`: printed as one sentence, exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from importlib import import_module

COMMANDS = [
    "models",
    "info",
    "export",
    "parity",
    "bench",
    "results",
    "compare",
    "report",
    "eval",
    "emulator",
    "harness",
    "choose",
    "tools",
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="mobileseg",
        description="Deploy and benchmark mobile semantic-segmentation models: export, bench, parity, report.",
    )
    parser.add_argument("--version", action="version", version=f"mobileseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        import_module(f"mobileseg.commands.{name}").register(sub)
    return parser


@contextlib.contextmanager
def _allow_edited(on: bool):
    """``--allow-edited`` for this command only: the variable child processes and device paths read, restored after
    (a second ``main()`` in the same process, as the Python API and the tests call it, must check hashes again)."""
    from .manifest import ALLOW_EDITED_ENV

    before = os.environ.get(ALLOW_EDITED_ENV)
    if on:
        os.environ[ALLOW_EDITED_ENV] = "1"
    try:
        yield
    finally:
        if on:
            if before is None:
                os.environ.pop(ALLOW_EDITED_ENV, None)
            else:
                os.environ[ALLOW_EDITED_ENV] = before


def main(argv: list[str] | None = None) -> int:
    from .errors import MobilesegError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        with _allow_edited(getattr(args, "allow_edited", False)):
            rc = args.func(args)
    except MobilesegError as exc:
        print(f"mobileseg: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mobileseg: interrupted (finished results were kept)", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as exc:
        message = out_of_memory_message(exc)
        if message is None:
            raise
        print(f"mobileseg: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    return int(rc or 0)


def out_of_memory_message(exc: BaseException) -> str | None:
    """One sentence for an allocation the machine cannot hold (numpy's MemoryError, torch's CPU allocator
    RuntimeError), typically an input size such as ``--res 100000``; None for any other error. Linux refuses such an
    allocation at once when it exceeds the machine's memory, so this is caught before any work is lost."""
    import re

    text = str(exc)
    if not isinstance(exc, MemoryError) and "can't allocate memory" not in text:
        return None
    need = ""
    if m := re.search(r"allocate (\d+) bytes", text):  # torch
        need = f" ({int(m.group(1)) / 2**30:.1f} GiB at once)"
    elif m := re.search(r"allocate ([\d.]+) ?([KMGTP]i?B)", text):  # numpy: "223. GiB"
        need = f" ({float(m.group(1)):g} {m.group(2)} at once)"
    return (
        f"out of memory{need}: this machine cannot hold the tensors of that input size; use a smaller --res "
        "(or a smaller model)"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
