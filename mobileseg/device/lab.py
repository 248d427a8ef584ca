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

from .adb_server import AdbServer, ServerAddress, server_address
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


__all__ = ["AdbServer", "LabError", "ServerPick", "is_lab", "parse", "parse_servers", "several"]
