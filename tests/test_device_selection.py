"""Choosing ADB devices: the --device forms, one sentence per failure, one device listed twice is one device.

Unit tests on fake ``adb devices -l`` listings (every state a phone can be in), then the same against Debian's real
adb server with Python adbd children (the host's shell): two devices, connect on demand, the emulator auto-detected
as ``emulator-N`` and also ``adb connect``-ed, a phone seen twice by its ro.serialno, the fallback without a server.
"""

from __future__ import annotations

import os
import stat

import pytest

pytest.importorskip("adbutils")
pytest_plugins = ["adb_server_fixtures"]  # its fixtures: adb_env, adb_server, daemons

from adb_server_helpers import free_emulator_port, free_port  # noqa: E402

from mobileseg.device import adb_server as srv  # noqa: E402
from mobileseg.device import selection as sel  # noqa: E402
from mobileseg.device.adb_direct import DeviceUnauthorizedError, NoDeviceError  # noqa: E402
from mobileseg.device.adb_server import ServerEntry  # noqa: E402
from mobileseg.device.selection import DeviceFacts  # noqa: E402


def entry(serial, state="device", model="Pixel_7"):
    return ServerEntry(serial, state, {"model": model} if model else {})


# ------------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize(
    "arg, kind, serials",
    [
        ("adb", "only", []),
        ("adb:all", "all", []),
        ("adb:ALL", "all", []),
        ("adb:R58M123", "serials", ["R58M123"]),
        ("adb:127.0.0.1:5555", "serials", ["127.0.0.1:5555"]),
        ("adb:emulator-5554", "serials", ["emulator-5554"]),
        ("adb:A, B,A", "serials", ["A", "B"]),
        ("adb:[::1]:5555", "serials", ["[::1]:5555"]),
    ],
)
def test_parse_device_arg(arg, kind, serials):
    r = sel.parse_device_arg(arg)
    assert (r.kind, r.serials) == (kind, serials)
    assert r.several == (kind == "all" or len(serials) > 1)


@pytest.mark.parametrize("arg", ["adb:", "adbx", "adb: "])
def test_bad_device_arg(arg):
    with pytest.raises(sel.DeviceChoiceError, match="use --device adb, adb:SERIAL"):
        sel.parse_device_arg(arg)


@pytest.mark.parametrize(
    "serial, ep",
    [
        ("emulator-5554", ("127.0.0.1", 5555)),
        ("emulator-5584", ("127.0.0.1", 5585)),
        ("127.0.0.1:5555", ("127.0.0.1", 5555)),
        ("localhost:5557", ("127.0.0.1", 5557)),
        ("192.168.1.20:5555", ("192.168.1.20", 5555)),
        ("R58M123", None),
    ],
)
def test_endpoint(serial, ep):
    assert sel.endpoint(serial) == ep


# ------------------------------------------------------------------------------------------ duplicates
def test_emulator_listed_twice_is_one_device_and_the_connected_serial_is_kept():
    devices, notes = sel.collapse(
        [
            entry("emulator-5554", model="emu"),
            entry("127.0.0.1:5555", model="emu"),
            entry("127.0.0.1:5557", model="emu"),
        ]
    )
    assert [(d.serial, d.aliases) for d in devices] == [("127.0.0.1:5555", ["emulator-5554"]), ("127.0.0.1:5557", [])]
    assert notes == [
        "127.0.0.1:5555 and emulator-5554 are one device (the same adb port 127.0.0.1:5555): using 127.0.0.1:5555"
    ]


def test_the_serial_the_user_named_is_kept():
    devices, _ = sel.collapse([entry("emulator-5554"), entry("127.0.0.1:5555")], prefer=("emulator-5554",))
    assert [(d.serial, d.aliases) for d in devices] == [("emulator-5554", ["127.0.0.1:5555"])]


def test_a_phone_on_usb_and_over_tcp_is_one_device_by_serialno_and_boot_id():
    entries = [entry("192.168.1.20:5555"), entry("R58M123"), entry("0123456789ABCDEF"), entry("10.0.0.9:5555")]
    facts = {
        "192.168.1.20:5555": DeviceFacts("R58M123", "boot-a", "Galaxy S21"),
        "R58M123": DeviceFacts("R58M123", "boot-a", "Galaxy S21"),
        # two cheap phones with the same factory serial are two devices: their boot ids differ
        "0123456789ABCDEF": DeviceFacts("0123456789ABCDEF", "boot-b", "Phone B"),
        "10.0.0.9:5555": DeviceFacts("0123456789ABCDEF", "boot-c", "Phone C"),
    }
    devices, notes = sel.collapse(entries, facts)
    assert [(d.serial, d.model, d.aliases) for d in devices] == [
        ("R58M123", "Galaxy S21", ["192.168.1.20:5555"]),
        ("0123456789ABCDEF", "Phone B", []),
        ("10.0.0.9:5555", "Phone C", []),
    ]  # USB is kept over TCP
    assert notes == [
        "R58M123 and 192.168.1.20:5555 are one device (the same ro.serialno R58M123 and boot id): using R58M123"
    ]


