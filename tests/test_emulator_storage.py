"""Each emulated device has its own writable storage over the one shared, read-only rootfs.

The fast tests check the daemon's mapping on a fake rootfs (no proot); the slow one runs two real emulated devices
and writes on one through the shell and through sync, and looks for the file on the other.
"""

from __future__ import annotations

import os

import pytest

from mobileseg.emulator.adbd import RootfsBackend


def fake_rootfs(tmp_path):
    root = tmp_path / "rootfs"
    for d in ("data/local/tmp", "sdcard", "tmp", "etc", "storage/emulated/0"):
        (root / d).mkdir(parents=True)
    (root / "data/local/tmp").chmod(0o1777)
    (root / "etc/hostname").write_text("shared\n")
    (root / "etc/link-to-data").symlink_to("/data/local/tmp")
    return root


def test_each_backend_gets_its_own_writable_folders_over_the_shared_rootfs(tmp_path):
    root = fake_rootfs(tmp_path)
    a, b = RootfsBackend(root), RootfsBackend(root)
    assert a.own_storage(tmp_path / "a") == ["/data", "/sdcard", "/storage", "/tmp"]
    b.own_storage(tmp_path / "b")
    pa, pb = a.path("/data/local/tmp/x"), b.path("/data/local/tmp/x")
    assert pa == tmp_path / "a/data/local/tmp/x" and pb == tmp_path / "b/data/local/tmp/x"
    assert (tmp_path / "a/data/local/tmp").stat().st_mode & 0o7777 == 0o1777  # copied with its mode
    pa.write_text("from-a")
    assert not pb.exists() and not (root / "data/local/tmp/x").exists()  # neither B nor the rootfs sees it
    (root / "data/local/tmp/old").write_text("written into the shared rootfs by an older mobileseg")
    c = RootfsBackend(root)
    c.own_storage(tmp_path / "c")
    assert not c.path("/data/local/tmp/old").exists()  # a new device's storage starts empty
    assert a.path("/etc/hostname") == b.path("/etc/hostname") == root / "etc/hostname"  # the rootfs is shared
    assert a.path("/sdcard/f") == tmp_path / "a/sdcard/f" and a.path("/tmp") == tmp_path / "a/tmp"
    # a symlink of the rootfs into /data leads to this device's /data, and nothing leads out of the device
    assert a.path("/etc/link-to-data/x") == pa
    assert a.path("/../../data/../etc/hostname") == root / "etc/hostname"
    argv = a.shell_argv("true")
    assert f"{tmp_path / 'a' / 'data'}:/data" in argv and f"{tmp_path / 'a' / 'tmp'}:/tmp" in argv


def test_own_storage_is_kept_across_restarts_of_the_same_device(tmp_path):
    root = fake_rootfs(tmp_path)
    first = RootfsBackend(root)
    first.own_storage(tmp_path / "dev")
    first.path("/data/local/tmp/kept").write_text("1")
    again = RootfsBackend(root)
    again.own_storage(tmp_path / "dev")
    assert again.path("/data/local/tmp/kept").read_text() == "1"


def test_a_profile_without_a_folder_gets_no_bind_for_it(tmp_path):
    root = tmp_path / "rootfs"
    (root / "data/local/tmp").mkdir(parents=True)
    backend = RootfsBackend(root, profile="android")
    assert backend.own_storage(tmp_path / "s") == ["/data"]
    assert backend.path("/tmp/x") == root / "tmp/x"


@pytest.mark.slow
@pytest.mark.emulator
def test_two_emulated_devices_do_not_see_each_others_files(tmp_path):
    from emulated_devices import skip_reason

    from mobileseg.device.adb_direct import AdbDevice
    from mobileseg.emulator import build, control

    why = skip_reason()
    if why:
        pytest.skip(why)
    pytest.importorskip("adb_shell")
    procs = []
    try:
        for i in range(2):
            procs.append(control.launch(rootfs=str(build.rootfs_dir()), log_path=str(tmp_path / f"emu{i}.log")))
        a, b = (AdbDevice.open(f"adb:127.0.0.1:{port}", key_path=tmp_path / "adbkey") for _, port in procs)
        with a, b:
            name = f"/data/local/tmp/x-{os.getpid()}-{tmp_path.name}"
            assert a.shell(f"echo from-a > {name} && cat {name}", 120) == (0, "from-a\n")
            rc, out = b.shell(f"cat {name} 2>&1; echo rc=$?", 120)
            assert "rc=1" in out and "from-a" not in out, out
            local = tmp_path / "f.txt"
            local.write_text("pushed to a\n")
            a.push(local, "/sdcard/f.txt")
            assert a.shell("cat /sdcard/f.txt", 120)[1] == "pushed to a\n"
            assert "gone" in b.shell("test -e /sdcard/f.txt || echo gone", 120)[1]
            assert b.shell("touch /tmp/b && test -e /tmp/b", 120)[0] == 0
            assert "gone" in a.shell("test -e /tmp/b || echo gone", 120)[1]
        assert not (build.rootfs_dir() / name.lstrip("/")).exists()  # the shared rootfs was not written
    finally:
        for proc, _ in procs:
            control.terminate(proc)
