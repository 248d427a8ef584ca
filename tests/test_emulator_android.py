"""The emulated stock-Android phone (``--profile android``), several emulated devices at once, the fault modes.

Fast tests: the SoC-name table, the probe's cluster grouping and prime-core choice, the lock-file pins of the debian
profile, the files the android profile writes, the free-port check against TIME_WAIT, several daemons by port.
Slow tests (``emulator``): the android rootfs under proot + qemu-aarch64 (built here when missing: a few seconds),
Debian's real ``adb`` server listing refused and offline devices, and the native harness end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobileseg.device import probe
from mobileseg.device.soc_names import SOC_NAMES, soc_name
from mobileseg.emulator import build, control, device_files, profiles
from mobileseg.errors import MobilesegError

ANDROID = profiles.get("android")


# ------------------------------------------------------------------------------------------------ SoC names (fast)
@pytest.mark.parametrize(
    "raw, name",
    [
        ("SM8250", "Snapdragon 865"),
        ("kona", "Snapdragon 865"),
        ("SM8250-AB", "Snapdragon 865"),
        ("SM8650", "Snapdragon 8 Gen 3"),
        ("pineapple", "Snapdragon 8 Gen 3"),
        ("SM8750", "Snapdragon 8 Elite"),
        ("MT6985", "Dimensity 9200"),
        ("MT6985V/CD", "Dimensity 9200"),
        ("mt6989", "Dimensity 9300"),
        ("s5e9945", "Exynos 2400"),
        ("gs101", "Google Tensor"),
        ("zuma", "Google Tensor G3"),
    ],
)
def test_soc_ids_map_to_the_names_users_know(raw, name):
    assert soc_name(raw) == name


def test_unknown_soc_ids_are_kept_and_the_first_known_id_wins():
    assert soc_name("QX9000") is None and soc_name(None, "") is None
    assert soc_name("unknown-id", "kalama") == "Snapdragon 8 Gen 2"
    assert all(k == k.lower() for k in SOC_NAMES)  # lookups are lower case


def _probe_text(freqs: list, props: dict | None = None) -> str:
    getprop = "\n".join(f"[{k}]: [{v}]" for k, v in (props or {}).items())
    cpus = "\n".join(f"{i} {f if f else '-'} schedutil" for i, f in enumerate(freqs))
    return (
        f"@getprop\n{getprop}\n@uname\naarch64\n5.4.0\n@cpus\n{cpus}\n@cpuinfo\n@dtmodel\n\n@osrelease\n@df\n"
        "@python\n@tools\ntaskset\n@freqs\n@thermal\n@end\n"
    )


def test_probe_groups_4_3_1_clusters_and_pins_the_prime_core():
    d = probe.parse_probe(
        _probe_text([1804800] * 4 + [2419200] * 3 + [2841600], {"ro.soc.model": "SM8250", "ro.board.platform": "kona"})
    )
    assert [(c["cpus"], c["kind"]) for c in d["clusters"]] == [
        ([0, 1, 2, 3], "little"),
        ([4, 5, 6], "mid"),
        ([7], "prime"),
    ]
    assert d["pinned_cpu"] == 7 and d["pin_mask"] == "0x80" and "prime core" in d["pinned_reason"]
    assert d["big_core_mask"] == "0xf0"  # multi-thread cells: mid + prime, never the little cores
    assert d["soc"] == "Snapdragon 865" and d["soc_id"] == "SM8250"


def test_probe_without_a_prime_core_pins_the_last_big_cpu_and_keeps_an_unknown_soc_id():
    d = probe.parse_probe(_probe_text([1800000] * 4 + [2400000] * 4, {"ro.board.platform": "newchip77"}))
    assert [c["kind"] for c in d["clusters"]] == ["little", "big"]
    assert d["pinned_cpu"] == 7 and d["big_core_mask"] == "0xf0" and "last CPU of the fastest" in d["pinned_reason"]
    assert d["soc"] == "newchip77" == d["soc_id"]
    flat = probe.parse_probe(_probe_text([None, None]))
    assert flat["pinned_cpu"] == 1 and "no cpuinfo_max_freq" in flat["pinned_reason"]


# --------------------------------------------------------------------------------- debian runtime versions (fast)
def test_lock_file_pins_the_debian_profiles_runtimes_and_its_cache_key(tmp_path, monkeypatch):
    lock = tmp_path / "py3.11.txt"
    lock.write_text(
        "# generated\nnumpy==2.4.6\nonnxruntime==1.32.0 ; python_version >= '3.10'\nai_edge_litert==2.3.0  # LiteRT\n"
    )
    monkeypatch.setattr(build, "LOCK_FILE", lock)
    assert build.read_lock(lock) == {"numpy": "2.4.6", "onnxruntime": "1.32.0", "ai-edge-litert": "2.3.0"}
    wheels, source = build.runtime_wheels()
    assert "onnxruntime==1.32.0" in wheels and source["onnxruntime"] == "py3.11.txt"
    assert source["ncnn"] in ("host", "fallback pin")  # not in this lock: the host's version (or the fallback)
    before = build.recipe_hash(build.recipe("http://mirror", "debian"))
    lock.write_text("numpy==2.4.6\nonnxruntime==1.31.1\nai-edge-litert==2.3.0\n")
    assert build.recipe_hash(build.recipe("http://mirror", "debian")) != before  # a new pin rebuilds the rootfs


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP "Debian mirror" serving ``tmp_path/mirror``; yields its URL."""
    import functools
    import http.server
    import threading

    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_busybox_deb_falls_back_to_the_mirrors_index_when_the_pin_is_gone(mirror, tmp_path, monkeypatch):
    import hashlib
    import lzma

    monkeypatch.setenv("MOBILESEG_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "mirror"
    deb = b"not really a deb, but bytes with a sha256"
    (root / "pool/main/b/busybox").mkdir(parents=True)
    (root / "pool/main/b/busybox/busybox-static_9.9_arm64.deb").write_bytes(deb)
    index = root / f"dists/{build.SUITE}/main/binary-arm64"
    index.mkdir(parents=True)
    (index / "Packages.xz").write_bytes(
        lzma.compress(
            (
                "Package: busybox\nVersion: 1\nFilename: pool/x.deb\nSHA256: 00\n\n"
                "Package: busybox-static\nVersion: 1:9.9\nFilename: pool/main/b/busybox/busybox-static_9.9_arm64.deb\n"
                f"SHA256: {hashlib.sha256(deb).hexdigest()}\n"
            ).encode()
        )
    )
    logged = []
    path, entry = build.busybox_deb(mirror, logged.append)  # the pinned file is not on this mirror: 404
    assert path.read_bytes() == deb and entry["version"] == "1:9.9" and "gone from the mirror" in logged[0]
    (root / "pool/main/b/busybox/busybox-static_9.9_arm64.deb").write_bytes(b"tampered")
    path.unlink()
    with pytest.raises(MobilesegError, match="expected sha256"):
        build.busybox_deb(mirror, logged.append)
    with pytest.raises(MobilesegError, match=r"cannot download busybox-static .*--mirror URL"):
        build.busybox_deb("http://127.0.0.1:9", logged.append)  # nothing listens on port 9


def test_unknown_profile_is_one_sentence_with_a_suggestion():
    with pytest.raises(MobilesegError, match=r"unknown emulator profile 'andriod' \(did you mean 'android'\?\)"):
        profiles.get("andriod")


# ------------------------------------------------------------------------------- android device files (fast)
def test_android_device_files_layout(tmp_path):
    root = tmp_path / "rootfs"
    device_files.install(root, "android", ncpu=2)
    cpu = root / "sys/devices/system/cpu"
    assert sorted(p.name for p in (cpu / "cpufreq").iterdir()) == ["policy0", "policy4", "policy7"]
    assert (cpu / "cpu5/cpufreq").is_symlink() and (cpu / "cpu5/cpufreq/related_cpus").read_text() == "4 5 6\n"
    maxes = [int((cpu / f"cpu{i}/cpufreq/cpuinfo_max_freq").read_text()) for i in range(8)]
    assert len(set(maxes)) == 3 and maxes[7] > maxes[4] > maxes[0]
    assert (cpu / "cpu7/cpufreq/scaling_governor").read_text().strip() == "schedutil"
    types = [(root / f"sys/class/thermal/thermal_zone{z}/type").read_text().strip() for z in range(8)]
    assert {"cpu-1-0-usr", "gpuss-0-usr", "battery"} <= set(types)
    assert (root / "proc/cpuinfo").read_text().count("processor\t:") == 8
    assert (root / "system/bin/taskset").is_file()  # 8 emulated CPUs on 2 host CPUs: the folding taskset
    assert not (root / "usr").exists() and (root / "data/local/tmp").stat().st_mode & 0o777 == 0o777
    # getprop, run by the host's sh: one value, a default, and the full listing like Android's
    getprop = root / "system/bin/getprop"
    run = lambda *a: subprocess.run(["sh", str(getprop), *a], capture_output=True, text=True).stdout  # noqa: E731
    assert run("ro.soc.model") == "SM8250\n" and run("ro.no.such", "dflt") == "dflt\n"
    listing = run().splitlines()
    assert "[ro.board.platform]: [kona]" in listing and len(listing) == len(ANDROID.props)


# ---------------------------------------------------------------------------- ports and several daemons (fast)
def test_time_wait_connections_do_not_make_a_port_look_taken():
    """A stopped daemon leaves its accepted connections in TIME_WAIT (it closed first); the port is free."""
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        cli = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        conn.close()  # the server side closes first: its end goes to TIME_WAIT
        cli.recv(1)
        cli.close()
        assert not control.port_free(port)  # still listening: taken
    with socket.socket() as plain:  # the check without SO_REUSEADDR (the bug) refuses the port
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    assert control.port_free(port)


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A private run folder, so that stop --all ends only the daemons of this test."""
    pytest.importorskip("cryptography")
    monkeypatch.setattr(control, "run_dir", lambda: tmp_path / "run")
    yield tmp_path / "run"
    for d in control.running():
        control.stop(port=d["port"])


def test_several_daemons_by_port_and_stop_rules(run_dir, tmp_path, capsys):
    from mobileseg.cli import main

    a = control.start(port=0, host_mode=True, adb_keys=str(tmp_path / "keys"))
    b = control.start(port=0, host_mode=True, adb_keys=str(tmp_path / "keys"), refuse_auth=True)
    assert a["port"] != b["port"] and b["mode"] == "refuse-auth"
    assert sorted(d["port"] for d in control.running()) == sorted([a["port"], b["port"]])
    with pytest.raises(MobilesegError, match=r"already running on port"):
        control.start(port=a["port"], host_mode=True)
    assert main(["emulator", "stop"]) == 2  # two running: which one?
    err = capsys.readouterr().err
    assert f"{a['port']}" in err and f"{b['port']}" in err and "--all" in err and "Traceback" not in err
    assert main(["emulator", "status"]) == 0 and f"port {b['port']}" in capsys.readouterr().out
    assert control.stop(port=a["port"]) == [a["port"]]
    assert [d["port"] for d in control.running()] == [b["port"]]
    assert main(["emulator", "stop", "--all"]) == 0 and control.running() == []


# ================================================================================ slow: the emulated phone
def _emu_skip() -> str | None:
    missing = [t for t in ("proot", "qemu-aarch64-static", "dpkg") if not shutil.which(t)]
    if missing:
        return f"{', '.join(missing)} not installed (sudo apt-get install proot qemu-user-static)"
    return None


@pytest.fixture(scope="module")
def android_rootfs():
    why = _emu_skip()
    if why:
        pytest.skip(why)
    try:
        st = build.build(profile="android", log=lambda _m: None)  # cached; a few seconds when not
    except build.EmulatorBuildError as exc:
        if "cannot download" in str(exc):
            pytest.skip(str(exc))
        raise
    assert st["current"] and st["bytes"] < 20e6  # a busybox phone, not a distribution
    return Path(st["rootfs"])


@pytest.fixture(scope="module")
def phone(android_rootfs, key):
    proc, port = control.launch(
        adb_keys=key.parent / "adb_keys", refuse_new_keys=True, rootfs=str(android_rootfs), profile="android"
    )
    yield port
    control.terminate(proc)


@pytest.mark.slow
@pytest.mark.emulator
def test_android_shell_getprop_applets_and_no_python(phone, key):
    from mobileseg.device.adb_direct import AdbDevice

    with AdbDevice.open(f"adb:127.0.0.1:{phone}", key_path=key) as dev:
        for prop in (
            "ro.product.model",
            "ro.product.manufacturer",
            "ro.soc.manufacturer",
            "ro.soc.model",
            "ro.board.platform",
            "ro.product.cpu.abi",
            "ro.build.version.release",
            "ro.build.version.sdk",
        ):
            assert dev.getprop(prop) == ANDROID.props[prop], prop
        rc, listing = dev.shell("getprop")
        assert rc == 0 and "[ro.soc.model]: [SM8250]" in listing.splitlines()
        rc, out = dev.shell(
            'echo "$0"; uname -m; for a in sha256sum taskset mkdir cat grep sed df; do command -v $a; done'
        )
        assert rc == 0 and out.split()[:2] == ["/system/bin/sh", "aarch64"] and len(out.split()) == 9, out
        rc, out = dev.shell("command -v python3 || command -v python || command -v apt-get || echo none")
        assert out.strip() == "none"
        assert dev.shell("test -e /usr || test -e /bin || echo bare")[1].strip() == "bare"  # no Linux userland
        rc, out = dev.shell("cd /data/local/tmp && echo x > w && cat w && rm w && grep -c '^processor' /proc/cpuinfo")
        assert rc == 0 and out.split() == ["x", "8"]
        assert dev.shell("exit 7")[0] == 7
        n = device_files.cpu_count()  # emulated CPU 7 runs on host CPU 7 % n (the host kernel sets affinity)
        rc, out = dev.shell("taskset 80 sh -c 'taskset -p $$'")
        assert rc == 0 and int(out.split()[-1], 16) == 1 << (7 % n), out


@pytest.mark.slow
@pytest.mark.emulator
def test_android_probe_clusters_prime_core_soc_name_and_native_harness(phone, key):
    from mobileseg.bench.targets.adb import AdbTarget

    with AdbTarget.open(f"adb:127.0.0.1:{phone}", key_path=key, adb_transport="direct") as t:
        d = t.describe()
    assert [len(c["cpus"]) for c in d["clusters"]] == [4, 3, 1]
    assert [c["kind"] for c in d["clusters"]] == ["little", "mid", "prime"]
    assert d["pinned_cpu"] == 7 and "prime core" in d["pinned_reason"] and d["big_core_mask"] == "0xf0"
    assert d["soc"] == "Snapdragon 865" and d["soc_id"] == "SM8250" and d["soc_manufacturer"] == "QTI"
    assert d["os"] == "Android 13" and d["abi"] == "arm64-v8a" and d["emulated"] is True
    assert d["python"] is None and d["harness"] == "native-ncnn"  # auto: no Python, so the native harness
    assert d["governor"] == "schedutil" and d["storage_free_bytes"] > 0
    assert probe.cpu_zone(d["thermal_zones"]).endswith("cpu-0-0-usr")  # not aoss0-usr, the first zone


@pytest.mark.slow
@pytest.mark.emulator
def test_python_harness_is_refused_in_one_sentence(phone, key, tmp_path, monkeypatch, capsys):
    from mobileseg.cli import main

    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    rc = main(
        [
            "bench",
            "--device",
            f"adb:127.0.0.1:{phone}",
            "--harness",
            "python",
            "--adb-transport",
            "direct",
            "--threads",
            "1",
            "-m",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "ncnn",
            "--out",
            str(tmp_path / "r"),
            "--export-dir",
            str(tmp_path / "e"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no python3" in err[0] and "--harness native" in err[0], err
    assert not list(tmp_path.glob("r/*.jsonl"))  # refused before any cell


@pytest.mark.slow
@pytest.mark.emulator
def test_bench_auto_uses_the_native_harness_pinned_to_the_prime_core(phone, key, tmp_path, monkeypatch):
    from mobileseg.device import native_build

    if native_build.harness_path() is None:
        pytest.skip("the native harness is not built: run `mobileseg harness build` (about 15 minutes, cached)")
    pytest.importorskip("pnnx", reason="the ncnn export needs pnnx: pip install 'mobileseg[ncnn]'")
    from mobileseg.results.record import validate_record
    from mobileseg.cli import main

    monkeypatch.setenv("ANDROID_USER_HOME", str(key.parent))
    out = tmp_path / "results"
    rc = main(
        [
            "bench",
            "--device",
            f"adb:127.0.0.1:{phone}",
            "--adb-transport",
            "direct",
            "--threads",
            "1",
            "-m",
            "topformer-t",
            "--res",
            "64",
            "--runtimes",
            "ncnn",
            "--warmup",
            "1",
            "--repeats",
            "2",
            "--out",
            str(out),
            "--export-dir",
            str(tmp_path / "export"),
            "--quiet",
        ]
    )
    assert rc == 0
    recs = [json.loads(line) for f in out.glob("*.jsonl") for line in f.read_text().splitlines() if line.strip()]
    assert len(recs) == 1
    r = recs[0]
    assert validate_record(r) == [], validate_record(r)
    assert r["status"] == "ok" and r["harness"] == "native-ncnn" and r["emulated"] is True
    assert r["parity"]["rel_l2"] is not None and r["parity"]["rel_l2"] <= r["parity"]["limit_rel_l2"]
    assert r["runtime_version"] == native_build.ncnn_version()
    dev = r["device"]
    assert dev["pinned_cpu"] == 7 and dev["soc"] == "Snapdragon 865" and dev["python"] is None
    assert r["runtime_settings"]["device_pin_mask"] == "0x80"
    assert r["affinity"] == [7 % device_files.cpu_count()]  # one host CPU: the one emulated CPU 7 maps to


# ============================================================================ slow: Debian's real adb server
@pytest.fixture
def adb_server(tmp_path):
    """A private adb server (own port and HOME, so no one else's server or key is touched); yields run(*args)."""
    if not shutil.which("adb"):
        pytest.skip("Debian's adb is not installed (sudo apt-get install adb)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        server_port = s.getsockname()[1]
    home = tmp_path / "adbhome"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "ANDROID_ADB_SERVER_PORT": str(server_port)}
    env.pop("ADB_SERVER_SOCKET", None)
    env.pop("ANDROID_USER_HOME", None)

    def run(*args, timeout=30.0):
        return subprocess.run(["adb", *args], env=env, capture_output=True, text=True, timeout=timeout).stdout

    run.env = env
    run("start-server")
    yield run
    run("kill-server")


def _listed(run, serial: str, want: str, wait_s: float = 30.0) -> str | None:
    """The state `adb devices` shows for ``serial`` once it is ``want`` (or the last one seen after ``wait_s``)."""
    state = None
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        rows = dict(l.split("\t")[:2] for l in run("devices").splitlines()[1:] if "\t" in l)
        state = rows.get(serial)
        if state == want:
            return state
        time.sleep(0.5)
    return state


@pytest.mark.slow
@pytest.mark.emulator
def test_refused_and_offline_devices_as_the_adb_server_lists_them(android_rootfs, adb_server, run_dir, capsys):
    from mobileseg.cli import main

    keys = ["--adb-keys", str(run_dir.parent / "adb_keys")]
    assert main(["emulator", "start", "--profile", "android", "--port", "0", "--refuse-auth", *keys]) == 0
    assert main(["emulator", "start", "--profile", "android", "--port", "0", "--offline", *keys]) == 0
    assert main(["emulator", "start", "--profile", "android", "--port", "0", *keys]) == 0
    refused, offline, good = (d["port"] for d in sorted(control.running(), key=lambda d: d["started"]))
    for port in (refused, offline, good):
        adb_server("connect", f"127.0.0.1:{port}")
    assert _listed(adb_server, f"127.0.0.1:{refused}", "unauthorized") == "unauthorized"
    assert _listed(adb_server, f"127.0.0.1:{offline}", "offline") == "offline"
    assert _listed(adb_server, f"127.0.0.1:{good}", "device") == "device"  # the default accepts the new key
    assert adb_server("-s", f"127.0.0.1:{good}", "shell", "getprop ro.board.platform").strip() == "kona"
    capsys.readouterr()
    assert main(["emulator", "status"]) == 0
    out = capsys.readouterr().out
    assert "refuse-auth" in out and "offline" in out and out.count("running: android") == 3
    # The user's command on each: one sentence saying what adb shows and what to do, a non-zero exit, no traceback.
    for port, words in ((refused, ("authorize", "accept")), (offline, ("offline",))):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "mobileseg.cli",
                "bench",
                "--device",
                f"adb:127.0.0.1:{port}",
                "--threads",
                "1",
                "--models",
                "topformer-t",
                "--res",
                "64",
                "--runtimes",
                "ncnn",
            ],
            env=adb_server.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        said = (r.stderr + r.stdout).strip()
        assert r.returncode != 0 and "Traceback" not in said, said
        assert all(w in said.lower() for w in words), said


@pytest.mark.slow
@pytest.mark.emulator
def test_two_emulated_phones_at_once(android_rootfs, adb_server, run_dir):
    keys = str(run_dir.parent / "adb_keys")
    a = control.start(port=0, profile="android", adb_keys=keys)
    b = control.start(port=0, profile="android", adb_keys=keys)
    for d in (a, b):
        adb_server("connect", f"127.0.0.1:{d['port']}")
    for d in (a, b):
        serial = f"127.0.0.1:{d['port']}"
        assert _listed(adb_server, serial, "device") == "device"
        assert adb_server("-s", serial, "shell", "getprop ro.soc.model").strip() == "SM8250"
    assert control.stop(all_=True) == sorted([a["port"], b["port"]])


def _free_scanned_port() -> int:
    """A free odd port in 5555-5585: the range the adb server scans for emulators (emulator-<port - 1>)."""
    for port in range(5585, 5554, -2):
        if control.port_free(port) and control.port_free(port - 1):
            return port
    pytest.skip("every port the adb server scans for emulators (5555-5585) is in use")


@pytest.mark.slow
@pytest.mark.emulator
def test_restart_on_a_port_the_adb_server_probes(android_rootfs, adb_server, run_dir):
    """The bug: after stop, start on 5555 answered 'port in use' (the server's connections left in TIME_WAIT)."""
    port = _free_scanned_port()
    keys = str(run_dir.parent / "adb_keys")
    control.start(port=port, profile="android", adb_keys=keys)
    adb_server("kill-server")  # a server scans the emulator ports when it starts; after that it retries only the
    adb_server("start-server")  # emulators it found, every second once they go away
    assert _listed(adb_server, f"emulator-{port - 1}", "device") == "device"  # the server found and connected it
    control.stop(port=port)
    with socket.socket() as plain:  # the condition of the bug: a bind without SO_REUSEADDR fails now
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    again = control.start(port=port, profile="android", adb_keys=keys)
    assert again["port"] == port
    assert _listed(adb_server, f"emulator-{port - 1}", "device") == "device"