def test_devices_without_serialno_are_not_merged_by_empty_facts():
    facts = {"127.0.0.1:40001": DeviceFacts("", "boot", "m"), "127.0.0.1:40003": DeviceFacts("", "boot", "m")}
    devices, notes = sel.collapse([entry("127.0.0.1:40001"), entry("127.0.0.1:40003")], facts)
    assert len(devices) == 2 and notes == []


def test_a_ready_serial_is_kept_over_an_offline_alias():
    devices, _ = sel.collapse([entry("127.0.0.1:5555", "offline"), entry("emulator-5554")])
    assert [(d.serial, d.state) for d in devices] == [("emulator-5554", "device")]


# ------------------------------------------------------------------------------------------ the sentences
def choose(arg, listing):
    devices, _ = sel.collapse(listing)
    return sel.choose(sel.parse_device_arg(arg), devices, "localhost:5037")


def test_the_only_ready_device_is_taken():
    (d,) = choose("adb", [entry("R58M123"), entry("192.168.1.9:5555", "offline")])
    assert d.serial == "R58M123"


def test_several_devices_list_each_serial_and_model():
    with pytest.raises(sel.DeviceChoiceError) as info:
        choose("adb", [entry("R58M123", model="SM_G991B"), entry("127.0.0.1:5557", model="mobileseg_emulated")])
    msg = str(info.value)
    assert "2 ADB devices are connected: R58M123 (SM G991B), 127.0.0.1:5557 (mobileseg emulated)" in msg
    assert "--device adb:SERIAL" in msg and "--device adb:all" in msg and "\n" not in msg


def test_no_device_says_what_adb_devices_shows():
    with pytest.raises(NoDeviceError, match=r"adb devices lists none at localhost:5037\): plug in the phone"):
        choose("adb", [])


def test_an_unauthorized_phone_says_accept_the_prompt():
    with pytest.raises(DeviceUnauthorizedError, match="R58M123 did not authorize .* accept the 'Allow USB"):
        choose("adb", [entry("R58M123", "unauthorized", model=None)])
    with pytest.raises(DeviceUnauthorizedError, match="accept"):
        choose("adb:R58M123", [entry("R58M123", "unauthorized", model=None)])


def test_an_offline_phone_says_replug():
    with pytest.raises(NoDeviceError, match="R58M123 is offline: unplug and replug it \\(or run adb reconnect\\)"):
        choose("adb", [entry("R58M123", "offline", model=None)])
    with pytest.raises(NoDeviceError, match="offline: unplug and replug"):
        choose("adb:all", [entry("R58M123", "offline", model=None)])


def test_several_not_ready_devices_in_one_sentence():
    with pytest.raises(NoDeviceError) as info:
        choose("adb", [entry("R58M123", "unauthorized"), entry("9A1B", "offline"), entry("X1", "no permissions")])
    msg = str(info.value)
    assert msg.startswith("no ADB device is ready: adb devices lists R58M123 as unauthorized (unlock the phone")
    assert "9A1B as offline (unplug and replug it" in msg and "X1 as no permissions (give your user" in msg


def test_a_serial_the_server_does_not_list():
    with pytest.raises(sel.DeviceChoiceError, match=r"does not list R58X \(adb devices lists: R58M123 \(Pixel 7\)\)"):
        choose("adb:R58X", [entry("R58M123")])


def test_several_serials_and_all():
    listing = [entry("emulator-5554"), entry("127.0.0.1:5555"), entry("R58M123"), entry("9A1B", "unauthorized")]
    assert [d.serial for d in choose("adb:all", listing)] == ["127.0.0.1:5555", "R58M123"]
    # two serials of one device are measured once
    assert [d.serial for d in choose("adb:emulator-5554,127.0.0.1:5555,R58M123", listing)] == [
        "127.0.0.1:5555",
        "R58M123",
    ]
    with pytest.raises(DeviceUnauthorizedError):
        choose("adb:R58M123,9A1B", listing)


