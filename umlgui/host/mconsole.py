"""The UML management console (mconsole): client, server and notification socket.

Protocol reference: /work/shared/reference/UML-INTERFACES.md §2. In short, a request is one
AF_UNIX datagram `<magic 0xCAFEBABE, version 2, len>` + text; a reply is one or more datagrams
`<err, more, len>` + a NUL-terminated chunk of at most 511 bytes, sent to the request's
source address (so a client must bind a name of its own).

Client (used by the worker for both engines)::

    client = MconsoleClient("/run/.../NAME/NAME/mconsole", timeout=5.0)
    client.version()                     # "Linux (none) 6.1.176 #1 ..."
    reply = client.request("proc meminfo")   # MconsoleReply(err=0, text="\\nMemTotal: ...")
    client.request_checked("config ubd1=disk.img")   # raises MconsoleCommandError on err != 0
    client.close()

Errors: MconsoleUnavailable (no socket / nobody listening: not running or still booting),
MconsoleTimeout (no answer in time), MconsoleCommandError (the kernel said no),
MconsoleProtocolError (the peer does not speak mconsole). All are UmlguiError.

Server (used by the `tt` engine, umlgui/kernel/tt/, to serve the same protocol)::

    class Handler:
        # One method per command, each given the argument text after the command word.
        # Return None (empty OK), a str (OK with text) or (err, text); raising an
        # exception answers err=1 with its message. Missing methods answer err=1.
        def version(self, arg): return "Linux tt 0.1 #1 x86_64"
        def halt(self, arg): self.halt_requested = True      # act *after* the reply
        def proc(self, arg): return (1, "Failed to open file") or "file contents"
        def sysrq(self, arg): return "line 1\\nline 2\\n"     # kernel log lines printed
        # also: reboot, config, remove, help (optional, a UML-like default), cad, log,
        # stack, and optional hooks stop(arg) / go(arg) to freeze / thaw the guest.

    server = MconsoleServer(path, Handler())
    selector.register(server.fileno(), EVENT_READ)       # in the owner's own loop
    ...
    served = server.handle_ready()     # serves one datagram; returns the command name or None
    if served == "stop":
        server.serve_while_stopped()   # blocks, answering mconsole only, until "go"
    elif served in ("halt", "reboot"):
        ...                            # the reply has been sent already: act now

`server.serve_forever(stop_event)` runs a whole loop (for tests). Replies are chunked exactly
as UML does: ≤511 bytes per datagram, `proc` output as "\\n", the file, then an empty final
chunk; `sysrq`/`stack` output one chunk per line, then an empty final chunk.

Notification socket (`mconsole=notify:PATH`)::

    listener = NotifyListener(path)    # bind before the kernel starts
    note = listener.read(timeout=10)   # Notification(type=NotifyType.SOCKET, data=b"/.../mconsole\\0")
    note.text                          # "/.../mconsole"
    listener.close()                   # unlinks the socket file

    send_socket_notification(path, mconsole_path)   # what the tt engine sends on each boot
    send_notification(path, NotifyType.PANIC, b"message\\0")
"""

from __future__ import annotations

import enum
import errno
import itertools
import os
import re
import secrets
import select
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from umlgui.errors import UmlguiError

MCONSOLE_MAGIC = 0xCAFEBABE
MCONSOLE_VERSION = 2
MAX_REQUEST_TEXT = 511        # a request's `len` must be < 512
MAX_CHUNK = 511               # reply text per datagram, plus a NUL
PROC_READ_SIZE = 4095         # UML reads /proc files in blocks of this size, chunking each
LOG_CHUNK = 506               # uml_mconsole sends long `log` text in pieces of this size
SEND_TIMEOUT_SECONDS = 2      # how long the server waits for a client that does not read
# UML sends a reply's datagrams in one burst from a non-blocking socket; the client's queue
# holds only net.unix.max_dgram_qlen (often 10) of them, so the tail of a long reply (sysrq
# output at log level 8, a big /proc file) can be lost. A reply that stalls this long after
# it started is returned as it is, marked truncated.
CONTINUATION_TIMEOUT = 1.0
MAX_UNIX_PATH = 107           # sun_path is 108 bytes including the NUL

