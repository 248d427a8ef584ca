"""Which ADB device(s) ``--device adb[:...]`` names, and through which transport they are reached.

``--device`` forms (:func:`parse_device_arg`):

- ``adb``: the only device the adb server lists in ``device`` state; several or none is one sentence saying what
  ``adb devices`` shows and what to do;
- ``adb:SERIAL``: any serial the server lists (a USB serial, ``HOST:PORT``, ``emulator-5554``); a ``HOST:PORT`` it
  does not list is ``adb connect``-ed through the server first;
- ``adb:S1,S2`` and ``adb:all``: several devices (one bench worker each); ``adb:all`` names each listed device it
  leaves out (not ready) and why, and none ready is an error;
- ``adb@SERVER[/SERIAL],...``: devices of several adb servers (a lab on several hosts: :mod:`.lab`).

One device listed twice is one device (:func:`collapse`): an emulator on ports 5555-5585 that the server
auto-detects as ``emulator-5554`` and that was also ``adb connect``-ed as ``127.0.0.1:5555`` (same adb port on this
host), or a phone on USB and over ``adb tcpip`` (same ``ro.serialno`` and boot id). The kept serial is said in a note.

Transports (:func:`open_devices`, ``transport=``): ``server`` (adbutils through the adb server), ``direct`` (adb-shell
straight to the device's adbd: TCP, or USB with libusb when no server holds the phone) and ``auto``: the server, or,
when no server answers at the default address and no ``adb`` binary can start one, the direct transport. A server
named by ADB_SERVER_SOCKET / ANDROID_ADB_SERVER_* that does not answer is an error, never a silent fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .transport import AdbError, DeviceUnauthorizedError, NoDeviceError
from .adb_server import (
    AdbServer,
    ServerAddress,
    NoServerError,
    ServerEntry,
    connect_server,
    offline_message,
    server_address,
    unauthorized_message,
)

TRANSPORTS = ("auto", "server", "direct")
NOT_READY_HINTS = {
    "unauthorized": "unlock the phone and accept the 'Allow USB debugging?' prompt (tick 'Always allow')",
    "offline": "unplug and replug it (or run adb reconnect)",
    "authorizing": "wait for the 'Allow USB debugging?' prompt on the phone and accept it",
    "connecting": "wait a moment, or run adb reconnect",
    "no permissions": "give your user access to the USB device (udev rules: see adb devices -l)",
    "recovery": "boot the phone normally",
    "sideload": "boot the phone normally",
    "bootloader": "boot the phone normally",
}
_HOST_PORT = re.compile(r"\[?([^\]\s,]+?)\]?:(\d{1,5})")


class DeviceChoiceError(AdbError):
    """``--device adb`` is ambiguous (several devices) or names a device the server does not list."""


@dataclass
class DeviceRequest:
    """What ``--device adb...`` asks for: ``only`` (``adb``), ``serials`` (``adb:S1[,S2]``) or ``all``."""

    kind: str
    serials: list = field(default_factory=list)
    lab_several: bool = False  # kind "lab" (adb@SERVER...): whether it may name several devices

    @property
    def several(self) -> bool:
        return (
            self.kind == "all"
            or (self.kind == "lab" and self.lab_several)
            or (self.kind == "serials" and len(self.serials) > 1)
        )


def parse_device_arg(arg: str) -> DeviceRequest:
    """``adb`` | ``adb:SERIAL`` | ``adb:HOST:PORT`` | ``adb:S1,S2`` | ``adb:all`` -> :class:`DeviceRequest`."""
    s = (arg or "adb").strip()
    if s == "adb":
        return DeviceRequest("only")
    from . import lab

    if lab.is_lab(s):  # adb@SERVER[/SERIAL],...: parsed against the declared servers by mobileseg.device.lab
        return DeviceRequest("lab", [s], lab_several=lab.several(s))
    if not s.startswith("adb:") or not s[4:].strip():
        raise DeviceChoiceError(
            f"unknown device '{arg}': use --device adb, adb:SERIAL, adb:HOST:PORT, adb:S1,S2, "
            "adb:all or adb@SERVER[/SERIAL] (several adb servers)"
        )
    rest = s[4:].strip()
    if rest.lower() == "all":
        return DeviceRequest("all")
    serials = [p.strip() for p in rest.split(",") if p.strip()]
    return DeviceRequest("serials", list(dict.fromkeys(serials)))


def endpoint(serial: str) -> tuple[str, int] | None:
    """The TCP endpoint of the device's adbd on this host or a network, when its serial tells it.

    ``emulator-N`` is the emulator whose console is port N and whose adbd is port N+1 on this host.
    """
    m = re.fullmatch(r"emulator-(\d+)", serial)
    if m:
        return "127.0.0.1", int(m.group(1)) + 1
    m = _HOST_PORT.fullmatch(serial)
    if m:
        host = m.group(1).lower()
        return ("127.0.0.1" if host in ("localhost", "127.0.0.1", "::1") else host), int(m.group(2))
    return None


@dataclass
class DeviceFacts:
    """What identifies a device beyond its serial (read with one shell command)."""

    serialno: str = ""
    boot_id: str = ""
    model: str = ""


@dataclass
class Listed:
    """One device after collapsing duplicates: the serial used, its state and model, the other serials it has."""

    serial: str
    state: str
    model: str
    aliases: list = field(default_factory=list)

    def label(self) -> str:
        return f"{self.serial} ({self.model})" if self.model else self.serial


def _rank(serial: str) -> int:
    """Which of two serials of one device to keep: USB, then HOST:PORT (adb connect), then emulator-N."""
    if serial.startswith("emulator-"):
        return 2
    return 1 if endpoint(serial) else 0


def _same_device(e: ServerEntry, ep, f: DeviceFacts | None, m: ServerEntry, mf: DeviceFacts | None) -> str | None:
    """Why ``e`` and ``m`` are one device, or None."""
    if ep is not None and ep == endpoint(m.serial):
        return f"the same adb port {ep[0]}:{ep[1]}"
    if f and mf and f.serialno and (f.serialno, f.boot_id) == (mf.serialno, mf.boot_id):
        return f"the same ro.serialno {f.serialno} and boot id"
    return None


def collapse(
    entries: list[ServerEntry], facts: dict | None = None, prefer: tuple = ()
) -> tuple[list[Listed], list[str]]:
    """Merge entries that are one device; returns (devices, notes saying which serial was kept and why).

    Same device: the same adbd endpoint (``emulator-5554`` and ``127.0.0.1:5555``), or the same ``ro.serialno``
    and boot id (``facts``, for devices in ``device`` state). ``prefer``: serials the user named, kept first.
    """
    facts = facts or {}
    groups: list[list[ServerEntry]] = []
    reasons: list[str] = []
    for e in entries:
        ep, f = endpoint(e.serial), facts.get(e.serial)
        for i, g in enumerate(groups):
            why = next((w for m in g if (w := _same_device(e, ep, f, m, facts.get(m.serial)))), None)
            if why is None:
                continue
            g.append(e)
            reasons[i] = why
            break
        else:
            groups.append([e])
            reasons.append("")
    out, notes = [], []
    for g, why in zip(groups, reasons):
        ready = [e for e in g if e.state == "device"] or g
        keep = min(ready, key=lambda e: (e.serial not in prefer, _rank(e.serial), e.serial))
        f = facts.get(keep.serial)
        model = (f.model if f and f.model else "") or keep.model
        aliases = [e.serial for e in g if e is not keep]
        out.append(Listed(keep.serial, keep.state, model, aliases))
        if aliases:
            notes.append(f"{' and '.join([keep.serial, *aliases])} are one device ({why}): using {keep.serial}")
    return out, notes


def _hint(d: Listed) -> str:
    if d.state == "offline" and endpoint(d.serial):  # nothing is plugged in to replug: an address
        return "nothing answers as an adb device at that address: check that it listens there"
    return NOT_READY_HINTS.get(d.state, "check it with adb devices -l")


def _not_ready(devices: list[Listed]) -> str:
    return "; ".join(f"{d.serial} as {d.state} ({_hint(d)})" for d in devices)


def left_out(request: DeviceRequest, devices: list[Listed], server: str = "the adb server") -> list[str]:
    """One sentence per listed device that ``adb:all`` leaves out because it is not ready, saying why."""
    if request.kind != "all":
        return []
    return [
        f"adb:all leaves out {d.label()}: the adb server at {server} lists it as {d.state} ({_hint(d)})"
        for d in devices
        if d.state != "device"
    ]


def none_ready_message(devices: list[Listed], server: str) -> str:
    """One sentence for ``--device adb`` when no listed device is in ``device`` state."""
    if not devices:
        return (
            f"no ADB device is connected (adb devices lists none at {server}): plug in the phone with USB "
            "debugging enabled, or adb connect HOST:PORT (the emulated device: mobileseg emulator start --port "
            "PORT, then adb connect 127.0.0.1:PORT)"
        )
    return f"no ADB device is ready: adb devices lists {_not_ready(devices)}; then run the command again"


def several_message(devices: list[Listed]) -> str:
    ready = ", ".join(d.label() for d in devices)
    return (
        f"{len(devices)} ADB devices are connected: {ready}: pick one with --device adb:SERIAL (e.g. --device "
        f"adb:{devices[0].serial}), several with --device adb:S1,S2, or every one with --device adb:all"
    )


def choose(request: DeviceRequest, devices: list[Listed], server: str = "the adb server") -> list[Listed]:
    """The devices ``request`` names among ``devices`` (collapsed), or one sentence saying why none fits."""
    ready = [d for d in devices if d.state == "device"]
    if request.kind in ("only", "all"):
        if not ready:
            raise _none_error(devices, server)
        if request.kind == "only" and len(ready) > 1:
            raise DeviceChoiceError(several_message(ready))
        return ready
    chosen: list[Listed] = []
    for serial in request.serials:
        d = next((d for d in devices if serial == d.serial or serial in d.aliases), None)
        if d is None:
            listed = ", ".join(x.label() for x in devices) or "none"
            raise DeviceChoiceError(
                f"the adb server at {server} does not list {serial} (adb devices lists: "
                f"{listed}): check the serial, or adb connect HOST:PORT"
            )
        if d.state == "unauthorized":
            raise DeviceUnauthorizedError(unauthorized_message(serial))
        if d.state == "offline":
            raise NoDeviceError(offline_message(serial))
        if d.state != "device":
            raise NoDeviceError(f"adb devices lists {_not_ready([d])}; then run the command again")
        if any(c is d for c in chosen):
            continue  # two serials of one device: measured once
        chosen.append(d)
    return chosen


def _none_error(devices: list[Listed], server: str) -> AdbError:
    states = {d.state for d in devices}
    if states == {"unauthorized"} and len(devices) == 1:
        return DeviceUnauthorizedError(unauthorized_message(devices[0].serial))
    if states == {"offline"} and len(devices) == 1:
        return NoDeviceError(offline_message(devices[0].serial))
    return NoDeviceError(none_ready_message(devices, server))


# -- against a real server --------------------------------------------------------------------------------------------

_FACTS_CMD = (
    "getprop ro.serialno 2>/dev/null; echo @; cat /proc/sys/kernel/random/boot_id 2>/dev/null; echo @; "
    "getprop ro.product.model 2>/dev/null"
)


def device_facts(server: AdbServer, serial: str, timeout: float = 15.0) -> DeviceFacts:
    """``ro.serialno``, boot id and model of one ready device (empty fields when it cannot tell)."""
    try:
        rc, out = server.device(serial).shell(_FACTS_CMD, timeout=timeout)
    except AdbError:
        return DeviceFacts()
    if rc != 0 or out.count("@") != 2:  # a shell that did not run: its error text is no identity
        return DeviceFacts()
    parts = [p.strip() for p in out.split("@")] + ["", "", ""]
    serialno = parts[0] if parts[0] not in ("unknown",) else ""
    return DeviceFacts(serialno=serialno, boot_id=parts[1], model=parts[2])


def list_devices(server: AdbServer, prefer: tuple = ()) -> tuple[list[Listed], list[str]]:
    """The server's devices with duplicates collapsed (ready devices are asked for their identity when several)."""
    entries = server.devices()
    by_port, _ = collapse(entries, prefer=prefer)
    facts = {}
    if sum(d.state == "device" for d in by_port) > 1:
        facts = {e.serial: device_facts(server, e.serial) for e in entries if e.state == "device"}
    return collapse(entries, facts, prefer=prefer)


