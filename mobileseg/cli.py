"""The ``mobileseg`` command: a thin layer over the Python API.

Each sub-command lives in its own module under :mod:`mobileseg.commands` and exposes ``register(subparsers)``; the
module must import heavy packages (torch, converters, runtimes) inside its run function so that ``mobileseg --help``
stays fast. Errors a user can cause are :class:`~mobileseg.errors.MobilesegError`: printed as one sentence, exit 2.
"""
from __future__ import annotations

import argparse
import sys
from importlib import import_module

COMMANDS = ["models", "info", "export", "bench", "results", "report", "eval", "emulator", "harness"]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="mobileseg",
        description="Deploy and benchmark mobile semantic-segmentation models: export, bench, parity, report.")
    parser.add_argument("--version", action="version", version=f"mobileseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = import_module(f"mobileseg.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mobileseg.commands.{name}":
                continue  # command not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .errors import MobilesegError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        rc = args.func(args)
    except MobilesegError as exc:
        print(f"mobileseg: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mobileseg: interrupted (finished results were kept)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
