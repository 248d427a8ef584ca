"""A device-side ADB daemon in asyncio: the emulated ARM64 device that real ADB clients talk to over loopback TCP.

Wire protocol (AOSP ``protocol.txt`` / ``SYNC.TXT``): 24-byte little-endian headers (command, arg0, arg1, data length,
data checksum, command ^ 0xffffffff) followed by the payload. Implemented: CNXN, AUTH (token -> RSA signature checked
against an adb_keys file; public key accepted or refused), OPEN/OKAY/WRTE/CLSE with one-packet flow control,
``shell:`` (v1: merged output, no exit code), ``shell,v2,...:`` (packets stdin/stdout/stderr/exit/close-stdin),
``exec:`` and ``sync:`` (STAT, LIST, SEND, RECV, QUIT).

Quirks real clients depend on (docs/adb.md): the banner does not end with a NUL; a CLSE from the host is
echoed (adb-shell waits for it after sync); checksums are always sent (adb-shell verifies them); the protocol
version answered is the lower of the host's and ours.

Two back ends run the shell commands and serve the files:
- ``HostBackend``: the host's own ``/bin/sh`` and file system (fast tests of the protocol);
- ``RootfsBackend``: the arm64 rootfs under ``proot -r ROOTFS -q qemu-aarch64-static`` with ``QEMU_CPU=cortex-a76``
  (the emulated device); sync paths are mapped as the shell sees them. The rootfs is shared by every device and
  only read; each device's writable folders (``/data``, ``/sdcard``, ``/storage``, ``/tmp``) are its own
  (``--storage DIR``, bound with proot ``-b``), so two devices never see each other's files.

Fault modes for the host side's error messages: ``--refuse-new-keys`` (the "Allow USB debugging?" prompt is never
accepted), ``--refuse-auth`` (no key is accepted, known ones included: ``unauthorized``), ``--offline`` (connections
are accepted but CNXN is never answered: ``offline``).

Run: ``python -m mobileseg.emulator.adbd --port 5560 --adb-keys FILE [--rootfs DIR --profile P] [--refuse-auth]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import posixpath
import shutil
import signal
import struct
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("mobileseg.adbd")

A_SYNC, A_CNXN, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_AUTH = (
    int.from_bytes(c, "little") for c in (b"SYNC", b"CNXN", b"OPEN", b"OKAY", b"CLSE", b"WRTE", b"AUTH")
)
VERSION = 0x01000001
MAX_PAYLOAD = 1024 * 1024
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
SYNC_DATA_MAX = 64 * 1024
SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN, SHELL_WINDOW = range(6)
ANDROID_PUBKEY_WORDS = 64
WRITABLE = ("data", "sdcard", "storage", "tmp")  # the rootfs folders a device writes: each device gets its own


def checksum(data: bytes) -> int:
    return sum(data) & 0xFFFFFFFF


def pack(cmd: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    return struct.pack("<6I", cmd, arg0, arg1, len(data), checksum(data), cmd ^ 0xFFFFFFFF) + data


# ---------------------------------------------------------------------------------------------------------- auth
def parse_android_pubkey(line: str):
    """RSA public key from one adb_keys line: base64 of Android's RSAPublicKey struct, then an optional comment."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    raw = base64.b64decode(line.strip().split()[0])
    words = struct.unpack_from("<I", raw, 0)[0]
    if words != ANDROID_PUBKEY_WORDS:
        raise ValueError(f"unexpected modulus size {words} words")
    nbytes = words * 4
    n = int.from_bytes(raw[8 : 8 + nbytes], "little")
    e = struct.unpack_from("<I", raw, 8 + 2 * nbytes)[0]
    return rsa.RSAPublicNumbers(e, n).public_key()


