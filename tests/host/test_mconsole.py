"""mconsole client, server and notification socket: real sockets, real uml_mconsole, real UML."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from umlgui.errors import UmlguiError
from umlgui.host.process import kill_tree
from umlgui.host.mconsole import (
    DANGEROUS_SYSRQ, DEFAULT_HELP, MCONSOLE_MAGIC, RAW_VERSION_ERROR, STOP_SAFE_COMMANDS,
    SYSRQ_KEYS, MconsoleClient, MconsoleCommandError, MconsoleError, MconsoleReply,
    MconsoleServer, MconsoleTimeout, MconsoleUnavailable, Notification, NotifyListener,
    NotifyType, absolutize_ubd_config, send_notification, send_panic_notification,
    send_socket_notification, settle_filesystems,
)

PROC_FILE = "".join(f"line {n:04d} " + "x" * 40 + "\n" for n in range(100))   # ~5000 chars


@pytest.fixture
def short_dir():
    path = tempfile.mkdtemp(prefix="umt", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


class FakeGuest:
    """A small but real command handler: keeps devices and a log, like a guest kernel would."""

    def __init__(self):
        self.devices: dict[str, str] = {}
        self.log_pieces: list[str] = []
        self.actions: list[str] = []
        self.frozen = False
        self.delay_next = 0.0

    def version(self, arg):
        if self.delay_next:
            delay, self.delay_next = self.delay_next, 0.0
            time.sleep(delay)
        return f"Linux fake 1.0 #1 x86_64{(' ' + arg) if arg else ''}"

    def halt(self, arg):
        self.actions.append("halt")

    def reboot(self, arg):
        self.actions.append("reboot")

    def cad(self, arg):
        self.actions.append("cad")

    def config(self, arg):
        if "=" not in arg:
            return self.devices.get(arg, "")
        device, spec = arg.split("=", 1)
        if not device.startswith("ubd"):
            return 1, "Bad configuration option"
        if not spec.startswith("/"):
            return -errno.EINVAL, "ubd_config failed: not an absolute path"
        if device in self.devices:
            return -errno.EBUSY, "ubd is busy"
        self.devices[device] = spec
        return None

    def remove(self, arg):
        if self.devices.pop(arg, None) is None:
            return -errno.ENODEV, "Bad remove option"

    def sysrq(self, arg):
        self.actions.append(f"sysrq {arg}")
        return "sysrq: Show Memory\nMem-Info:\nactive_anon:1 inactive_anon:2\n"

    def stack(self, arg):
        if not arg:
            return 1, "Please specify a pid"
        return f"Stack of {arg}:\n  schedule+0x10\n"

    def log(self, arg):
        self.log_pieces.append(arg)

    def proc(self, arg):
        if arg == "big":
            return PROC_FILE
        if arg == "boom":
            raise RuntimeError("disk on fire")
        if arg == "refused":
            raise UmlguiError("guest said no", "ask nicely")
        return 1, "Failed to open file"

    def stop(self, arg):
        self.frozen = True

    def go(self, arg):
        self.frozen = False


@pytest.fixture
def served(short_dir):
    """(socket path, FakeGuest, server) with the server running in a thread."""
    guest = FakeGuest()
    path = str(short_dir / "mc")
    server = MconsoleServer(path, guest)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(stop,), daemon=True)
    thread.start()
    yield path, guest, server
    stop.set()
    thread.join(5)
    server.close()


@pytest.fixture
def client(served):
    with MconsoleClient(served[0], timeout=3) as mc:
        yield mc


class RawClient:
    """Speaks to a server with hand-made datagrams and returns the raw answers."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(f"\0umt-raw-{os.getpid()}-{id(self)}")
        self.sock.settimeout(3)

    def send(self, payload: bytes):
        self.sock.sendto(payload, self.path)

    def request(self, text: bytes, version=2, length=None):
        self.send(struct.pack("<III", MCONSOLE_MAGIC, version,
                              len(text) if length is None else length) + text)

    def reply(self) -> list[tuple[int, int, bytes]]:
        """Datagrams up to the first one with more == 0, as (err, more, data incl. NUL)."""
        parts = []
        while True:
            datagram = self.sock.recv(1024)
            err, more, length = struct.unpack_from("<III", datagram)
            assert len(datagram) == 12 + length
            parts.append((err, more, datagram[12:]))
            if not more:
                return parts

    def close(self):
        self.sock.close()


