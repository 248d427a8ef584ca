"""``mobileseg emulator build|start|stop|status``: emulated ARM64 devices (arm64 rootfs under qemu + a Python adbd).

Two profiles: ``debian`` (default: Python and the runtimes, for the Python harness) and ``android`` (a stock phone:
no Python, busybox /system/bin/sh, getprop, a 4+3+1 big.LITTLE topology; the native harness). Several devices can
run at once, one per port.

Timings taken on them are emulated (hundreds of times slower than a phone): they prove the ARM kernels compute the
right numbers, never how fast a phone is. Records taken on them are marked ``emulated``.
"""

from __future__ import annotations

import json

from ..errors import MobilesegError

PROFILE_HELP = "debian (default: Python + runtimes) or android (stock phone: no Python, native harness)"


def register(sub) -> None:
    p = sub.add_parser("emulator", help="build, start and stop emulated ARM64 devices (ADB over TCP)")
    esub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = esub.add_parser("build", help="build a profile's arm64 rootfs (cached; debian ~1 minute, android seconds)")
    b.add_argument("--profile", default=None, help=PROFILE_HELP)
    b.add_argument("--force", action="store_true", help="rebuild even if the recipe did not change")
    b.add_argument("--mirror", default=None, help="Debian mirror (default: the host's)")
    b.add_argument(
        "--vulkan",
        action="store_true",
        help="opt-in: the debian rootfs plus arm64 lavapipe (Mesa's CPU Vulkan) for ncnn-vulkan, a separate "
        "cached rootfs (a few minutes)",
    )
    s = esub.add_parser("start", help="start an emulated device's adbd on 127.0.0.1 (one per port)")
    s.add_argument("--profile", default=None, help=PROFILE_HELP)
    s.add_argument("--port", type=int, default=None, help="TCP port (default 5560; 0 picks a free one)")
    s.add_argument("--adb-keys", default=None, help="adb_keys file of authorised keys (default: in the cache)")
    s.add_argument(
        "--refuse-new-keys",
        action="store_true",
        help="act like a phone whose 'Allow USB debugging?' prompt is never accepted",
    )
    s.add_argument(
        "--host-proc",
        action="store_true",
        help="show the kernel's /proc inside (keeping the device's cpuinfo): memory figures in records",
    )
    s.add_argument(
        "--thermal-sim",
        metavar="SPEC",
        default=None,
        help="heat with load and throttle past a trip temperature, to test --sustained (SPEC: default, "
        "or rise=,tau=,trip=,drop=,floor=,period=; docs/measurement.md)",
    )
    s.add_argument(
        "--vulkan",
        action="store_true",
        help="the debian device with lavapipe (built by emulator build --vulkan); VK_ICD_FILENAMES is set",
    )
    mode = s.add_mutually_exclusive_group()
    mode.add_argument(
        "--refuse-auth",
        action="store_true",
        help="refuse every key, known ones too: `adb devices` lists it as unauthorized",
    )
    mode.add_argument(
        "--offline",
        action="store_true",
        help="accept connections but never answer them: `adb devices` lists it as offline",
    )
    t = esub.add_parser("stop", help="stop emulated devices (the only one running, --port N or --all)")
    which = t.add_mutually_exclusive_group()
    which.add_argument("--port", type=int, default=None, help="the device on this port")
    which.add_argument("--all", action="store_true", help="every emulated device started by `emulator start`")
    st = esub.add_parser("status", help="what is built and which devices are running")
    st.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _mb(n) -> str:
    return f"{(n or 0) / 1e6:.1f} MB"


def run(args) -> int:
    from ..emulator import build, control

    if args.action == "build":
        if args.vulkan:
            from ..emulator import vulkan

            if args.profile not in (None, build.profiles.DEFAULT):
                raise MobilesegError(f"--vulkan is a variant of the debian profile, not of {args.profile}")
            res = vulkan.build_rootfs(force=args.force, mirror=args.mirror)
        else:
            res = build.build(force=args.force, mirror=args.mirror, profile=args.profile)
        print(
            f"rootfs ({res['profile']}): {res['rootfs']} ({_mb(res['bytes'])}, recipe {res['hash']}, "
            f"build {res['build_seconds']} s)"
        )
        return 0
    if args.action == "start":
        d = control.start(
            port=control.DEFAULT_PORT if args.port is None else args.port,
            adb_keys=args.adb_keys,
            refuse_new_keys=args.refuse_new_keys,
            profile=args.profile,
            refuse_auth=args.refuse_auth,
            offline=args.offline,
            vulkan=args.vulkan,
            extra_args=[
                *(["--host-proc"] if args.host_proc else []),
                *(["--thermal-sim", args.thermal_sim] if args.thermal_sim else []),
            ],
        )
        mode = "" if d["mode"] == "normal" else f", {d['mode']}"
        print(f"emulated {d['profile']} device running (pid {d['pid']}{mode}): --device {d['device']}")
        print(f"  adb client: adb connect 127.0.0.1:{d['port']}   log: {d['log']}")
        return 0
    if args.action == "stop":
        ports = control.stop(port=args.port, all_=args.all)
        if ports:
            print("stopped the emulated device(s) on port " + ", ".join(map(str, ports)))
        else:
            print("no emulated device was running" + (f" on port {args.port}" if args.port is not None else ""))
        return 0
    st = control.status()
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    for name, b in st["build"].items():
        print(
            f"rootfs {name}: "
            + (
                "not built (mobileseg emulator build --profile " + name + ")"
                if not b["built"]
                else f"built, {'current' if b['current'] else 'OUTDATED (rebuild)'}, "
                f"{_mb(b['bytes'])}, recipe {b['hash']}, {b['rootfs']}"
            )
        )
    v = st["vulkan"]
    print(
        f"rootfs {v['profile']} (opt-in): "
        + (
            "not built (mobileseg emulator build --vulkan)"
            if not v["built"]
            else f"built, {'current' if v['current'] else 'OUTDATED (rebuild)'}, "
            f"{_mb(v['bytes'])}, recipe {v['hash']}, {v['rootfs']}"
        )
    )
    for d in st["devices"]:
        mode = "" if d.get("mode", "normal") == "normal" else f", {d['mode']}"
        print(
            f"running: {d.get('profile') or 'host'} on port {d['port']} (pid {d['pid']}{mode}), --device {d['device']}"
        )
    if not st["devices"]:
        print("running: none (mobileseg emulator start [--profile android] [--port N])")
    return 0