# ------------------------------------------------------------------------------------------ a real server
def _connected(adb_server, daemons, n=1, **kw):
    serials = []
    for _ in range(n):
        _proc, port = daemons(**kw)
        serial = f"127.0.0.1:{port}"
        assert adb_server.connect(serial) == "device"
        serials.append(serial)
    return serials


def test_two_devices_the_error_lists_both_and_all_takes_both(adb_server, daemons):
    a, b = _connected(adb_server, daemons, 2)
    server = srv.connect_server()
    with pytest.raises(sel.DeviceChoiceError) as info:
        sel.select("adb", server)
    assert f"{a} (mobileseg host adbd)" in str(info.value) and f"{b} (mobileseg host adbd)" in str(info.value)
    chosen, _ = sel.select("adb:all", server)
    assert sorted(d.serial for d in chosen) == sorted([a, b])
    devices, notes = sel.open_devices(f"adb:{b}")
    assert [d.serial for d in devices] == [b] and devices[0].shell("exit 6")[0] == 6


def test_the_only_device_and_no_device(adb_server, daemons):
    server = srv.connect_server()
    with pytest.raises(NoDeviceError, match="adb devices lists none at"):
        sel.select("adb", server)
    (serial,) = _connected(adb_server, daemons)
    devices, _ = sel.open_devices("adb")
    assert [d.serial for d in devices] == [serial]
    assert devices[0].transport_info()["transport"] == "adb-server"


def test_a_host_port_the_server_does_not_list_is_connected(adb_server, daemons):
    _proc, port = daemons()
    serial = f"127.0.0.1:{port}"
    assert serial not in adb_server.devices()
    devices, notes = sel.open_devices(f"adb:{serial}")
    assert [d.serial for d in devices] == [serial] and f"adb connect {serial}: device" in notes
    assert adb_server.devices()[serial] == "device"
    closed = free_port()  # nothing listens there: what an address that never answered looks like, on loopback
    with pytest.raises(NoDeviceError) as info:
        sel.open_devices(f"adb:127.0.0.1:{closed}")
    msg = str(info.value)
    assert msg.startswith(f"nothing answered as an adb device at 127.0.0.1:{closed} (adb connect through the server")
    assert "said: failed to connect" in msg and "replug" not in msg
    assert f"127.0.0.1:{closed}" not in adb_server.devices()  # no stale entry left behind


def test_unauthorized_through_the_server(adb_server, daemons, tmp_path):
    _proc, port = daemons(adb_keys=tmp_path / "other_keys", refuse_new_keys=True)
    serial = f"127.0.0.1:{port}"
    assert adb_server.connect(serial, states=("unauthorized",)) == "unauthorized"
    with pytest.raises(DeviceUnauthorizedError, match=f"{serial} did not authorize"):
        sel.open_devices("adb")


def test_the_emulator_auto_detected_and_connected_is_one_device(adb_env, daemons, monkeypatch):
    port = free_emulator_port()
    _proc, _ = daemons(port=port)  # listening before the server starts: its scan finds it as emulator-N
    monkeypatch.delenv("ADB_LOCAL_TRANSPORT_MAX_PORT")
    adb_env.env.pop("ADB_LOCAL_TRANSPORT_MAX_PORT")
    adb_env.start()
    emu, tcp = f"emulator-{port - 1}", f"127.0.0.1:{port}"
    assert adb_env.wait_state(emu) == "device", adb_env.devices()
    assert adb_env.connect(tcp) == "device"
    server = srv.connect_server()
    devices, notes = sel.list_devices(server)
    mine = [d for d in devices if tcp in (d.serial, *d.aliases)]  # other emulators on this machine may be listed
    assert [(d.serial, d.aliases) for d in mine] == [(tcp, [emu])]
    assert f"{tcp} and {emu} are one device (the same adb port 127.0.0.1:{port}): using {tcp}" in notes
    # the emulator-N serial works as --device adb:emulator-N, and is the one kept when named
    opened, _ = sel.open_devices(f"adb:{emu}")
    assert [d.serial for d in opened] == [emu] and opened[0].aliases == [tcp]
    assert opened[0].shell("echo emu; exit 2") == (2, "emu\n")
    opened, _ = sel.open_devices(f"adb:{emu},{tcp}")
    assert len(opened) == 1