@pytest.fixture
def raw(served):
    rc = RawClient(served[0])
    yield rc
    rc.close()


# --------------------------------------------------------------------------------------------
# Our client against our server


def test_version_and_prefix_matching(client):
    assert client.version() == "Linux fake 1.0 #1 x86_64"
    reply = client.request("versionXYZ")
    assert reply == MconsoleReply(0, "Linux fake 1.0 #1 x86_64 XYZ")
    assert reply.ok and reply.errno_name is None


def test_help_default_text(client):
    assert client.help() == DEFAULT_HELP


def test_halt_reboot_cad_reach_handler(client, served):
    client.halt()
    client.reboot()
    client.cad()
    assert served[1].actions == ["halt", "reboot", "cad"]


def test_config_add_query_and_remove(client, served):
    assert client.config("ubd1=/images/one.img") == ""
    assert client.config("ubd1") == "/images/one.img"
    client.remove("ubd1")
    assert served[1].devices == {}


def test_negative_errno_reply(client):
    reply = client.request("config ubd2=/x")
    assert reply.ok
    reply = client.request("config ubd2=/y")
    assert reply.err == -errno.EBUSY and reply.errno_name == "EBUSY"
    assert reply.text == "ubd is busy"
    reply = client.request("remove ubd9")
    assert reply.err == -errno.ENODEV and reply.errno_name == "ENODEV"


def test_request_checked_raises_with_kernel_text(client):
    with pytest.raises(MconsoleCommandError) as info:
        client.remove("ubd9")
    assert info.value.err == -errno.ENODEV
    assert info.value.problem == "Bad remove option"
    assert "device name" in info.value.fix
    with pytest.raises(MconsoleCommandError) as info:
        client.config("eth0=tuntap")
    assert info.value.err == 1 and info.value.problem == "Bad configuration option"


def test_config_makes_relative_ubd_paths_absolute(client, served):
    client.config("ubd3=rel/disk.img")
    assert served[1].devices["ubd3"] == os.path.join(os.getcwd(), "rel/disk.img")


def test_absolutize_ubd_config():
    assert absolutize_ubd_config("config ubd1=a.cow,b.img,SER", "/base") == \
        "config ubd1=/base/a.cow,/base/b.img,SER"
    assert absolutize_ubd_config("config ubd1r=/abs/x", "/base") == "config ubd1r=/abs/x"
    assert absolutize_ubd_config("config ubd1", "/base") == "config ubd1"
    assert absolutize_ubd_config("config con1=pts", "/base") == "config con1=pts"


def test_multipart_proc_reply(client):
    assert client.proc("big") == PROC_FILE
    assert client.request("proc big").text == "\n" + PROC_FILE


def test_proc_missing_file(client):
    reply = client.request("proc nothere")
    assert (reply.err, reply.text) == (1, "Failed to open file")


def test_handler_exceptions_become_err_1(client):
    assert client.request("proc boom") == MconsoleReply(1, "disk on fire")
    assert client.request("proc refused") == MconsoleReply(1, "guest said no")


def test_sysrq_and_stack_return_log_lines(client, served):
    assert client.sysrq("m") == "sysrq: Show Memory\nMem-Info:\nactive_anon:1 inactive_anon:2\n"
    assert served[1].actions == ["sysrq m"]
    assert client.stack(1) == "Stack of 1:\n  schedule+0x10\n"
    assert client.request("stack") == MconsoleReply(1, "Please specify a pid")