REQUEST_HEADER = struct.Struct("<III")     # magic, version, len
REPLY_HEADER = struct.Struct("<III")       # err, more, len
NOTIFY_HEADER = struct.Struct("<IIII")     # magic, version, type, len
WATCHDOG_HANG = struct.Struct("<QIII4x")   # uml_watchdog's 64-bit layout (C `long` magic)

RAW_VERSION_ERROR = b"ERR Version 0 mconsole clients are not supported by this driver"
VERSION_MISMATCH_TEXT = "This driver only supports version 2 clients"

# UML matches a request's text by prefix, in this order ("versionXYZ" runs version).
COMMAND_ORDER = ("version", "halt", "reboot", "config", "remove", "sysrq", "help",
                 "cad", "stop", "go", "log", "proc", "stack")

# The stop/go hazard (UML-INTERFACES.md §2.5): while stopped, UML runs every command inline,
# and commands that may sleep (`proc`, `config`, ...) can let the normal interrupt path read the
# now-blocking socket, leaving the instance wedged for good. Only these are safe while stopped;
# the worker refuses the others until `go`. Not `halt` or `reboot`: sent while stopped, either
# panics the guest ("Segfault with no mm", verified with UML 6.1); the worker's own halt and
# reboot resume the guest first.
STOP_SAFE_COMMANDS = ("version", "sysrq", "go")

SETTLE_TIMEOUT_S = 15.0    # a guest with a big dirty cache on a loaded host


def settle_filesystems(client: "MconsoleClient", devices, timeout: float = SETTLE_TIMEOUT_S) -> bool:
    """Sync the guest's filesystems, remount them read-only, and wait until its ext4 disks
    (`devices`, as the guest names them: ubda, ...) say "ro". sysrq s and u only queue that
    work inside the guest: a halt sent right after them lost a file written just before (it
    was gone on the next boot). Only for a running guest: `proc` can wedge a stopped one.
    False if a disk was still writable at the deadline, or the guest's kernel.sysrq setting
    does not allow the remount."""
    allowed = _remount_allowed(client.request("proc sys/kernel/sysrq"))
    client.request("sysrq s")
    client.request("sysrq u")
    if not allowed:
        return False
    probes = [f"proc fs/ext4/{device}/options" for device in devices]
    deadline = time.monotonic() + timeout
    while True:
        probes = [probe for probe in probes if _mounted_writable(client.request(probe))]
        if not probes:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


SYSRQ_ENABLE_REMOUNT = 0x20     # kernel.sysrq's bit for `u` (Documentation/admin-guide/sysrq.rst)


def _remount_allowed(reply: "MconsoleReply") -> bool:
    """kernel.sysrq is 0 (off), 1 (all keys) or a bitmask. Read from the setting, not from the
    reply to `sysrq u`: the kernel's "Emergency Remount R/O" line reaches that reply only when
    printk flushes it in time, and a halt taken for refused lost a file in a CI run. A value that
    cannot be read counts as allowed: the wait is bounded."""
    try:
        value = int(reply.text.split()[0])
    except (IndexError, ValueError):
        return True
    return value == 1 or bool(value & SYSRQ_ENABLE_REMOUNT)


def _mounted_writable(reply: "MconsoleReply") -> bool:
    """An ext4 options file's first word is rw or ro; a disk not mounted as ext4 has none."""
    return reply.ok and reply.text.split()[:1] == ["rw"]


# SysRq actions offered in a menu, in menu order. Availability depends on the guest kernel's
# configuration and its kernel.sysrq setting.
SYSRQ_KEYS: dict[str, str] = {
    "s": "Sync all mounted filesystems",
    "u": "Remount all filesystems read-only",
    "e": "Terminate all processes (SIGTERM, except init)",
    "i": "Kill all processes (SIGKILL, except init)",
    "f": "Run the OOM killer",
    "o": "Power off",
    "b": "Reboot immediately (no sync, no unmount)",
    "c": "Crash the kernel (panic)",
    "m": "Show memory usage",
    "p": "Show registers",
    "w": "Show blocked (uninterruptible) tasks",
    "l": "Show a backtrace of all active CPUs",
    "q": "Show timers",
    "t": "Show all tasks",
    "j": "Thaw frozen filesystems",
    "n": "Make real-time tasks nice-able",
    "k": "Secure attention key (kill programs on the current console)",
    **{str(level): f"Set console log level to {level}" for level in range(10)},
}

