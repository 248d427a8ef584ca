"""Measurement: several emulated devices in one command, told apart; and a lab of two adb servers.

    python -m mobileseg.perf.device_fleet [--models topformer-t] [--res 64] [--repeats 10] [--out DIR]

1. ``throttled``: two emulated debian devices in one private adb server, one of them with ``--thermal-sim`` past its
   trip from the start (its clock, and its CPU quota, at ``floor`` of the maximum), benched with one ``--device adb:A,B`` command: each
   device's record must show its own speed and frequencies (``<out>/fleet-throttled/``).
   The runs are those of ``mobileseg bench --device ...`` (:mod:`mobileseg.bench.fleet`), called directly.
2. ``lab``: two private adb servers on two loopback ports, each holding one emulated device, benched with one
   ``--device adb@lab1,adb@lab2 --adb-server lab1=... lab2=...`` command: two results files, each record naming its
   server (``<out>/lab-two-servers/``).

The folders of this run (temporary export and adb homes) are written as ``.`` in the records, so they name no path of
this machine. Emulated timings: what they show is which device measured what, not a phone's speed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from ..results.paths import RUNS_DIR

THROTTLE = "trip=30,drop=0.1,floor=0.15"  # idle is 41 C: past the trip at once, its CPU quota at 15%


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _adb(env: dict, *args: str) -> str:
    return subprocess.run(["adb", *args], env=env, capture_output=True, text=True, timeout=60).stdout


def _server(home: Path) -> tuple[dict, int]:
    port = _free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "ANDROID_ADB_SERVER_PORT": str(port),
        "ADB_LOCAL_TRANSPORT_MAX_PORT": "5000",
    }
    env.pop("ADB_SERVER_SOCKET", None)
    env.pop("ANDROID_ADB_SERVER_ADDRESS", None)
    _adb(env, "start-server")
    return env, port


def _connect(env: dict, serial: str) -> None:
    import time

    _adb(env, "connect", serial)
    for _ in range(300):
        if f"{serial}\tdevice" in _adb(env, "devices"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{serial} did not come up in the adb server: {_adb(env, 'devices')}")


def _scrub(folder: Path, roots) -> None:
    """Write the run's temporary folders as ``.`` in its records."""
    for path in folder.glob("*.jsonl"):
        text = path.read_text()
        for root in roots:
            text = text.replace(str(root), ".")
        path.write_text(text)


def _summary(folder: Path) -> None:
    from ..results.store import read_records
    from ..results.table import row

    for path in sorted(folder.glob("*.jsonl")):
        for rec in read_records([path])[0]:
            r = row(rec)
            dev = rec["device"]
            freqs = (rec.get("device_state") or {}).get("before", {}).get("freqs_khz") or {}
            pinned = freqs.get(str(dev.get("pinned_cpu")))
            print(
                f"  {path.name}: {dev['serial']} via {dev.get('adb', {}).get('adb_server')} "
                f"{r['runtime']} median {r['latency_ms']:.2f} ms (p10 {r['p10_ms']:.2f}, p90 {r['p90_ms']:.2f}, "
                f"n={r['count']}), pinned CPU at {pinned} kHz, mark {dev.get('mark')}, {rec['status']}",
                flush=True,
            )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mobileseg.perf.device_fleet")
    ap.add_argument("--models", default="topformer-t")
    ap.add_argument("--res", default="64")
    ap.add_argument("--runtime", default="ncnn")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default=RUNS_DIR)
    ap.add_argument("--only", choices=["throttled", "lab"], default=None)
    args = ap.parse_args(argv)
    if not shutil.which("adb"):
        print("device_fleet needs Debian's adb (apt-get install adb)", file=sys.stderr)
        return 2
    from ..device.native_build import cache_root
    from ..emulator import build, control

    os.environ["MOBILESEG_CACHE"] = str(cache_root())  # the builds stay where they are when HOME moves

    tmp = Path(tempfile.mkdtemp(prefix="mobileseg-fleet-"))
    export = tmp / "export"

    def bench(device_arg: str, out: Path, servers=None) -> int:
        """What ``mobileseg bench --device ARG [--adb-server ...]`` runs for several devices."""
        from ..bench.fleet import run_on_devices
        from ..bench.targets.adb import AdbTarget
        from ..device.selection import open_devices

        devices, notes = open_devices(device_arg, transport="server", servers=servers)
        for n in notes:
            print(f"  note: {n}", flush=True)
        outcomes = run_on_devices(
            AdbTarget.on_device,
            devices,
            threads=1,
            out_dir=out,
            progress=False,
            models=[args.models],
            resolutions=[args.res],
            runtimes=[args.runtime],
            warmup=2,
            repeats=args.repeats,
            export_root=export,
            measure_reference=False,
        )
        for o in outcomes:
            print(f"  {o.summary()}", flush=True)
        return int(not all(o.ok and all(r["status"] == "ok" for r in o.run) for o in outcomes))

    procs, envs, rc = [], [], 0

    def device(extra=None) -> str:
        proc, port = control.launch(
            rootfs=str(build.rootfs_dir()), extra_args=extra, log_path=str(tmp / f"emu{len(procs)}.log")
        )
        procs.append(proc)
        return f"127.0.0.1:{port}"

    try:
        if args.only in (None, "throttled"):
            (tmp / "home1/.android").mkdir(parents=True)
            env, _port = _server(tmp / "home1")
            envs.append(env)
            a, b = device(), device(["--thermal-sim", THROTTLE])
            for s in (a, b):
                _connect(env, s)
            os.environ.update({k: env[k] for k in ("HOME", "ANDROID_ADB_SERVER_PORT")})
            out = Path(args.out) / "fleet-throttled"
            print(f"throttled: {a} (normal) and {b} (--thermal-sim {THROTTLE}), one command", flush=True)
            rc |= bench(f"adb:{a},{b}", out)
            _scrub(out, [export, tmp])
            _summary(out)
        if args.only in (None, "lab"):
            servers = []
            for i in (2, 3):
                (tmp / f"home{i}/.android").mkdir(parents=True)
                env, port = _server(tmp / f"home{i}")
                envs.append(env)
                serial = device()
                _connect(env, serial)
                servers.append((f"lab{i - 1}", port, serial))
            out = Path(args.out) / "lab-two-servers"
            decl = [f"{name}=127.0.0.1:{port}" for name, port, _ in servers]
            print(f"lab: {', '.join(f'{s} on {n} (127.0.0.1:{p})' for n, p, s in servers)}, one command", flush=True)
            rc |= bench(",".join(f"adb@{n}" for n, _, _ in servers), out, servers=decl)
            _scrub(out, [export, tmp])
            _summary(out)
    finally:
        for proc in procs:
            control.terminate(proc)
        for env in envs:
            _adb(env, "kill-server")
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