def test_a_device_seen_twice_by_its_serialno(adb_server, daemons, tmp_path, monkeypatch):
    """Two adbd children answering the same ro.serialno (and the host's boot id) stand for one phone on USB and
    over TCP; a third with another serialno is another phone."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    getprop = bin_dir / "getprop"
    getprop.write_text(
        '#!/bin/sh\ncase "$1" in ro.serialno) echo "$FAKE_SERIALNO";; '
        'ro.product.model) echo "Fake Phone $FAKE_SERIALNO";; esac\n'
    )
    getprop.chmod(getprop.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # inherited by the adbd children
    serials = []
    for serialno in ("SER1", "SER1", "SER2"):
        monkeypatch.setenv("FAKE_SERIALNO", serialno)
        serials += _connected(adb_server, daemons)
    devices, notes = sel.list_devices(srv.connect_server())
    assert sorted((d.model, len(d.aliases)) for d in devices) == [("Fake Phone SER1", 1), ("Fake Phone SER2", 0)]
    assert any("the same ro.serialno SER1 and boot id" in n for n in notes)


def test_without_a_server_or_adb_the_direct_transport_is_used(adb_env, daemons, tmp_path, monkeypatch):
    from mobileseg.device.adb_direct import AdbDevice, load_signer

    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT")
    monkeypatch.setattr(srv, "DEFAULT_PORT", free_port())  # the default address, with nothing listening
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # and no adb binary to start a server
    key = tmp_path / "key" / "adbkey"
    load_signer(key)
    _proc, port = daemons()
    devices, notes = sel.open_devices(f"adb:127.0.0.1:{port}", key_path=key)
    assert isinstance(devices[0], AdbDevice) and devices[0].shell("exit 3")[0] == 3
    assert "using the direct adb-shell transport" in notes[0]
    devices[0].close()
    with pytest.raises(sel.DeviceChoiceError, match="adb:all needs the adb server"):
        sel.open_devices("adb:all")
    # no phone named, no server, no adb: the sentence says that first, not that a USB library is missing
    with pytest.raises(NoDeviceError, match=r"no adb server answers.*nothing lists your phone: install adb"):
        sel.open_devices("adb", key_path=key)
    # a server the user named that does not answer is an error, not a fallback
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(free_port()))
    with pytest.raises(srv.NoServerError, match="no adb server answers"):
        sel.open_devices(f"adb:127.0.0.1:{port}", key_path=key)
    with pytest.raises(srv.NoServerError):
        sel.open_devices(f"adb:127.0.0.1:{port}", transport="server")


# ------------------------------------------------------------------------------------------ every device accounted for
def test_adb_all_names_each_device_it_leaves_out_and_why():
    listing = [
        entry("R58M123"),
        entry("9A1B", "unauthorized", model=None),
        entry("10.0.0.7:5555", "offline"),
        entry("X1"),
    ]
    devices, _ = sel.collapse(listing)
    notes = sel.left_out(sel.parse_device_arg("adb:all"), devices, "localhost:5037")
    assert notes == [
        "adb:all leaves out 9A1B: the adb server at localhost:5037 lists it as unauthorized (unlock the phone and "
        "accept the 'Allow USB debugging?' prompt (tick 'Always allow'))",
        "adb:all leaves out 10.0.0.7:5555 (Pixel 7): the adb server at localhost:5037 lists it as offline (nothing "
        "answers as an adb device at that address: check that it listens there)",
    ]
    assert sel.left_out(sel.parse_device_arg("adb:R58M123"), devices) == []


def test_an_offline_address_is_not_told_to_replug():
    with pytest.raises(NoDeviceError) as info:
        choose("adb:10.0.0.7:5555", [entry("10.0.0.7:5555", "offline")])
    assert "nothing answers as an adb device at that address" in str(info.value)
    assert "replug" not in str(info.value)


def test_the_started_server_note_is_kept_when_selection_fails(adb_env):
    with pytest.raises(NoDeviceError) as info:  # nothing listened at the port named: a new, empty server
        sel.open_devices("adb")
    msg = str(info.value)
    assert msg.startswith("no ADB device is connected")
    assert (
        f"no adb server was running at localhost:{adb_env.port}, named by ANDROID_ADB_SERVER_ADDRESS/PORT, so "
        "this run started a new one with adb start-server" in msg
    )


# ------------------------------------------------------------------------------------------ a lab on several hosts
def test_lab_device_syntax():
    from mobileseg.device import lab

    servers = lab.parse_servers(["lab1=10.0.0.5:5037", "lab2=tcp:[fe80::1]:5038"])
    assert str(servers["lab1"]) == "10.0.0.5:5037" and servers["lab2"].port == 5038
    picks = lab.parse("adb@lab1/R58M123,R58M456,adb@lab2,adb@127.0.0.1:6000/emulator-5554", servers)
    assert [(str(p.addr), p.all, p.serials) for p in picks] == [
        ("10.0.0.5:5037", False, ["R58M123", "R58M456"]),
        ("[fe80::1]:5038", True, []),
        ("127.0.0.1:6000", False, ["emulator-5554"]),
    ]
    assert picks[0].addr.source == "--adb-server lab1" and picks[2].addr.source == "--device adb@127.0.0.1:6000"
    assert picks[0].device_arg() == "adb:R58M123,R58M456" and picks[1].device_arg() == "adb:all"
    first = lab.parse("adb:R1,adb@lab1/R2", servers, env={})
    assert [(str(p.addr), p.serials) for p in first] == [("localhost:5037", ["R1"]), ("10.0.0.5:5037", ["R2"])]
    assert sel.parse_device_arg("adb@lab1/R58M123").several is False
    assert sel.parse_device_arg("adb@lab1").several and sel.parse_device_arg("adb@lab1/A,B").several


@pytest.mark.parametrize(
    "arg, servers, match",
    [
        (
            "adb@lab3/R58",
            ["lab1=h:5037", "gpu=h:5038"],
            "names the unknown adb server 'lab3' \\(did you mean 'lab1'\\?\\): "
            "declare it with --adb-server lab3=HOST:PORT",
        ),
        ("adb@myhost/R58", [], "unknown adb server 'myhost': .*\\(none is declared\\)"),
        ("R58,adb@h:5037", [], "'R58' names no server"),
    ],
)
def test_lab_bad_device_syntax_is_one_sentence(arg, servers, match):
    from mobileseg.device import lab

    with pytest.raises(lab.LabError, match=match):
        lab.parse(arg, lab.parse_servers(servers))


@pytest.mark.parametrize("spec", ["lab1", "lab1=host", "1lab=h:5037", "lab1=h:99999"])
def test_bad_adb_server_declarations(spec):
    from mobileseg.device import lab

    with pytest.raises(lab.LabError, match="is not NAME=HOST:PORT"):
        lab.parse_servers([spec])


@pytest.fixture
def second_server(adb_server):
    """Another adb server on another port of this machine (a second lab host), sharing the first one's key."""
    import subprocess

    from adb_server_helpers import Server

    port = free_port()
    other = Server({**adb_server.env, "ANDROID_ADB_SERVER_PORT": str(port)}, port)
    other.start()
    yield other
    subprocess.run(["adb", "kill-server"], env=other.env, capture_output=True, timeout=15)