# Keys that take the guest down: a GUI should ask before sending them, and
# MconsoleClient.sysrq() refuses them unless told the user confirmed.
DANGEROUS_SYSRQ: dict[str, str] = {
    "t": "Panics this guest kernel (6.1.176 under UML) instead of listing tasks.",
    "c": "Crashes the kernel on purpose: the machine panics and stops (exit status 134).",
}

DEFAULT_HELP = (
    "Commands: \n"
    "    version - Get kernel version \n"
    "    help - Print this message \n"
    "    halt - Halt UML \n"
    "    reboot - Reboot UML \n"
    "    config <dev>=<config> - Add a new device to UML;  \n"
    "\tsame syntax as command line \n"
    "    config <dev> - Query the configuration of a device \n"
    "    remove <dev> - Remove a device from UML \n"
    "    sysrq <letter> - Performs the SysRq action controlled by the letter \n"
    "    cad - invoke the Ctrl-Alt-Del handler \n"
    "    stop - pause the UML; it will do nothing until it receives a 'go' \n"
    "    go - continue the UML after a 'stop' \n"
    "    log <string> - make UML enter <string> into the kernel log\n"
    "    proc <file> - returns the contents of the UML's /proc/<file>\n"
    "    stack <pid> - returns the stack of the specified pid\n"
)


# --------------------------------------------------------------------------------------------
# Errors


class MconsoleError(UmlguiError):
    """Anything that went wrong talking to a machine's management console."""


class MconsoleUnavailable(MconsoleError):
    """Nothing listens on the mconsole socket (machine not running, or still booting)."""


class MconsoleTimeout(MconsoleError):
    """The machine did not answer a request in time."""


class MconsoleProtocolError(MconsoleError):
    """The peer answered with something that is not an mconsole reply."""


class MconsoleCommandError(MconsoleError):
    """The kernel answered a command with an error; `problem` is the kernel's own text."""

    def __init__(self, err: int, text: str, command: str = ""):
        self.err = err
        self.text = text
        self.command = command
        name = _errno_name(err)
        problem = text.strip() or f"mconsole '{command}' failed" + (f" ({name})" if name else "")
        super().__init__(problem, _fix_for(command, err))


def _fix_for(command: str, err: int) -> str:
    word = command.split(" ", 1)[0]
    if word == "config":
        if err == -errno.EBUSY:
            return "The device is in use or already configured; remove it first."
        return "Check the device spec (e.g. ubd1=/abs/path/disk.img) and that the file exists."
    if word == "remove":
        return "Check the device name (e.g. ubd1, eth0) and that the guest no longer uses it."
    if word == "proc":
        return "Give a file path relative to the guest's /proc, e.g. 'meminfo'."
    if word == "stack":
        return "Give the PID of a process running in the guest."
    if word == "go":
        return "The machine is already running."
    return "Check the command; 'help' lists the commands the machine accepts."


def _errno_name(err: int) -> str | None:
    return errno.errorcode.get(-err) if err < 0 else None


def _signed(value: int) -> int:
    """UML stores negative errnos in an unsigned 32-bit field."""
    return value - (1 << 32) if value & 0x80000000 else value


def _check_socket_path(path: str, what: str) -> None:
    if len(os.fsencode(path)) > MAX_UNIX_PATH:
        raise MconsoleError(
            f"The {what} path is {len(os.fsencode(path))} bytes long; unix sockets allow at most "
            f"{MAX_UNIX_PATH}: {path}",
            "Use a shorter directory for machine sockets (UMLGUI_RUNTIME or a shorter uml_dir).")


# --------------------------------------------------------------------------------------------
# Client


@dataclass
class MconsoleReply:
    """A reassembled reply. `err` is 0 on success, 1 for UML's generic error, or -errno."""

    err: int
    text: str
    warning: str = ""      # e.g. the version-mismatch reply that preceded the real one
    truncated: bool = False    # the reply stopped arriving before its last datagram

    @property
    def ok(self) -> bool:
        return self.err == 0

    @property
    def errno_name(self) -> str | None:
        """"EINVAL" for err == -22; None for success and UML's generic error 1."""
        return _errno_name(self.err)