def test_sysrq_b_answers_before_acting(raw, served):
    raw.request(b"sysrq b")
    assert raw.reply() == [(0, 0, b"\0")]
    deadline = time.time() + 2      # the server acts after the reply has gone out
    while not served[1].actions and time.time() < deadline:
        time.sleep(0.01)
    assert served[1].actions == ["sysrq b"]


def test_unknown_command(client):
    assert client.request("exec ls") == MconsoleReply(1, "Unknown command")
    with pytest.raises(MconsoleCommandError) as info:
        client.request_checked("frobnicate")
    assert info.value.problem == "Unknown command"


def test_log_short_and_chunked(client, served):
    client.log("hello")
    assert served[1].log_pieces == ["hello\n"]
    served[1].log_pieces.clear()
    text = "".join(f"{n:03d}" for n in range(400))   # 1200 chars
    client.log(text)
    pieces = served[1].log_pieces
    assert len(pieces) == 3 and all(len(p.encode()) <= 506 for p in pieces)
    assert "".join(pieces) == text + "\n"


def test_log_chunks_keep_utf8_characters_whole(client, served):
    client.request("log " + "é" * 400)         # 800 bytes: too long for one request
    pieces = served[1].log_pieces
    assert len(pieces) == 2 and "".join(pieces) == "é" * 400


def test_stop_go_state_machine(client, served):
    assert client.request("go") == MconsoleReply(1, "Not stopped")
    assert client.stop() == "stopped"
    assert served[2].stopped and served[1].frozen
    assert client.request("stop") == MconsoleReply(1, "Already stopped")
    assert client.version().startswith("Linux fake")
    client.go()
    assert not served[2].stopped and not served[1].frozen
    with pytest.raises(MconsoleCommandError) as info:
        client.go()
    assert info.value.problem == "Not stopped"


def test_stop_refused_by_handler_does_not_stop(short_dir):
    class Unfreezable:
        def stop(self, arg):
            raise RuntimeError("cannot freeze")

    with MconsoleServer(str(short_dir / "mc"), Unfreezable()) as server, \
            MconsoleClient(server.socket_path, timeout=3) as mc:
        stop = threading.Event()
        thread = threading.Thread(target=server.serve_forever, args=(stop,))
        thread.start()
        try:
            assert mc.request("stop") == MconsoleReply(1, "cannot freeze")
            assert not server.stopped
            assert mc.request("version") == MconsoleReply(1, "version is not supported by this machine")
        finally:
            stop.set()
            thread.join()


def test_serve_while_stopped_blocks_until_go(short_dir):
    """The owner's loop: after handle_ready() returns "stop", only mconsole is served."""
    guest = FakeGuest()
    server = MconsoleServer(str(short_dir / "mc"), guest)
    events: list[str] = []

    def owner_loop():
        while True:
            server._wait_readable(5)
            served = server.handle_ready()
            events.append(served)
            if served == "stop":
                events.append("paused")
                events.append(server.serve_while_stopped())
                events.append("resumed")
            if served == "halt":
                return

    thread = threading.Thread(target=owner_loop)
    thread.start()
    try:
        with MconsoleClient(server.socket_path, timeout=3) as mc:
            mc.stop()
            assert mc.version().startswith("Linux")
            assert mc.request("stop").text == "Already stopped"
            time.sleep(0.1)
            assert events == ["stop", "paused"]
            mc.go()
            mc.halt()
        thread.join(5)
        assert events == ["stop", "paused", "go", "resumed", "halt"]
    finally:
        server.close()


def test_serve_while_stopped_ends_on_halt_and_on_event(short_dir):
    server = MconsoleServer(str(short_dir / "mc"), FakeGuest())
    try:
        server.stopped = True
        cancel = threading.Event()
        cancel.set()
        assert server.serve_while_stopped(cancel) is None
        result = []
        thread = threading.Thread(target=lambda: result.append(server.serve_while_stopped()))
        thread.start()
        with MconsoleClient(server.socket_path, timeout=3) as mc:
            mc.halt()
        thread.join(5)
        assert result == ["halt"] and not server.stopped
    finally:
        server.close()