def select(arg: str, server: AdbServer, connect_timeout: float = 10.0) -> tuple[list[Listed], list[str]]:
    """The devices ``--device arg`` names on ``server`` (HOST:PORT serials it does not list are connected)."""
    request = parse_device_arg(arg)
    prefer = tuple(request.serials)
    devices, notes = list_devices(server, prefer)
    known = {s for d in devices for s in (d.serial, *d.aliases)}
    missing = [s for s in request.serials if s not in known and _HOST_PORT.fullmatch(s)]
    for serial in missing:
        state = server.connect(serial, wait_s=connect_timeout)
        notes.append(f"adb connect {serial}: {state}")
    if missing:
        devices, notes2 = list_devices(server, prefer)
        notes += notes2
    chosen = choose(request, devices, str(server.addr))
    out = left_out(request, devices, str(server.addr))
    if out:
        notes += out + [
            f"adb:all measures {len(chosen)} of the {len(devices)} device(s) the adb server at {server.addr} lists"
        ]
    return chosen, notes


def _same_host(a: ServerAddress, b: ServerAddress) -> bool:
    return (a.local and b.local) or a.host.lower() == b.host.lower()


def open_lab(arg: str, servers=None, connect_timeout: float = 10.0, env=None) -> tuple[list, list[str]]:
    """Open every device ``--device adb@...`` names (:mod:`mobileseg.device.lab` reads the syntax), each through its
    own server; returns (devices, notes)."""
    from .lab import parse, parse_servers

    picks = parse(arg, parse_servers(servers) if not isinstance(servers, dict) else servers, env)
    notes: list[str] = []
    chosen = []  # (server, Listed)
    for pick in picks:
        try:
            server = connect_server(pick.addr, start=False)
        except NoServerError:
            raise NoServerError(
                f"no adb server answers at {pick.addr} ({pick.addr.source}): start it on that host "
                f"(adb -a -P {pick.addr.port} start-server) or fix the address"
            ) from None
        found, more = select(pick.device_arg(), server, connect_timeout)
        notes += [f"{pick.addr}: {n}" for n in more]
        chosen += [(server, d) for d in found]
    kept: list = []
    facts: dict = {}
    if len(picks) > 1:
        facts = {id(d): device_facts(s, d.serial) for s, d in chosen}
    for server, d in chosen:
        twin, why = None, ""
        for ks, kd in kept:
            ep = endpoint(d.serial)
            if _same_host(server.addr, ks.addr) and ep is not None and ep == endpoint(kd.serial):
                twin, why = (ks, kd), f"the same adb port {ep[0]}:{ep[1]} on one host"
            else:
                f, kf = facts.get(id(d)), facts.get(id(kd))
                if f and kf and f.serialno and (f.serialno, f.boot_id) == (kf.serialno, kf.boot_id):
                    twin, why = (ks, kd), f"the same ro.serialno {f.serialno} and boot id"
            if twin:
                break
        if twin:
            notes.append(
                f"{d.serial} through the adb server at {server.addr} is {twin[1].serial} through "
                f"{twin[0].addr} ({why}): measured once, through {twin[0].addr}"
            )
            continue
        kept.append((server, d))
    devices = []
    try:
        for server, d in kept:
            devices.append(server.device(d.serial, connect_timeout=connect_timeout, aliases=d.aliases).connect())
    except BaseException:
        for dev in devices:
            dev.close()
        raise
    return devices, notes


