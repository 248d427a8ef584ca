"""``mobileseg harness``: build the native ncnn harness for phones without Python, or print where it is."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("harness", help="build the native ncnn harness (phones without Python) or print its path")
    hs = p.add_subparsers(dest="harness_command", metavar="ACTION")
    for name, help_ in (
        ("build", "build it (cached: instant when nothing changed)"),
        ("path", "print the path of the built harness (exit 1 if not built)"),
    ):
        a = hs.add_parser(name, help=help_)
        a.add_argument(
            "--ndk",
            default=None,
            help="Android NDK folder (default: $ANDROID_NDK_HOME; without one Debian's static "
            "aarch64-linux-gnu cross compiler is used)",
        )
        a.add_argument(
            "--toolchain",
            default="auto",
            choices=["auto", "android-arm64", "aarch64-linux-gnu", "host"],
            help="auto: the NDK when given, else aarch64-linux-gnu; host: this machine (for tests)",
        )
        a.add_argument(
            "--vulkan",
            action="store_true",
            help="the Vulkan variant (ncnn-vulkan on a phone's GPU, loading its libvulkan.so at run time): "
            "needs the NDK (--ndk), as a static glibc binary cannot load bionic's libvulkan",
        )
        a.add_argument("--json", action="store_true")
        if name == "build":
            a.add_argument("--jobs", "-j", type=int, default=2, help="parallel compile jobs (default 2)")
    p.set_defaults(func=run, harness_parser=p)


def run(args) -> int:
    from ..device.native_build import build_harness, harness_path

    action = getattr(args, "harness_command", None)
    if action is None:
        args.harness_parser.print_help()
        return 1
    if action == "path":
        path = harness_path(args.toolchain, args.ndk, vulkan=args.vulkan)
        if path is None:
            print(
                "mobileseg: the native harness is not built for this ncnn version and toolchain: run "
                f"`mobileseg harness build{' --vulkan' if args.vulkan else ''}`",
                file=sys.stderr,
            )
            return 1
        print(json.dumps({"path": str(path)}) if args.json else path)
        return 0
    if args.jobs < 1:
        from ..errors import MobilesegError

        raise MobilesegError("--jobs must be at least 1")
    res = build_harness(
        args.toolchain,
        args.ndk,
        jobs=args.jobs,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        vulkan=args.vulkan,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(res.path),
                    "toolchain": res.toolchain,
                    "ncnn_version": res.ncnn_version,
                    "key": res.key,
                    "cached": res.cached,
                    "seconds": round(res.seconds, 3),
                    "ncnn_lib_seconds": res.ncnn_lib_seconds,
                }
            )
        )
    else:
        how = "cached" if res.cached else f"built in {res.seconds:.1f} s"
        print(f"{res.path}  (ncnn {res.ncnn_version}, {res.toolchain}, {how})")
    return 0