def test_version_mismatch_double_reply(served, raw):
    raw.request(b"version", version=1)
    assert raw.reply() == [(1, 0, b"This driver only supports version 2 clients\0")]
    assert raw.reply() == [(0, 0, b"Linux fake 1.0 #1 x86_64\0")]
    with MconsoleClient(served[0], timeout=3, protocol_version=3) as old:
        reply = old.version()
        assert reply == "Linux fake 1.0 #1 x86_64"
        full = old.request("version")
        assert full.warning == "This driver only supports version 2 clients"


def test_bad_magic_gets_raw_error(raw):
    raw.send(b"version")
    assert raw.sock.recv(1024) == RAW_VERSION_ERROR
    assert len(RAW_VERSION_ERROR) == 63
    raw.send(struct.pack(">III", MCONSOLE_MAGIC, 2, 7) + b"version")   # big-endian header
    assert raw.sock.recv(1024) == RAW_VERSION_ERROR


def test_request_too_large(raw):
    raw.request(b"x" * 512)
    assert raw.reply() == [(1, 0, b"Request too large\0")]
    raw.request(b"version", length=600)
    assert raw.reply() == [(1, 0, b"Request too large\0")]


def test_proc_chunk_layout_like_uml(raw):
    raw.request(b"proc big")
    parts = raw.reply()
    assert parts[0] == (0, 1, b"\n\0")
    assert parts[-1] == (0, 0, b"\0")
    assert all(more == 1 and len(data) <= 512 for _, more, data in parts[1:-1])
    body = b"".join(data[:-1] for _, _, data in parts[1:-1])
    assert body == PROC_FILE.encode()
    # UML chunks each 4095-byte read separately: 8 full chunks, then a 7-byte one.
    sizes = [len(data) - 1 for _, _, data in parts[1:-1]]
    assert sizes[:9] == [511] * 8 + [7]


def test_sysrq_chunk_per_line(raw):
    raw.request(b"sysrq m")
    assert raw.reply() == [(0, 1, b"sysrq: Show Memory\n\0"), (0, 1, b"Mem-Info:\n\0"),
                           (0, 1, b"active_anon:1 inactive_anon:2\n\0"), (0, 0, b"\0")]


def test_long_plain_reply_sets_err_on_first_chunk_only(short_dir):
    class Wordy:
        def version(self, arg):
            return -errno.EINVAL, "e" * 1000

    with MconsoleServer(str(short_dir / "mc"), Wordy()) as server:
        rc = RawClient(server.socket_path)
        rc.request(b"version")
        server._wait_readable(3)
        server.handle_ready()
        parts = rc.reply()
        rc.close()
    assert [(err, more, len(data)) for err, more, data in parts] == \
        [(0xFFFFFFEA, 1, 512), (0, 0, 490)]


def test_server_gives_up_on_a_client_that_does_not_read(short_dir):
    with MconsoleServer(str(short_dir / "mc"), FakeGuest()) as server:
        sleeper = RawClient(server.socket_path)
        sleeper.request(b"proc big")        # ~12 datagrams; the queue holds fewer
        server._wait_readable(3)
        started = time.monotonic()
        assert server.handle_ready() == "proc"
        assert time.monotonic() - started < 4     # one send timeout, not one per datagram
        sleeper.close()
        with MconsoleClient(server.socket_path, timeout=3) as mc:
            thread = threading.Thread(target=lambda: (server._wait_readable(3),
                                                      server.handle_ready()))
            thread.start()
            assert mc.version().startswith("Linux fake")
            thread.join()


def test_client_reads_raw_error_reply(short_dir):
    """A peer that only speaks the 'version 0' refusal (what UML says to bad magic)."""
    path = str(short_dir / "old")
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind(path)

    def answer():
        _, origin = peer.recvfrom(1024)
        peer.sendto(RAW_VERSION_ERROR, origin)

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        with MconsoleClient(path, timeout=3) as mc:
            reply = mc.request("version")
        assert reply.err == 1 and reply.text == RAW_VERSION_ERROR.decode()
    finally:
        thread.join()
        peer.close()