class KeyStore:
    """The device's ``adb_keys``: public keys whose signatures are accepted; new keys are appended when accepted."""

    def __init__(self, path: str | os.PathLike | None, accept_new: bool = True, refuse_all: bool = False):
        self.path = Path(path) if path else None
        self.accept_new = accept_new and not refuse_all
        self.refuse_all = refuse_all  # a phone that revoked every authorisation and never shows the prompt

    def keys(self):
        if not self.path or not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            if line.strip():
                try:
                    out.append(parse_android_pubkey(line))
                except Exception as exc:  # a malformed line must not lock every key out
                    log.warning("ignoring adb_keys line: %s", exc)
        return out

    def verify(self, token: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        if self.refuse_all:
            return False
        for key in self.keys():
            try:  # the client signs the 20-byte token as if it were a SHA-1 digest
                key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
                return True
            except (InvalidSignature, ValueError):
                continue
        return False

    def add(self, pubkey_line: str) -> bool:
        """The user "accepted the prompt": store the key (when allowed); returns whether the key was accepted."""
        if not self.accept_new:
            return False
        try:
            parse_android_pubkey(pubkey_line)
        except Exception:
            return False
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            known = self.path.read_text().splitlines() if self.path.exists() else []
            if pubkey_line.strip() in (k.strip() for k in known):
                return True
            with open(self.path, "a") as f:
                f.write(pubkey_line.strip() + "\n")
        return True


# ------------------------------------------------------------------------------------------------------ back ends
class HostBackend:
    """Shell and files of the host itself (protocol tests)."""

    emulated = False

    def __init__(self, props: dict | None = None):
        self.props = props or {
            "ro.product.name": "mobileseg_host",
            "ro.product.model": "mobileseg host adbd",
            "ro.product.device": "host",
        }

    def shell_argv(self, command: str) -> list[str]:
        return ["/bin/sh", "-c", command] if command else ["/bin/sh"]

    def env(self) -> dict:
        return dict(os.environ)

    def cwd(self) -> str:
        return "/"

    def path(self, device_path: str) -> Path:
        return Path(device_path)


class RootfsBackend(HostBackend):
    """An arm64 rootfs under proot + qemu-aarch64-static (the emulated ARM64 device of one profile)."""

    emulated = True

    def __init__(
        self,
        rootfs: str | os.PathLike,
        cpu: str = "cortex-a76",
        profile: str | None = None,
        extra_env: dict | None = None,
    ):
        from . import device_files, profiles

        self.rootfs = Path(rootfs).resolve()
        self.extra_env = dict(extra_env or {})  # e.g. the Vulkan variant's VK_ICD_FILENAMES
        self.cpu = cpu
        self.profile = profiles.get(profile)
        # absolute: the device's PATH (the android profile's has no /usr/bin) is not where the host tools are
        self.proot = shutil.which("proot") or "proot"
        self.qemu = shutil.which("qemu-aarch64-static") or "qemu-aarch64-static"
        self.prelude = device_files.shell_prelude(self.profile)
        self.binds: list = []  # (host path, device path) bound with proot -b (storage, the thermal model's sysfs)
        # the banner carries what a phone's adbd sends: product name, model and device
        super().__init__(
            {
                k: self.profile.props[k]
                for k in ("ro.product.name", "ro.product.model", "ro.product.device")
                if k in self.profile.props
            }
        )

    def own_storage(self, folder: str | os.PathLike) -> list[str]:
        """Give this device its own writable storage in ``folder``: each writable top folder of the rootfs
        (:data:`WRITABLE`) is laid out there once (its folders and links with their modes, no files: what a device
        wrote into the shared rootfs before is not inherited) and bound over the shared one, for shells and sync.

        Several devices share one read-only rootfs; without this a file one device writes in ``/data/local/tmp`` is
        seen (and overwritten) by every other. Returns the device paths bound."""
        folder = Path(folder).resolve()
        bound = []

        def files(where, names):
            return [
                n
                for n in names
                if not os.path.isdir(os.path.join(where, n)) and not os.path.islink(os.path.join(where, n))
            ]

        for name in WRITABLE:
            shared = self.rootfs / name
            if shared.is_symlink() or not shared.is_dir():
                continue
            own = folder / name
            if not own.is_dir():  # keeps the modes (1777 of /data/local/tmp, /tmp)
                shutil.copytree(shared, own, symlinks=True, ignore=files)
            self.binds.append((str(own), "/" + name))
            bound.append("/" + name)
        return bound

    def shell_argv(self, command: str) -> list[str]:
        binds = [a for host, dev in self.binds for a in ("-b", f"{host}:{dev}" if host != dev else host)]
        return [
            self.proot,
            "-r",
            str(self.rootfs),
            "-q",
            self.qemu,
            "-b",
            "/dev",
            *binds,
            "-w",
            "/",
            self.profile.shell,
            *(["-c", self.prelude + command] if command else []),
        ]

    def env(self) -> dict:
        env = {
            "PATH": self.profile.path,
            "HOME": "/data/local/tmp" if self.profile.python else "/",
            "TMPDIR": "/data/local/tmp",
            "LANG": "C.UTF-8" if self.profile.python else "",
            "QEMU_CPU": self.cpu,
            "ANDROID_DATA": "/data",
            "ANDROID_ROOT": "/system",
            "ENV": "/system/etc/mkshrc" if self.prelude else "",
            "PROOT_NO_SECCOMP": os.environ.get("PROOT_NO_SECCOMP", ""),
            **self.extra_env,
        }
        return {k: v for k, v in env.items() if v}

    def _host(self, device_path: str) -> Path:
        """Host path of a normalised device path, through the binds (the longest bound prefix wins) or the rootfs."""
        for host, dev in sorted(self.binds, key=lambda b: -len(b[1])):
            dev = dev.rstrip("/") or "/"
            if device_path == dev or device_path.startswith(dev + "/"):
                return Path(host) / device_path[len(dev) :].lstrip("/")
        return self.rootfs / device_path.lstrip("/")

    def path(self, device_path: str) -> Path:
        """Host path of a device path as the device's shell sees it: the binds (its own storage) first, else inside
        the rootfs; symlinks are followed in the device's namespace, never out of it."""
        parts = list(Path(os.path.normpath("/" + device_path)).parts[1:])
        cur, hops = "/", 0
        while parts:
            part = parts.pop(0)
            nxt = posixpath.normpath(posixpath.join(cur, part))
            host = self._host(nxt)
            if host.is_symlink() and hops < 16:  # follow it on the device (an absolute target is the device's)
                target = os.readlink(host)
                hops += 1
                parts = list(Path(posixpath.normpath(posixpath.join(cur, target))).parts[1:]) + parts
                cur = "/"
                continue
            cur = nxt
        return self._host(cur)


# -------------------------------------------------------------------------------------------------------- streams
class Stream:
    def __init__(self, conn: "Connection", local_id: int, remote_id: int):
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.ready = asyncio.Event()  # the host acknowledged our last WRTE
        self.ready.set()
        self.closed = False
        self.task: asyncio.Task | None = None

    async def write(self, data: bytes) -> None:
        step = self.conn.max_data
        for i in range(0, len(data), step):
            await self.ready.wait()
            if self.closed:
                raise ConnectionResetError("stream closed by the host")
            self.ready.clear()
            await self.conn.send(A_WRTE, self.local_id, self.remote_id, data[i : i + step])

    async def read(self) -> bytes | None:
        """Next WRTE payload from the host, or None once the host closed the stream."""
        return await self.inbox.get()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.ready.set()
            self.inbox.put_nowait(None)
            await self.conn.send(A_CLSE, self.local_id, self.remote_id)
        self.conn.streams.pop(self.local_id, None)


class Connection:
    def __init__(self, daemon: "AdbDaemon", reader, writer):
        self.daemon, self.reader, self.writer = daemon, reader, writer
        self.lock = asyncio.Lock()
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.version = VERSION
        self.max_data = MAX_PAYLOAD
        self.online = False
        self.token = b""
        self.tasks: set[asyncio.Task] = set()

    async def send(self, cmd: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        async with self.lock:
            self.writer.write(pack(cmd, arg0, arg1, data))
            await self.writer.drain()

    async def read_packet(self):
        header = await self.reader.readexactly(24)
        cmd, arg0, arg1, length, _crc, magic = struct.unpack("<6I", header)
        if magic != cmd ^ 0xFFFFFFFF:
            raise ConnectionError("bad packet magic")
        data = await self.reader.readexactly(length) if length else b""
        return cmd, arg0, arg1, data

    def banner(self) -> bytes:
        props = ";".join(f"{k}={v}" for k, v in self.daemon.backend.props.items())
        return f"device::{props};features=shell_v2".encode()  # no trailing NUL: adb-shell rejects it

    async def serve(self) -> None:
        try:
            while True:
                cmd, arg0, arg1, data = await self.read_packet()
                await self.dispatch(cmd, arg0, arg1, data)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            for s in list(self.streams.values()):
                s.closed = True
                s.ready.set()
                s.inbox.put_nowait(None)
            for t in list(self.tasks):
                t.cancel()
            self.writer.close()

    async def dispatch(self, cmd, arg0, arg1, data) -> None:
        if self.daemon.offline:
            return
        if cmd == A_CNXN:
            self.version = min(arg0, VERSION)
            self.max_data = max(4096, min(arg1, MAX_PAYLOAD))
            self.online = False
            if self.daemon.keys is None:
                await self.go_online()
            else:
                await self.send_token()
        elif cmd == A_AUTH:
            await self.on_auth(arg0, data)
        elif not self.online:
            return  # real adbd ignores everything else until authorised
        elif cmd == A_OPEN:
            await self.on_open(arg0, data)
        elif cmd == A_OKAY:
            s = self.streams.get(arg1)
            if s:
                s.ready.set()
        elif cmd == A_WRTE:
            s = self.streams.get(arg1)
            if s is None:
                await self.send(A_CLSE, 0, arg0)
                return
            s.inbox.put_nowait(data)
            await self.send(A_OKAY, s.local_id, s.remote_id)
        elif cmd == A_CLSE:
            s = self.streams.get(arg1)
            if s is not None:  # echo it: adb-shell waits for the device's CLSE
                await s.close()
                if s.task:
                    s.task.cancel()

    async def send_token(self) -> None:
        self.token = os.urandom(20)
        await self.send(A_AUTH, AUTH_TOKEN, 0, self.token)

    async def go_online(self) -> None:
        self.online = True
        await self.send(A_CNXN, self.version, MAX_PAYLOAD, self.banner())

    async def on_auth(self, kind: int, data: bytes) -> None:
        if self.online or self.daemon.keys is None:
            return
        if kind == AUTH_SIGNATURE:
            if self.token and self.daemon.keys.verify(self.token, data):
                await self.go_online()
            else:
                await self.send_token()  # the client tries its next key, then offers its public key
        elif kind == AUTH_RSAPUBLICKEY:
            line = data.rstrip(b"\0").decode("ascii", "replace")
            if self.daemon.keys.add(line):
                log.info("accepted a new public key")
                await self.go_online()
            else:
                log.info("refused a public key (the prompt was not accepted)")
                # like a phone whose prompt is never accepted: stay silent, the client reports "unauthorized"

    async def on_open(self, remote_id: int, data: bytes) -> None:
        service = data.rstrip(b"\0").decode("utf-8", "replace")
        handler = self.daemon.service_handler(service)
        if handler is None:
            await self.send(A_CLSE, 0, remote_id)
            return
        local_id = self.next_id
        self.next_id += 1
        s = Stream(self, local_id, remote_id)
        self.streams[local_id] = s
        await self.send(A_OKAY, local_id, remote_id)
        s.task = asyncio.ensure_future(self.run_service(handler, s, service))
        self.tasks.add(s.task)
        s.task.add_done_callback(self.tasks.discard)

    async def run_service(self, handler, s: Stream, service: str) -> None:
        try:
            await handler(s, service)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # a bug in one service must not take the device down
            log.exception("service %r failed", service)
        finally:
            try:
                await s.close()
            except (ConnectionError, OSError, RuntimeError):
                pass


# ------------------------------------------------------------------------------------------------------- services
async def _kill(proc) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        await proc.wait()


class AdbDaemon:
    def __init__(
        self, backend: HostBackend, keys: KeyStore | None, storage_limit: int | None = None, offline: bool = False
    ):
        self.backend = backend
        self.keys = keys
        self.offline = offline  # accept TCP, never answer: what `adb devices` lists as "offline"
        self.storage_limit = storage_limit  # fault injection: a SEND beyond this many bytes fails "no space left"
        self.server: asyncio.base_events.Server | None = None
        self.connections: set[Connection] = set()
        self.on_spawn = None  # called with each shell command's process group (the thermal model tracks them)
        self.preexec = None  # run in each shell command's child before exec (the thermal model's cgroup)

    def service_handler(self, service: str):
        if service.startswith("shell") and ":" in service:
            return self.shell_service
        if service.startswith("exec:"):
            return self.exec_service
        if service.startswith("sync:"):
            return self.sync_service
        return None

    async def start(self, host: str, port: int):
        self.server = await asyncio.start_server(self.on_client, host, port)
        return self.server

    async def on_client(self, reader, writer) -> None:
        conn = Connection(self, reader, writer)
        self.connections.add(conn)
        try:
            await conn.serve()
        finally:
            self.connections.discard(conn)

    async def spawn(self, command: str, merge: bool, stdin_pipe: bool):
        b = self.backend
        proc = await asyncio.create_subprocess_exec(
            *b.shell_argv(command),
            stdin=asyncio.subprocess.PIPE if stdin_pipe else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if merge else asyncio.subprocess.PIPE,
            env=b.env(),
            cwd=b.cwd() if not b.emulated else None,
            start_new_session=True,
            **({"preexec_fn": self.preexec} if self.preexec else {}),
        )
        if self.on_spawn:
            self.on_spawn(proc.pid)
        return proc

    async def exec_service(self, s: Stream, service: str) -> None:
        """``exec:cmd``: raw stdout only, no exit code (what ``adb exec-out`` uses)."""
        proc = await self.spawn(service[len("exec:") :], merge=False, stdin_pipe=False)
        try:
            await self._pump(proc.stdout, s.write)
            await proc.wait()
        finally:
            await _kill(proc)

    async def shell_service(self, s: Stream, service: str) -> None:
        head, _, command = service.partition(":")
        args = head.split(",")[1:]
        if "v2" not in args:  # shell v1: merged output, the exit code is lost (clients append `; echo $?`)
            proc = await self.spawn(command, merge=True, stdin_pipe=not command)
            feeder = asyncio.ensure_future(self._feed_v1(s, proc)) if not command else None
            try:
                await self._pump(proc.stdout, s.write)
                await proc.wait()
            finally:
                if feeder:
                    feeder.cancel()
                await _kill(proc)
            return

        async def packet(kind: int, data: bytes) -> None:
            await s.write(struct.pack("<BI", kind, len(data)) + data)

        proc = await self.spawn(command, merge=False, stdin_pipe=True)
        feeder = asyncio.ensure_future(self._feed_v2(s, proc))
        try:
            await asyncio.gather(
                self._pump(proc.stdout, lambda d: packet(SHELL_STDOUT, d)),
                self._pump(proc.stderr, lambda d: packet(SHELL_STDERR, d)),
            )
            rc = await proc.wait()
            await packet(SHELL_EXIT, bytes([rc & 0xFF]))
        finally:
            feeder.cancel()
            await _kill(proc)

    @staticmethod
    async def _pump(pipe, sink) -> None:
        while True:
            chunk = await pipe.read(64 * 1024)
            if not chunk:
                return
            await sink(chunk)

    @staticmethod
    async def _feed_v1(s: Stream, proc) -> None:
        while (data := await s.read()) is not None:
            proc.stdin.write(data)
            await proc.stdin.drain()
        proc.stdin.close()

    @staticmethod
    async def _feed_v2(s: Stream, proc) -> None:
        buf = b""
        try:
            while (data := await s.read()) is not None:
                buf += data
                while len(buf) >= 5:
                    kind, length = struct.unpack_from("<BI", buf)
                    if len(buf) < 5 + length:
                        break
                    payload, buf = buf[5 : 5 + length], buf[5 + length :]
                    if kind == SHELL_STDIN and proc.stdin and not proc.stdin.is_closing():
                        proc.stdin.write(payload)
                        await proc.stdin.drain()
                    elif kind == SHELL_CLOSE_STDIN and proc.stdin:
                        proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            if proc.stdin and not proc.stdin.is_closing():
                proc.stdin.close()

    # ---- sync: file transfer
    async def sync_service(self, s: Stream, service: str) -> None:
        buf = bytearray()

        async def take(n: int) -> bytes:
            while len(buf) < n:
                data = await s.read()
                if data is None:
                    raise ConnectionResetError("sync stream closed")
                buf.extend(data)
            out = bytes(buf[:n])
            del buf[:n]
            return out

        async def fail(msg: str) -> None:
            m = msg.encode()
            await s.write(b"FAIL" + struct.pack("<I", len(m)) + m)

        while True:
            ident, length = struct.unpack("<4sI", await take(8))
            if ident == b"QUIT":
                return
            if ident in (b"STAT", b"LIST", b"RECV", b"SEND"):
                arg = (await take(length)).decode("utf-8", "replace")
            else:
                await fail(f"unknown sync request {ident!r}")
                return
            if ident == b"STAT":
                await s.write(b"STAT" + self._stat(arg))
            elif ident == b"LIST":
                await self._list(s, arg)
            elif ident == b"RECV":
                await self._recv(s, arg, fail)
            elif ident == b"SEND":
                await self._send(arg, take, s, fail)

    def _stat(self, device_path: str) -> bytes:
        try:
            st = os.stat(self.backend.path(device_path))
            return struct.pack("<3I", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
        except OSError:
            return struct.pack("<3I", 0, 0, 0)

    async def _list(self, s: Stream, device_path: str) -> None:
        path = self.backend.path(device_path)
        try:
            names = [".", ".."] + sorted(os.listdir(path))
        except OSError:
            names = []
        out = bytearray()
        for name in names:
            try:
                st = os.lstat(path / name)
            except OSError:
                continue
            raw = name.encode()
            out += (
                b"DENT"
                + struct.pack("<4I", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(raw))
                + raw
            )
            if len(out) > SYNC_DATA_MAX:
                await s.write(bytes(out))
                out.clear()
        out += b"DONE" + struct.pack("<4I", 0, 0, 0, 0)
        await s.write(bytes(out))

    async def _recv(self, s: Stream, device_path: str, fail) -> None:
        try:
            f = open(self.backend.path(device_path), "rb")
        except OSError as exc:
            await fail(exc.strerror or str(exc))
            return
        with f:
            while chunk := f.read(SYNC_DATA_MAX):
                await s.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        await s.write(b"DONE" + struct.pack("<I", 0))

    async def _send(self, arg: str, take, s: Stream, fail) -> None:
        device_path, _, mode_s = arg.rpartition(",")
        if not device_path:
            device_path, mode_s = arg, "33188"
        try:
            mode = int(mode_s) & 0o7777 or 0o644
        except ValueError:
            mode = 0o644
        path = self.backend.path(device_path)
        error = None
        tmp = path.with_name(f".{path.name}.adbd-tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(tmp, "wb")
        except OSError as exc:
            error, f = exc.strerror or str(exc), None
        written = 0
        mtime = 0
        while True:  # always drain the DATA chunks, even after an error: the client keeps sending
            ident, length = struct.unpack("<4sI", await take(8))
            if ident == b"DATA":
                chunk = await take(length)
                written += len(chunk)
                if f and error is None:
                    if self.storage_limit is not None and written > self.storage_limit:
                        error = "No space left on device"
                    else:
                        try:
                            f.write(chunk)
                        except OSError as exc:
                            error = exc.strerror or str(exc)
            elif ident == b"DONE":
                mtime = length
                break
            else:
                error = error or f"unexpected sync packet {ident!r} during SEND"
                break
        if f:
            f.close()
            if error is None:
                os.chmod(tmp, mode)
                os.replace(tmp, path)
                if mtime:
                    os.utime(path, (mtime, mtime))
            else:
                tmp.unlink(missing_ok=True)
        if error:
            await fail(error)
        else:
            await s.write(b"OKAY" + struct.pack("<I", 0))


# ------------------------------------------------------------------------------------------------------------ main
async def serve(args) -> None:
    if args.rootfs:
        from . import device_files

        device_files.install(Path(args.rootfs), args.profile)
        backend: HostBackend = RootfsBackend(
            args.rootfs, cpu=args.cpu, profile=args.profile, extra_env=dict(kv.split("=", 1) for kv in args.env)
        )
        # this device's own /data, /sdcard, /tmp: a folder given (kept), or one of its own removed at exit
        scratch = None if args.storage else tempfile.mkdtemp(prefix="mobileseg-storage-")
        backend.own_storage(args.storage or scratch)
    else:
        backend, scratch = HostBackend(), None
    keys = (
        None
        if args.no_auth
        else KeyStore(args.adb_keys, accept_new=not args.refuse_new_keys, refuse_all=args.refuse_auth)
    )
    daemon = AdbDaemon(backend, keys, storage_limit=args.storage_limit, offline=args.offline)
    sim = None
    if args.thermal_sim and args.rootfs:  # mobileseg.emulator.thermal: heat with load, throttle past a trip
        from .thermal import ThermalSim

        sim = ThermalSim(Path(args.rootfs), args.thermal_sim)
        backend.binds += sim.binds()
        daemon.on_spawn = sim.track
        daemon.preexec = sim.preexec
        sim.start()
    if args.host_proc and args.rootfs:  # the kernel's /proc (memory figures), the device's own cpuinfo and mounts
        backend.binds += [("/proc", "/proc")] + [
            (str(Path(args.rootfs) / "proc" / f), f"/proc/{f}") for f in ("cpuinfo", "mounts")
        ]
    server = await daemon.start(args.host, args.port)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        Path(args.port_file).write_text(f"{port}\n")
    print(
        f"adbd listening on {args.host}:{port} ({'rootfs ' + str(args.rootfs) if args.rootfs else 'host'})", flush=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    if sim:
        sim.close()
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mobileseg.emulator.adbd", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5555, help="TCP port (0: any free port, see --port-file)")
    p.add_argument("--port-file", default=None)
    p.add_argument("--adb-keys", default=None, help="adb_keys file of authorised public keys")
    p.add_argument("--refuse-new-keys", action="store_true", help="never accept an unknown key (prompt refused)")
    p.add_argument(
        "--refuse-auth", action="store_true", help="refuse every key, known ones too: the device stays 'unauthorized'"
    )
    p.add_argument(
        "--offline", action="store_true", help="accept connections but never complete CNXN: the device stays 'offline'"
    )
    p.add_argument("--no-auth", action="store_true", help="skip AUTH (like a device with ro.adb.secure=0)")
    p.add_argument("--rootfs", default=None, help="serve this arm64 rootfs under proot+qemu (default: the host)")
    p.add_argument("--profile", default=None, help="what the rootfs is: debian (default) or android")
    p.add_argument("--cpu", default="cortex-a76")
    p.add_argument(
        "--storage",
        default=None,
        metavar="DIR",
        help="this device's own writable /data, /sdcard, /storage and /tmp live here, bound over the "
        "shared rootfs's (default: a folder of its own, removed when the daemon exits)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set this in every shell command of the rootfs (repeatable)",
    )
    p.add_argument("--storage-limit", type=int, default=None, help="fault injection: bytes one push may write")
    p.add_argument(
        "--host-proc",
        action="store_true",
        help="bind the kernel's /proc (keeping the device's cpuinfo and mounts), so that /proc/self/status, "
        "smaps_rollup and clear_refs work: the harnesses' memory figures (off by default: the host's "
        "boot id and meminfo would show through)",
    )
    p.add_argument(
        "--thermal-sim",
        default=None,
        metavar="SPEC",
        help="simulate heat and throttling with load (mobileseg.emulator.thermal; SPEC: default, or "
        "rise=,tau=,trip=,drop=,floor=,period=)",
    )
    p.add_argument("--verbose", "-v", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="adbd %(levelname)s %(message)s",
    )
    if args.rootfs and not shutil.which("proot"):
        print("adbd: proot is not installed (sudo apt-get install proot qemu-user-static)", file=sys.stderr)
        return 2
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
