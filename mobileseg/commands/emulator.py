"""``mobileseg emulator build|start|stop|status``: the emulated ARM64 device (arm64 rootfs under qemu + a Python adbd).

Timings taken on it are emulated (hundreds of times slower than a phone): they prove the ARM kernels compute the
right numbers, never how fast a phone is. Records taken on it are marked ``emulated``.
"""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("emulator", help="build, start and stop the emulated ARM64 device (ADB over TCP)")
    esub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = esub.add_parser("build", help="build the arm64 rootfs with Python and the runtimes (cached, ~1 minute)")
    b.add_argument("--force", action="store_true", help="rebuild even if the recipe did not change")
    b.add_argument("--mirror", default=None, help="Debian mirror (default: the host's)")
    s = esub.add_parser("start", help="start the emulated device's adbd on 127.0.0.1")
    s.add_argument("--port", type=int, default=None, help="TCP port (default 5560; 0 picks a free one)")
    s.add_argument("--adb-keys", default=None, help="adb_keys file of authorised keys (default: in the cache)")
    s.add_argument("--refuse-new-keys", action="store_true",
                   help="act like a phone whose 'Allow USB debugging?' prompt is never accepted")
    esub.add_parser("stop", help="stop the emulated device")
    st = esub.add_parser("status", help="what is built and running")
    st.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..emulator import build, control

    if args.action == "build":
        res = build.build(force=args.force, mirror=args.mirror)
        print(f"rootfs: {res['rootfs']} ({(res['bytes'] or 0) / 1e6:.0f} MB, recipe {res['hash']}, "
              f"build {res['build_seconds']} s)")
        return 0
    if args.action == "start":
        st = control.start(port=control.DEFAULT_PORT if args.port is None else args.port, adb_keys=args.adb_keys,
                           refuse_new_keys=args.refuse_new_keys)
        print(f"emulated ARM64 device running (pid {st['pid']}): --device {st['device']}")
        print(f"  adb client: adb connect 127.0.0.1:{st['port']}   log: {st['log']}")
        return 0
    if args.action == "stop":
        print("emulated device stopped" if control.stop() else "the emulated device was not running")
        return 0
    st = control.status()
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    b = st["build"]
    print(f"rootfs: {b['rootfs']}: " + ("not built (mobileseg emulator build)" if not b["built"] else
                                        f"built, {'current' if b['current'] else 'OUTDATED (rebuild)'}, "
                                        f"{(b['bytes'] or 0) / 1e6:.0f} MB, recipe {b['hash']}"))
    print(f"adbd: running on port {st['port']} (pid {st['pid']}), --device {st['device']}" if st["running"]
          else "adbd: not running (mobileseg emulator start)")
    return 0
