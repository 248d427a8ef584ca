"""``mobileseg tools fetch|path NAME``: the official prebuilt benchmark binaries, downloaded into the cache."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    from ..device.tool_fetch import TOOLS

    p = sub.add_parser("tools", help="fetch the official prebuilt benchmark binaries (TFLite benchmark_model)")
    ts = p.add_subparsers(dest="tools_command", metavar="ACTION")
    f = ts.add_parser("fetch", help="download one into the cache and record its sha256 and version")
    f.add_argument("name", choices=sorted(TOOLS), help="tflite-benchmark: Android aarch64 benchmark_model (nightly)")
    f.add_argument(
        "--url",
        default=None,
        help="download from here instead (default: $MOBILESEG_TFLITE_BENCHMARK_URL or the official URL)",
    )
    f.add_argument("--force", action="store_true", help="download again even if the cached copy is intact")
    f.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    f.add_argument("--json", action="store_true")
    pa = ts.add_parser("path", help="print the path of the cached binary (exit 1 if not fetched)")
    pa.add_argument("name", choices=sorted(TOOLS))
    pa.add_argument("--json", action="store_true")
    p.set_defaults(func=run, tools_parser=p)


def run(args) -> int:
    from ..device import tool_fetch

    action = getattr(args, "tools_command", None)
    if action is None:
        args.tools_parser.print_help()
        return 1
    if action == "path":
        info = tool_fetch.cached(args.name)
        if info is None:
            print(f"mobileseg: {args.name} is not fetched: run mobileseg tools fetch {args.name}", file=sys.stderr)
            return 1
        print(json.dumps(info, indent=2) if args.json else info["path"])
        return 0
    show = sys.stderr.isatty() and not args.json

    def progress(done, total):
        if show:
            of = f" of {total / 1e6:.1f}" if total else ""
            print(f"\r  downloading: {done / 1e6:.1f}{of} MB", end="", file=sys.stderr, flush=True)

    try:
        info = tool_fetch.fetch(args.name, url=args.url, force=args.force, timeout=args.timeout, progress=progress)
    finally:
        if show:
            print(file=sys.stderr)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        state = "already in the cache" if info.get("cached") else "downloaded"
        print(f"{info['tool']} {info.get('version', '')} {state}: {info['path']}")
        print(f"  sha256 {info['sha256']}  ({info['bytes'] / 1e6:.1f} MB from {info['url']})")
        if args.name == "tflite-benchmark":
            print("  use it with: mobileseg bench --device adb --runtimes litert --tflite-benchmark auto")
    return 0