def open_devices(
    arg: str, transport: str = "auto", connect_timeout: float = 10.0, key_path=None, env=None, servers=None
) -> tuple[list, list[str]]:
    """Open the device(s) ``--device arg`` names; returns (device objects, notes for the user).

    The objects are :class:`~mobileseg.device.adb_server.AdbServerDevice` (``server``) or
    :class:`~mobileseg.device.adb_direct.AdbDevice` (``direct``), each with ``transport_info()`` for the record.
    ``adb@SERVER...`` (several servers, ``servers``: the ``--adb-server NAME=HOST:PORT`` values) goes to
    :mod:`mobileseg.device.lab`.
    """
    transport = (transport or "auto").lower()
    if transport not in TRANSPORTS:
        raise DeviceChoiceError(f"unknown ADB transport '{transport}': use {', '.join(TRANSPORTS)}")
    from . import lab

    if lab.is_lab(arg):
        if transport == "direct":
            raise DeviceChoiceError(
                f"--device {arg} names adb servers, which --adb-transport direct does not use: "
                "leave --adb-transport out (or use server)"
            )
        return open_lab(arg, servers, connect_timeout, env)
    if servers:
        raise DeviceChoiceError(
            f"--adb-server declares servers but --device {arg} names none of them: name a device as adb@NAME[/SERIAL]"
        )
    request = parse_device_arg(arg)
    notes: list[str] = []
    no_server = ""
    if transport == "auto":
        try:
            import adbutils  # noqa: F401
        except ImportError:
            transport = "direct"
            notes.append(
                "the package 'adbutils' (the adb server client) is not installed: using the direct "
                "adb-shell transport (pip install 'mobileseg[adb]' -c constraints.txt adds it)"
            )
    if transport != "direct":
        addr = server_address(env)
        try:
            server = connect_server(addr, env=env)
        except NoServerError as exc:
            if transport == "server" or addr.source != "default":
                raise
            if request.kind == "all":
                raise DeviceChoiceError(
                    f"--device adb:all needs the adb server (it lists the devices), and {exc}"
                ) from None
            no_server = str(exc)
            notes.append(f"{exc}; using the direct adb-shell transport")
        else:
            if server.started:
                notes.append(f"started the adb server at {server.addr} (adb start-server)")
            try:
                chosen, more = select(arg, server, connect_timeout)
            except AdbError as exc:
                if not server.started:
                    raise
                # the note explains the failure: nothing listened there, so the server it lists from is a new one
                named = "adb's default address" if server.addr.source == "default" else f"named by {server.addr.source}"
                raise type(exc)(
                    f"{exc} (note: no adb server was running at {server.addr}, {named}, so this run "
                    "started a new one with adb start-server: it lists only the devices that reached it "
                    "since)"
                ) from None
            devices = []
            try:
                for d in chosen:
                    devices.append(
                        server.device(d.serial, connect_timeout=connect_timeout, aliases=d.aliases).connect()
                    )
            except BaseException:
                for dev in devices:
                    dev.close()
                raise
            return devices, notes + more
    if request.kind == "all":
        raise DeviceChoiceError(
            "--device adb:all needs the adb server (it lists the devices): start it with adb "
            "start-server, or name the devices with --device adb:HOST:PORT,HOST:PORT"
        )
    from .adb_direct import AdbDevice

    specs = ["adb"] if request.kind == "only" else [f"adb:{s}" for s in request.serials]
    devices = []
    try:
        for spec in specs:
            devices.append(AdbDevice.open(spec, key_path=key_path, connect_timeout=connect_timeout))
    except AdbError as exc:
        for dev in devices:
            dev.close()
        if no_server and request.kind == "only":  # no phone named, no server: say that first, not "libusb"
            raise NoDeviceError(
                f"{no_server}, so nothing lists your phone: install adb (Debian/Ubuntu: apt-get "
                f"install adb; elsewhere Android platform-tools), or name a phone on TCP with "
                f"--device adb:HOST:PORT (the direct transport said: {exc})"
            ) from None
        raise
    except BaseException:
        for dev in devices:
            dev.close()
        raise
    return devices, notes