def test_reply_that_stops_midway_is_truncated(short_dir):
    path = str(short_dir / "cut")
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind(path)

    def answer_half():
        _, origin = peer.recvfrom(1024)
        peer.sendto(struct.pack("<III", 0, 1, 6) + b"first\0", origin)   # more=1, then nothing

    thread = threading.Thread(target=answer_half)
    thread.start()
    try:
        with MconsoleClient(path, timeout=0.3) as mc:
            reply = mc.request_checked("sysrq m")
        assert reply.truncated and reply.text == "first" and "cut off" in reply.warning
    finally:
        thread.join()
        peer.close()


def test_timeout_when_nobody_answers(short_dir):
    path = str(short_dir / "mute")
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mute.bind(path)
    try:
        with MconsoleClient(path, timeout=0.3) as mc:
            started = time.monotonic()
            with pytest.raises(MconsoleTimeout) as info:
                mc.version()
            assert 0.25 < time.monotonic() - started < 2
        assert "did not answer" in info.value.problem and "0.3 s" in info.value.problem
        assert info.value.fix
    finally:
        mute.close()


def test_late_reply_is_not_taken_for_the_next_one(client, served):
    served[1].delay_next = 0.6
    with pytest.raises(MconsoleTimeout):
        client.request("version late", timeout=0.2)
    time.sleep(0.7)     # the late answer to "version late" is now queued
    assert client.request("version now").text.endswith(" now")


def test_missing_socket_is_unavailable(short_dir):
    with MconsoleClient(str(short_dir / "absent"), timeout=1) as mc:
        with pytest.raises(MconsoleUnavailable) as info:
            mc.version()
    assert "not running or is still booting" in info.value.problem
    assert info.value.fix


def test_dead_socket_file_is_unavailable(short_dir):
    path = str(short_dir / "dead")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.close()                     # the file stays, nobody listens: ECONNREFUSED
    with MconsoleClient(path, timeout=1) as mc, pytest.raises(MconsoleUnavailable):
        mc.version()


def test_bad_client_input(client):
    with pytest.raises(MconsoleError, match="512|511"):
        client.request("config " + "x" * 600)
    with pytest.raises(MconsoleError, match="NUL"):
        client.request("version\0junk")
    for key in ("", "mm", " ", "\n"):
        with pytest.raises(MconsoleError, match="SysRq key"):
            client.sysrq(key)
    for pid in (0, -1, "1", True):
        with pytest.raises(MconsoleError, match="process ID"):
            client.stack(pid)


def test_dangerous_sysrq_needs_confirmation(client, served):
    for key in DANGEROUS_SYSRQ:
        with pytest.raises(MconsoleError, match="dangerous") as info:
            client.sysrq(key)
        assert info.value.fix
    assert served[1].actions == []
    client.sysrq("t", confirmed=True)
    assert served[1].actions == ["sysrq t"]


def test_socket_path_too_long(short_dir):
    long_path = str(short_dir / ("d" * 120))
    with pytest.raises(MconsoleError, match="at most 107"):
        MconsoleClient(long_path)
    with pytest.raises(MconsoleError, match="at most 107"):
        MconsoleServer(long_path, FakeGuest())
    with pytest.raises(MconsoleError, match="at most 107"):
        NotifyListener(long_path)


def test_server_replaces_stale_socket_but_not_other_files(short_dir):
    path = short_dir / "mc"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(path))
    stale.close()
    MconsoleServer(str(path), FakeGuest()).close()
    assert not path.exists()
    path.write_text("precious")
    with pytest.raises(MconsoleError, match="not a socket"):
        MconsoleServer(str(path), FakeGuest())
    assert path.read_text() == "precious"
    with pytest.raises(MconsoleError, match="Cannot create"):
        MconsoleServer(str(short_dir / "no" / "dir" / "mc"), FakeGuest())