def test_two_servers_in_one_selection(adb_server, second_server, daemons):
    from mobileseg.device import lab

    (a,) = _connected(adb_server, daemons)
    (b,) = _connected(second_server, daemons)
    s1, s2 = f"127.0.0.1:{adb_server.port}", f"127.0.0.1:{second_server.port}"
    devices, notes = sel.open_devices(f"adb@one,adb@{s2}", servers=[f"one={s1}"])
    assert [(d.serial, d.transport_info()["adb_server"]) for d in devices] == [(a, s1), (b, s2)]
    assert devices[0].transport_info()["adb_server_name"] == "one" and devices[1].shell("exit 4")[0] == 4
    # the same device reached through both servers: measured once, through the first, with a note
    assert second_server.connect(a) == "device"
    devices, notes = sel.open_devices(f"adb@{s1}/{a},adb@{s2}/{a}")
    assert [d.transport_info()["adb_server"] for d in devices] == [s1]
    assert (
        f"{a} through the adb server at {s2} is {a} through {s1} (the same adb port {a} on one host): "
        f"measured once, through {s1}" in notes
    )
    # a server that does not answer, and a device syntax naming an unknown server: one sentence each
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(
        srv.NoServerError, match=f"no adb server answers at {dead} \\(--device adb@{dead}\\): start it on that host"
    ):
        sel.open_devices(f"adb@{s1},adb@{dead}")
    with pytest.raises(lab.LabError, match="unknown adb server 'onr' \\(did you mean 'one'\\?\\)"):
        sel.open_devices("adb@onr", servers=[f"one={s1}"])


def test_an_address_that_takes_the_connection_but_never_answers_says_so(adb_server, daemons):
    _proc, port = daemons(offline=True)  # TCP accepted, the ADB handshake never answered
    serial = f"127.0.0.1:{port}"
    with pytest.raises(NoDeviceError) as info:
        sel.open_devices(f"adb:{serial}", connect_timeout=3)
    msg = str(info.value)
    assert msg.startswith(f"nothing answered as an adb device at {serial} (adb connect through the server at ")
    assert "said: " in msg and "replug" not in msg
    assert serial not in adb_server.devices()