_client_ids = itertools.count()
_UBD_CONFIG = re.compile(r"^(config\s+ubd[^=\s]*=)(.*)$", re.DOTALL)


def absolutize_ubd_config(command: str, cwd: str | os.PathLike | None = None) -> str:
    """Make the file and backing file of `config ubdN=file[,backing[,serial]]` absolute.

    UML resolves relative names against its own working directory, which is not the
    caller's; uml_mconsole rewrites them the same way before sending.
    """
    match = _UBD_CONFIG.match(command)
    if not match:
        return command
    base = os.fspath(cwd) if cwd is not None else os.getcwd()
    fields = match.group(2).split(",")
    for index in range(min(2, len(fields))):
        if fields[index] and not os.path.isabs(fields[index]):
            fields[index] = os.path.normpath(os.path.join(base, fields[index]))
    return match.group(1) + ",".join(fields)


class MconsoleClient:
    """Talks to one machine's mconsole socket. Thread-safe; one request at a time."""

    def __init__(self, socket_path: str | os.PathLike, timeout: float = 5.0, *,
                 protocol_version: int = MCONSOLE_VERSION):
        """`protocol_version` other than 2 exists only to exercise servers' version checks."""
        self.socket_path = os.fspath(socket_path)
        _check_socket_path(self.socket_path, "mconsole socket")
        self.timeout = timeout
        self.protocol_version = protocol_version
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # UML sendto()s replies to the request's source: without a name of our own we would
        # never hear back. An abstract name leaves nothing behind in the filesystem.
        self.address = (f"\0umlgui-mconsole-{os.getpid()}-{next(_client_ids)}-"
                        f"{secrets.token_hex(4)}")
        self._sock.bind(self.address)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> MconsoleClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the protocol ---------------------------------------------------------------------

    def request(self, command: str, timeout: float | None = None) -> MconsoleReply:
        """Send one command (as typed to uml_mconsole) and return the reassembled reply.

        `log` text longer than one request allows is sent in several requests; relative
        ubd file names in `config` are made absolute.
        """
        if command.startswith("log ") and len(command.encode()) > MAX_REQUEST_TEXT:
            return self._request_log(command[len("log "):], timeout)
        command = absolutize_ubd_config(command)
        payload = self._encode(command)
        wait = self.timeout if timeout is None else timeout
        with self._lock:
            self._drain_stale_replies()
            self._send(payload)
            reply = self._receive_reply(command, wait)
            if reply.err == 1 and reply.text == VERSION_MISMATCH_TEXT:
                # UML complains about the version and then runs the command anyway.
                try:
                    second = self._receive_reply(command, wait)
                except MconsoleTimeout:
                    return reply
                second.warning = reply.text
                return second
            return reply

    def _request_log(self, text: str, timeout: float | None) -> MconsoleReply:
        reply = MconsoleReply(0, "")
        for piece in _split_utf8(text.encode(), LOG_CHUNK):
            reply = self.request("log " + piece, timeout)
            if not reply.ok:
                break
        return reply

    def request_checked(self, command: str, timeout: float | None = None) -> MconsoleReply:
        """Like request(), but raise MconsoleCommandError when the kernel reports an error."""
        reply = self.request(command, timeout)
        if not reply.ok:
            raise MconsoleCommandError(reply.err, reply.text, command)
        return reply

    def _encode(self, command: str) -> bytes:
        text = command.encode()
        if b"\0" in text:
            raise MconsoleError(f"The mconsole command contains a NUL byte: {command!r}",
                                "Remove the NUL character from the command.")
        if len(text) > MAX_REQUEST_TEXT:
            raise MconsoleError(
                f"The mconsole command is {len(text)} bytes long; at most {MAX_REQUEST_TEXT} "
                "fit in one request.", "Shorten the command (only 'log' text is split).")
        return REQUEST_HEADER.pack(MCONSOLE_MAGIC, self.protocol_version, len(text)) + text

    def _send(self, payload: bytes) -> None:
        try:
            self._sock.sendto(payload, self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            raise MconsoleUnavailable(
                f"The machine's management console at {self.socket_path} is not there "
                f"({exc.strerror}): the machine is not running or is still booting.",
                "Start the machine, or wait a moment for it to finish booting and try again."
            ) from exc
        except PermissionError as exc:
            raise MconsoleUnavailable(
                f"No permission to use the management console at {self.socket_path}.",
                "Run umlgui as the user who started the machine.") from exc

    def _drain_stale_replies(self) -> None:
        """Discard late answers to earlier requests that timed out."""
        while True:
            try:
                self._sock.recv(1024, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return

    def _receive_datagram(self, command: str, wait: float) -> bytes:
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MconsoleTimeout(
                    f"The machine did not answer the mconsole command '{command}' within "
                    f"{wait:g} s.",
                    "It may be busy, paused with 'stop' (send 'go'), or hung: wait and retry; "
                    "if it never answers, halt or kill it.")
            readable, _, _ = select.select([self._sock], [], [], remaining)
            if readable:
                return self._sock.recv(1024)

    def _receive_reply(self, command: str, wait: float) -> MconsoleReply:
        chunks: list[bytes] = []
        err = 0
        while True:
            if chunks:
                try:
                    datagram = self._receive_datagram(command, min(wait, CONTINUATION_TIMEOUT))
                except MconsoleTimeout:
                    return MconsoleReply(
                        err, b"".join(chunks).decode(errors="replace"),
                        warning="The reply was cut off: the machine sent more datagrams than "
                                "the socket queue holds (net.unix.max_dgram_qlen).",
                        truncated=True)
            else:
                datagram = self._receive_datagram(command, wait)
            if not chunks and datagram.startswith(b"ERR Version"):
                # Bad magic: UML answers with bare text and no header.
                return MconsoleReply(1, datagram.decode(errors="replace"))
            if len(datagram) < REPLY_HEADER.size:
                raise MconsoleProtocolError(
                    f"The socket {self.socket_path} answered {len(datagram)} bytes, which is "
                    "not an mconsole reply.",
                    "Check that the path is a UML management console socket.")
            raw_err, more, length = REPLY_HEADER.unpack_from(datagram)
            if not chunks:
                err = _signed(raw_err)
            chunks.append(datagram[REPLY_HEADER.size:REPLY_HEADER.size + length]
                          .partition(b"\0")[0])
            if not more:
                return MconsoleReply(err, b"".join(chunks).decode(errors="replace"))

    # -- commands -------------------------------------------------------------------------

    def version(self) -> str:
        """The guest kernel's uname line; a cheap liveness probe."""
        return self.request_checked("version").text

    def halt(self) -> None:
        """Halt at once (no sync, no userspace shutdown); the kernel process exits 0."""
        self.request_checked("halt")

    def reboot(self) -> None:
        """Restart at once; the kernel re-executes itself in the same host process."""
        self.request_checked("reboot")

    def cad(self) -> None:
        """Ctrl-Alt-Del: the guest init decides (usually a reboot)."""
        self.request_checked("cad")

    def stop(self) -> str:
        """Freeze the guest. See STOP_SAFE_COMMANDS for what may be sent until go()."""
        return self.request_checked("stop").text

    def go(self) -> None:
        """Resume a guest frozen by stop()."""
        self.request_checked("go")

    def sysrq(self, key: str, *, confirmed: bool = False) -> str:
        """Run a SysRq action and return the kernel log lines it printed.

        Keys in DANGEROUS_SYSRQ take the guest down and need `confirmed=True`.
        """
        if len(key) != 1 or not key.isprintable() or key.isspace():
            raise MconsoleError(f"A SysRq key is one letter or digit, not {key!r}.",
                                "Pick a key from the SysRq menu, e.g. 'm' or 's'.")
        if key in DANGEROUS_SYSRQ and not confirmed:
            raise MconsoleError(f"SysRq '{key}' is dangerous: {DANGEROUS_SYSRQ[key]}",
                                "Confirm that you want this before sending it.")
        return self.request_checked(f"sysrq {key}").text

    def log(self, text: str, timeout: float | None = None) -> None:
        """Add `text` to the guest's kernel log (it shows on the console).

        Long text goes out in several requests, as uml_mconsole does it; a final newline is
        added when missing so the next kernel message starts a line of its own.
        """
        if not text.endswith("\n"):
            text += "\n"
        reply = self._request_log(text, timeout)
        if not reply.ok:
            raise MconsoleCommandError(reply.err, reply.text, "log")

    def proc(self, path: str, timeout: float | None = None) -> str:
        """Contents of the guest's /proc/<path> (read by the kernel itself)."""
        text = self.request_checked(f"proc {path}", timeout).text
        # UML sends a lone "\n" before the file contents.
        return text[1:] if text.startswith("\n") else text

    def help(self) -> str:
        return self.request_checked("help").text

    def config(self, spec: str, timeout: float | None = None) -> str:
        """`config ubd1=FILE` adds a device; `config con0` (no '=') queries one."""
        return self.request_checked(f"config {spec}", timeout).text

    def remove(self, device: str, timeout: float | None = None) -> None:
        self.request_checked(f"remove {device}", timeout)

    def stack(self, pid: int) -> str:
        """Kernel stack of guest process `pid`, as printed to the log."""
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise MconsoleError(f"A guest process ID is a positive number, not {pid!r}.",
                                "Give the PID of a process running in the guest.")
        return self.request_checked(f"stack {pid}").text


def _split_utf8(data: bytes, size: int) -> list[str]:
    """Split encoded text into pieces of at most `size` bytes without cutting a character."""
    pieces = []
    while data:
        cut = min(size, len(data))
        while cut < len(data) and cut > 0 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        pieces.append(data[:cut].decode())
        data = data[cut:]
    return pieces


# --------------------------------------------------------------------------------------------
# Server


def _bind_datagram_socket(path: str, what: str) -> socket.socket:
    """Bind a fresh AF_UNIX datagram socket at `path`, replacing a stale socket file."""
    _check_socket_path(path, what)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise MconsoleError(f"{path} exists and is not a socket; refusing to replace it.",
                                f"Move the file away or choose another path for the {what}.")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise MconsoleError(f"Cannot create the {what} at {path}: {exc.strerror}.",
                            "Check that the directory exists and is writable.") from exc
    sock.setblocking(False)
    return sock


class MconsoleServer:
    """Serves the mconsole protocol on a datagram socket, delegating commands to `handler`.

    See the module docstring for the handler contract and how to integrate the server into
    an event loop.
    """

    def __init__(self, socket_path: str | os.PathLike, handler: object):
        self.socket_path = os.fspath(socket_path)
        self.handler = handler
        self.stopped = False
        self._client_gone = False
        self._sock = _bind_datagram_socket(self.socket_path, "mconsole socket")
        # A long reply outruns the client's receive queue (net.unix.max_dgram_qlen, often 10
        # datagrams): sends block until the client reads, but never longer than this.
        self._sock.setblocking(True)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                              struct.pack("ll", SEND_TIMEOUT_SECONDS, 0))

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        """Close and unlink the socket (UML removes it on halt and reboot)."""
        self._sock.close()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> MconsoleServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- loops ----------------------------------------------------------------------------

    def handle_ready(self) -> str | None:
        """Serve one pending request, if any. Returns the command served, else None.

        The reply is sent before this returns, so the caller can act on "halt", "reboot"
        or "stop" afterwards.
        """
        try:
            datagram, origin = self._sock.recvfrom(1024, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        return self._serve(datagram, origin)

    def serve_while_stopped(self, stop_event: threading.Event | None = None) -> str | None:
        """After a `stop`: answer only mconsole requests until `go` (or halt/reboot).

        Returns the command that ended the pause ("go", "halt", "reboot"), or None when
        `stop_event` was set first.
        """
        while self.stopped:
            if stop_event is not None and stop_event.is_set():
                return None
            if not self._wait_readable(0.1 if stop_event is not None else None):
                continue
            served = self.handle_ready()
            if served in ("halt", "reboot"):
                self.stopped = False
                return served
        return "go"

    def serve_forever(self, stop_event: threading.Event,
                      on_command: Callable[[str], None] | None = None) -> None:
        """Serve until `stop_event` is set; `on_command(name)` runs after each reply."""
        while not stop_event.is_set():
            if self._wait_readable(0.05):
                served = self.handle_ready()
                if served and on_command:
                    on_command(served)

    def _wait_readable(self, timeout: float | None) -> bool:
        try:
            readable, _, _ = select.select([self._sock], [], [], timeout)
        except InterruptedError:
            return False
        return bool(readable)

    # -- protocol -------------------------------------------------------------------------

    def _serve(self, datagram: bytes, origin) -> str | None:
        self._client_gone = False
        if not origin:
            return None     # an unbound client cannot be answered (UML would fail too)
        if len(datagram) < REQUEST_HEADER.size or \
                REQUEST_HEADER.unpack_from(datagram)[0] != MCONSOLE_MAGIC:
            self._sendto(RAW_VERSION_ERROR, origin)
            return None
        _, version, length = REQUEST_HEADER.unpack_from(datagram)
        if length > MAX_REQUEST_TEXT:
            self._reply(origin, 1, "Request too large")
            return None
        text = datagram[REQUEST_HEADER.size:REQUEST_HEADER.size + length]
        text = text.partition(b"\0")[0].decode(errors="replace")
        if version != MCONSOLE_VERSION:
            self._reply(origin, 1, VERSION_MISMATCH_TEXT)     # and still run the command
        name = next((name for name in COMMAND_ORDER if text.startswith(name)), None)
        if name is None:
            self._reply(origin, 1, "Unknown command")
            return None
        getattr(self, f"_cmd_{name}", self._cmd_generic)(name, text, origin)
        return name

    def _argument(self, name: str, text: str) -> str:
        if name == "log":
            return text[len("log "):]     # UML skips exactly "log " and keeps the rest
        return text[len(name):].lstrip()

    def _call(self, name: str, arg: str) -> tuple[int, str]:
        method = getattr(self.handler, name, None)
        if method is None:
            if name == "help":
                return 0, DEFAULT_HELP
            return 1, f"{name} is not supported by this machine"
        try:
            result = method(arg)
        except UmlguiError as exc:
            return 1, exc.problem
        except Exception as exc:   # noqa: BLE001 - a handler bug must not kill the server
            return 1, str(exc) or type(exc).__name__
        if result is None:
            return 0, ""
        if isinstance(result, str):
            return 0, result
        err, message = result
        return int(err), message or ""

    def _cmd_generic(self, name: str, text: str, origin) -> None:
        err, message = self._call(name, self._argument(name, text))
        self._reply(origin, err, message)

    def _cmd_proc(self, name: str, text: str, origin) -> None:
        err, message = self._call(name, self._argument(name, text))
        if err:
            self._reply(origin, err, message)
            return
        self._reply(origin, 0, "\n", more=True)
        data = message.encode()
        for start in range(0, len(data), PROC_READ_SIZE):
            self._reply_bytes(origin, 0, data[start:start + PROC_READ_SIZE], more=True)
        self._reply(origin, 0, "")

    def _cmd_sysrq(self, name: str, text: str, origin) -> None:
        arg = self._argument(name, text)
        if arg.startswith("b"):
            # The machine reboots at once, so UML answers first and prints nothing back.
            self._reply(origin, 0, "")
            self._call(name, arg)
            return
        self._console_output_reply(origin, *self._call(name, arg))

    def _cmd_stack(self, name: str, text: str, origin) -> None:
        self._console_output_reply(origin, *self._call(name, self._argument(name, text)))

    def _console_output_reply(self, origin, err: int, message: str) -> None:
        """Log lines printed by a command: one chunk per line, then an empty last chunk."""
        if err:
            self._reply(origin, err, message)
            return
        for line in message.splitlines(keepends=True):
            self._reply(origin, 0, line, more=True)
        self._reply(origin, 0, "")

    def _cmd_stop(self, name: str, text: str, origin) -> None:
        if self.stopped:
            self._reply(origin, 1, "Already stopped")
            return
        if hasattr(self.handler, "stop"):
            err, message = self._call(name, self._argument(name, text))
            if err:
                self._reply(origin, err, message)
                return
        self.stopped = True
        self._reply(origin, 0, "stopped")

    def _cmd_go(self, name: str, text: str, origin) -> None:
        if not self.stopped:
            self._reply(origin, 1, "Not stopped")
            return
        if hasattr(self.handler, "go"):
            self._call(name, self._argument(name, text))
        self.stopped = False
        self._reply(origin, 0, "")

    def _reply(self, origin, err: int, text: str, more: bool = False) -> None:
        self._reply_bytes(origin, err, text.encode(), more)

    def _reply_bytes(self, origin, err: int, data: bytes, more: bool = False) -> None:
        """Send `data` as ≤511-byte chunks; `err` goes in the first datagram only."""
        offset = 0
        while True:
            chunk = data[offset:offset + MAX_CHUNK]
            offset += len(chunk)
            last = offset >= len(data)
            header = REPLY_HEADER.pack(err & 0xFFFFFFFF, int(more or not last), len(chunk) + 1)
            self._sendto(header + chunk + b"\0", origin)
            err = 0
            if last:
                return

    def _sendto(self, payload: bytes, origin) -> None:
        if self._client_gone:
            return
        try:
            self._sock.sendto(payload, origin)
        except (BlockingIOError, FileNotFoundError, ConnectionRefusedError):
            # The client went away or stopped reading: like UML, drop the rest of the reply
            # rather than wait SEND_TIMEOUT_SECONDS for every remaining datagram.
            self._client_gone = True


# --------------------------------------------------------------------------------------------
# Notification socket


class NotifyType(enum.IntEnum):
    SOCKET = 0     # mconsole is ready (every boot, also after reboots); data = socket path
    PANIC = 1      # kernel panic; data = message
    HANG = 2       # from uml_watchdog: the guest stopped feeding /dev/watchdog
    USER = 3       # the guest wrote to /proc/mconsole; data = the bytes written


@dataclass
class Notification:
    type: NotifyType
    data: bytes

    @property
    def text(self) -> str:
        """The payload as text, without the trailing NUL the kernel adds."""
        data = self.data[:-1] if self.data.endswith(b"\0") else self.data
        return data.decode(errors="replace")


def parse_notification(datagram: bytes) -> Notification | None:
    """Decode one notify datagram; None when it is not one."""
    if len(datagram) == WATCHDOG_HANG.size:
        magic, version, kind, _ = WATCHDOG_HANG.unpack(datagram)
        if magic == MCONSOLE_MAGIC and version == MCONSOLE_VERSION and kind == NotifyType.HANG:
            return Notification(NotifyType.HANG, b"")
    if len(datagram) < NOTIFY_HEADER.size:
        return None
    magic, version, kind, length = NOTIFY_HEADER.unpack_from(datagram)
    if magic != MCONSOLE_MAGIC:
        return None
    try:
        kind = NotifyType(kind)
    except ValueError:
        return None
    return Notification(kind, datagram[NOTIFY_HEADER.size:NOTIFY_HEADER.size + length])


class NotifyListener:
    """The socket named in `mconsole=notify:PATH`; create it before starting the kernel."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._sock = _bind_datagram_socket(self.path, "notification socket")

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, timeout: float | None = 0) -> Notification | None:
        """The next notification, waiting up to `timeout` s (None: forever).

        Returns None when nothing arrived in time; datagrams that are not notifications
        are skipped.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self._sock], [], [], remaining)
            if not readable:
                return None
            try:
                datagram = self._sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                continue
            note = parse_notification(datagram)
            if note is not None:
                return note

    def close(self) -> None:
        self._sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def send_notification(path: str | os.PathLike, kind: NotifyType, data: bytes = b"") -> bool:
    """Send one notification from an unbound socket, as UML does.

    Returns False when nobody listens at `path` (UML logs that and carries on).
    """
    payload = NOTIFY_HEADER.pack(MCONSOLE_MAGIC, MCONSOLE_VERSION, int(kind), len(data)) + data
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(payload, os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError, BlockingIOError, PermissionError):
            return False
    return True


def send_socket_notification(path: str | os.PathLike, mconsole_path: str | os.PathLike) -> bool:
    """Announce that mconsole is ready: the payload is its absolute path plus a NUL."""
    absolute = os.fsencode(Path(mconsole_path).absolute())
    return send_notification(path, NotifyType.SOCKET, absolute + b"\0")


def send_panic_notification(path: str | os.PathLike, message: str) -> bool:
    return send_notification(path, NotifyType.PANIC, message.encode() + b"\0")