class GuestAnswers:
    """The replies a guest gives to settle_filesystems' requests, and what it was sent."""

    def __init__(self, sysrq_setting: str, options: list[str]):
        self.sysrq_setting, self.options, self.sent = sysrq_setting, options, []

    def request(self, command: str) -> MconsoleReply:
        self.sent.append(command)
        if command == "proc sys/kernel/sysrq":
            return MconsoleReply(0, self.sysrq_setting + "\n")
        if command.startswith("proc fs/ext4/"):
            return MconsoleReply(0, self.options.pop(0))
        return MconsoleReply(0, "")       # the kernel's lines may miss the reply: not relied on


@pytest.mark.parametrize("setting", ["0", "16", "2"])
def test_settle_does_not_wait_when_kernel_sysrq_refuses_the_remount(setting):
    guest = GuestAnswers(setting, [])
    assert settle_filesystems(guest, ["ubda"]) is False
    assert guest.sent == ["proc sys/kernel/sysrq", "sysrq s", "sysrq u"]


@pytest.mark.parametrize("setting", ["1", "438", "32"])
def test_settle_waits_until_the_disks_say_ro(setting):
    # an ext4 options file has one option a line, rw or ro first
    guest = GuestAnswers(setting, ["rw\nbarrier\n", "rw\n", "ro\nbarrier\n", "ro\n"])
    assert settle_filesystems(guest, ["ubda", "ubdb"]) is True
    assert guest.sent[3:] == ["proc fs/ext4/ubda/options", "proc fs/ext4/ubdb/options",
                              "proc fs/ext4/ubda/options", "proc fs/ext4/ubdb/options"]


def test_constants_for_gui_and_worker():
    assert STOP_SAFE_COMMANDS == ("version", "sysrq", "go")     # halt/reboot: see the comment
    assert list(SYSRQ_KEYS)[:2] == ["s", "u"]
    assert {"b", "c", "e", "f", "i", "m", "o", "p", "s", "u", "w", "0", "9"} <= set(SYSRQ_KEYS)
    assert set(DANGEROUS_SYSRQ) == {"t", "c"}


# --------------------------------------------------------------------------------------------
# Notifications


def test_notify_round_trip(short_dir):
    path = short_dir / "notify"
    with NotifyListener(path) as listener:
        assert listener.read() is None
        assert listener.read(timeout=0.1) is None
        assert send_socket_notification(path, "/run/x/m1/m1/mconsole")
        note = listener.read(timeout=2)
        assert note == Notification(NotifyType.SOCKET, b"/run/x/m1/m1/mconsole\0")
        assert note.text == "/run/x/m1/m1/mconsole"
        assert send_panic_notification(path, "sysrq triggered crash")
        note = listener.read(timeout=2)
        assert (note.type, note.text) == (NotifyType.PANIC, "sysrq triggered crash")
        send_notification(path, NotifyType.USER, b"hi\n")
        assert listener.read(timeout=2) == Notification(NotifyType.USER, b"hi\n")
    assert not path.exists()
    assert send_notification(path, NotifyType.USER, b"nobody") is False


def test_socket_notification_uses_absolute_path(short_dir, monkeypatch):
    monkeypatch.chdir(short_dir)
    with NotifyListener(short_dir / "n") as listener:
        send_socket_notification(short_dir / "n", "m/mconsole")
        assert listener.read(timeout=2).text == str(short_dir / "m" / "mconsole")


def test_notify_hang_quirk_and_garbage(short_dir):
    path = str(short_dir / "notify")
    with NotifyListener(path) as listener:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.sendto(b"garbage", path)
        sender.sendto(struct.pack("<IIII", 0x12345678, 2, 0, 0), path)        # bad magic
        sender.sendto(struct.pack("<IIII", MCONSOLE_MAGIC, 2, 9, 0), path)    # unknown type
        # uml_watchdog on 64-bit: u64 magic, version, type 2, len 0, padding (24 bytes)
        sender.sendto(bytes.fromhex("bebafeca00000000020000000200000000000000fc7f0000"), path)
        sender.close()
        assert listener.read(timeout=2) == Notification(NotifyType.HANG, b"")
        assert listener.read(timeout=0.1) is None


