"""A lab on several hosts: the devices of several adb servers in one run (``--device adb@SERVER[/SERIAL],...``).

A team's phones hang off several machines, each with its own adb server (as DeviceFarmer/STF providers expose them).
``--device`` then names the server of each device:

- ``adb@SERVER``: every ready device that server lists (``adb:all`` there; each one left out is named, and why);
- ``adb@SERVER/SERIAL``: that device of that server; plain ``SERIAL`` items after it are on the same server
  (``adb@lab1/R58M123,R58M456``);
- several servers, comma-separated: ``adb@lab1/R58M123,adb@lab2``; an ``adb:SERIAL`` first item is on the default
  server (the one adb itself would use).

``SERVER`` is a name declared with ``--adb-server NAME=HOST:PORT`` or a literal ``HOST:PORT``. Each server is asked
once, is never started (it belongs to its host) and must answer. One device reached through two servers (the same
adb port on one host, or the same ``ro.serialno`` and boot id) is measured once, through the server named first,
with a note. The record names the server of each device (``device.adb.adb_server``, ``adb_server_name``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from .adb_server import AdbServer, NoServerError, ServerAddress, connect_server, server_address
from .transport import AdbError

_NAME = re.compile(r"[A-Za-z][\w.-]*")
_HOST_PORT = re.compile(r"(?:tcp:)?\[?([^\]\s,/@]+?)\]?:(\d{1,5})")


class LabError(AdbError):
    """``--device adb@...`` or ``--adb-server`` is malformed or names a server that is not declared."""


def is_lab(arg: str | None) -> bool:
    """Whether ``--device arg`` names a server (``adb@...``)."""
    return "adb@" in (arg or "")


def parse_servers(specs) -> dict[str, ServerAddress]:
    """``--adb-server NAME=HOST:PORT`` values (``tcp:HOST:PORT`` too) -> {name: address}."""
    servers: dict[str, ServerAddress] = {}
    for spec in specs or ():
        name, sep, where = str(spec).partition("=")
        name, where = name.strip(), where.strip()
        m = _HOST_PORT.fullmatch(where)
        if not sep or not _NAME.fullmatch(name) or not m or not 0 < int(m.group(2)) < 65536:
            raise LabError(f"--adb-server {spec} is not NAME=HOST:PORT (e.g. --adb-server lab1=10.0.0.5:5037)")
        addr = ServerAddress(m.group(1), int(m.group(2)), f"--adb-server {name}", name)
        if name in servers and servers[name] != addr:
            raise LabError(f"--adb-server {name} is declared twice, as {servers[name]} and {addr}: keep one")
        servers[name] = addr
    return servers


@dataclass
class ServerPick:
    """What one server is asked for: every ready device (``all``) or these serials."""

    addr: ServerAddress
    all: bool = False
    serials: list = field(default_factory=list)

    def device_arg(self) -> str:
        return "adb:all" if self.all else "adb:" + ",".join(self.serials)


def _server(text: str, servers: dict, arg: str) -> ServerAddress:
    if text in servers:
        return servers[text]
    m = _HOST_PORT.fullmatch(text)
    if m and 0 < int(m.group(2)) < 65536:
        return ServerAddress(m.group(1), int(m.group(2)), f"--device adb@{text}")
    near = difflib.get_close_matches(text, list(servers), n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    declared = f"declared: {', '.join(sorted(servers))}" if servers else "none is declared"
    raise LabError(
        f"--device {arg} names the unknown adb server '{text}'{hint}: declare it with --adb-server "
        f"{text}=HOST:PORT or write it as HOST:PORT ({declared})"
    )


def parse(arg: str, servers: dict | None = None, env=None) -> list[ServerPick]:
    """``--device adb@...`` -> one :class:`ServerPick` per server, in the order named."""
    servers = servers or {}
    picks: dict = {}
    current = None
    for i, item in enumerate(p.strip() for p in arg.split(",")):
        if not item:
            continue
        if item.startswith("adb@"):
            where, _, serial = item[4:].partition("/")
            current = _server(where.strip(), servers, arg)
        elif i == 0 and item.startswith("adb:"):
            current, serial = server_address(env), item[4:]
        elif current is not None and not item.startswith("adb"):
            serial = item
        else:
            raise LabError(
                f"--device {arg}: '{item}' names no server: write adb@SERVER[/SERIAL] (SERVER: a name "
                "from --adb-server, or HOST:PORT), or put plain serials after the adb@SERVER they are on"
            )
        pick = picks.setdefault((current.host.lower(), current.port), ServerPick(current))
        serial = serial.strip()
        if not serial or serial.lower() == "all":
            pick.all = True
        elif serial not in pick.serials:
            pick.serials.append(serial)
    if not picks:
        raise LabError(f"--device {arg} names no device: write adb@SERVER[/SERIAL]")
    return list(picks.values())


def several(arg: str) -> bool:
    """Whether ``adb@...`` may name more than one device (a whole server, or several items)."""
    items = [p.strip() for p in arg.split(",") if p.strip()]
    return len(items) > 1 or not items or "/" not in items[0] or items[0].rsplit("/", 1)[1].lower() in ("", "all")


def _same_host(a: ServerAddress, b: ServerAddress) -> bool:
    return (a.local and b.local) or a.host.lower() == b.host.lower()


def open_lab(arg: str, servers=None, connect_timeout: float = 10.0, env=None) -> tuple[list, list[str]]:
    """Open every device ``--device adb@...`` names, each through its own server; returns (devices, notes)."""
    from .selection import device_facts, endpoint, select

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


__all__ = ["AdbServer", "LabError", "ServerPick", "is_lab", "open_lab", "parse", "parse_servers", "several"]