# --------------------------------------------------------------------------------------------
# The real uml_mconsole against our server


def uml_mconsole(path, *words, cwd=None):
    result = subprocess.run(["uml_mconsole", path, *words], capture_output=True, text=True,
                            timeout=10, cwd=cwd)
    return result.returncode, result.stdout


needs_uml_mconsole = pytest.mark.skipif(shutil.which("uml_mconsole") is None,
                                        reason="uml-utilities not installed")


@needs_uml_mconsole
def test_uml_mconsole_version_and_proc(served):
    path = served[0]
    assert uml_mconsole(path, "version") == (0, "OK Linux fake 1.0 #1 x86_64\n")
    assert uml_mconsole(path, "proc", "big") == (0, "OK \n" + PROC_FILE + "\n")
    assert uml_mconsole(path, "proc", "nothere") == (1, "ERR Failed to open file\n")


@needs_uml_mconsole
def test_uml_mconsole_config_error_and_relative_path(served, short_dir):
    path, guest, _ = served
    guest.devices["ubd1"] = "/already"
    code, out = uml_mconsole(path, "config", "ubd1=x", cwd=short_dir)
    assert (code, out) == (240, "ERR ubd is busy\n")     # -EBUSY & 0xff
    assert uml_mconsole(path, "config", "ubd2=x", cwd=short_dir) == (0, "OK \n")
    assert guest.devices["ubd2"] == str(short_dir / "x")     # it made the path absolute
    assert uml_mconsole(path, "config", "eth0=x") == (1, "ERR Bad configuration option\n")


@needs_uml_mconsole
def test_uml_mconsole_log_and_stop_go(served):
    path, guest, server = served
    assert uml_mconsole(path, "log", "hello") == (0, "OK \nOK \n")
    assert guest.log_pieces == ["hello", "\n"]
    assert uml_mconsole(path, "stop") == (0, "OK stopped\n")
    assert server.stopped
    assert uml_mconsole(path, "stop") == (1, "ERR Already stopped\n")
    assert uml_mconsole(path, "go") == (0, "OK \n")
    assert uml_mconsole(path, "go") == (1, "ERR Not stopped\n")
    assert uml_mconsole(path, "exec", "ls") == (1, "ERR Unknown command\n")


# --------------------------------------------------------------------------------------------
# Our client against the real kernel

INIT_SCRIPT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox sleep 2
echo hi > /proc/mconsole
while true; do /bin/busybox sleep 1; done
"""

needs_uml = pytest.mark.skipif(
    shutil.which("linux.uml") is None or not os.path.exists("/bin/busybox")
    or shutil.which("mkfs.ext4") is None, reason="linux.uml, busybox or mkfs.ext4 missing")


@pytest.fixture(scope="module")
def root_image(tmp_path_factory):
    base = tmp_path_factory.mktemp("umlroot")
    tree = base / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "proc").mkdir()
    shutil.copy2("/bin/busybox", tree / "bin" / "busybox")
    init = tree / "init"
    init.write_text(INIT_SCRIPT)
    init.chmod(0o755)
    image = base / "root.img"
    subprocess.run(["truncate", "-s", "32M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "32M"], check=True)
    return image


class Machine:
    """One linux.uml process with its notify socket, in a short directory."""

    def __init__(self, image: Path, short: Path):
        self.notes: list[Notification] = []
        self.notify = NotifyListener(short / "n")
        (short / "u").mkdir()
        self.log_path = short / "log"
        self.marker = f"uml_dir={short}/u/"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["linux.uml", f"ubd0={image}", "root=/dev/ubda", "init=/init", "mem=64M",
                 "umid=t1", f"uml_dir={short}/u/", "con=null", "ssl=null", "con0=null",
                 f"mconsole=notify:{short}/n", "quiet"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def wait_note(self, kind: NotifyType, timeout: float = 20) -> Notification:
        deadline = time.monotonic() + timeout
        while True:
            for note in self.notes:
                if note.type == kind:
                    self.notes.remove(note)
                    return note
            remaining = deadline - time.monotonic()
            note = self.notify.read(timeout=max(0.0, remaining))
            if note is None:
                raise AssertionError(f"no {kind.name} notification; log:\n"
                                     + self.log_path.read_text(errors="replace"))
            self.notes.append(note)

    def kill(self):
        kill_tree(self.process.pid, self.marker)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.notify.close()


@pytest.fixture
def machine(root_image, short_dir):
    started = Machine(root_image, short_dir)
    yield started
    started.kill()


@needs_uml
@pytest.mark.uml
@pytest.mark.slow
def test_real_kernel_commands_reboot_and_halt(machine, short_dir):
    ready = machine.wait_note(NotifyType.SOCKET)
    mconsole_path = str(short_dir / "u" / "t1" / "mconsole")
    assert ready.text == mconsole_path
    with MconsoleClient(ready.text, timeout=10) as mc:
        assert mc.version().startswith("Linux (none) 6.1")
        # sysrq output is captured by a console UML registers late in boot: wait for init.
        user = machine.wait_note(NotifyType.USER)
        assert user.data == b"hi\n"
        meminfo = mc.proc("meminfo")
        assert meminfo.startswith("MemTotal:") and len(meminfo) > 511
        mc.log("hello from the test")
        assert "Show Memory" in mc.sysrq("m")

        disk = short_dir / "extra.img"
        disk.write_bytes(b"\0" * (1 << 20))
        assert mc.config(f"ubd1={disk}") == ""
        assert mc.config("ubd1") == str(disk)
        assert "ubdb" in mc.proc("partitions")
        mc.remove("ubd1")
        assert "ubdb" not in mc.proc("partitions")
        with pytest.raises(MconsoleCommandError) as info:
            mc.remove("ubd1")
        assert info.value.err != 0

        with pytest.raises(MconsoleCommandError) as info:
            mc.proc("no/such/file")
        assert info.value.problem == "Failed to open file"
        assert mc.request("exec ls") == MconsoleReply(1, "Unknown command")
        assert mc.request("go") == MconsoleReply(1, "Not stopped")

        assert mc.stop() == "stopped"
        assert mc.version().startswith("Linux")
        mc.go()

        # At log level 8 the output outgrows the socket queue: the tail may be lost.
        assert "Loglevel set to 8" in mc.sysrq("8")
        started = time.monotonic()
        reply = mc.request_checked("sysrq m")
        assert reply.text.startswith("sysrq: Show Memory\nMem-Info:")
        assert time.monotonic() - started < 5
        assert reply.truncated or reply.text.endswith("\n")

        pid = machine.process.pid
        mc.reboot()
        again = machine.wait_note(NotifyType.SOCKET)
        assert again.text == mconsole_path
        assert machine.process.poll() is None and machine.process.pid == pid
        assert mc.version().startswith("Linux")

        mc.halt()
    assert machine.process.wait(20) == 0


@needs_uml
@pytest.mark.uml
@pytest.mark.slow
def test_real_kernel_sysrq_crash_panics(machine):
    ready = machine.wait_note(NotifyType.SOCKET)
    with MconsoleClient(ready.text, timeout=3) as mc:
        assert mc.version()
        try:
            mc.sysrq("c", confirmed=True)
        except MconsoleError:
            pass    # the kernel may die before it finishes answering
    panic = machine.wait_note(NotifyType.PANIC)
    assert "sysrq" in panic.text
    # 134 in a shell: Popen reports death by SIGABRT as -6.
    assert machine.process.wait(20) == -signal.SIGABRT
