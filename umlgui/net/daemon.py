"""The daemon transport spoken between UML (`ethN=daemon,...`) and a switch.

Wire format (UML-INTERFACES.md §4):

* UML binds a SOCK_DGRAM socket to an abstract name: 108-byte `sun_path` =
  NUL, 3 pad bytes, pid (i32), microseconds (i32), the rest undefined.
* UML connects a SOCK_STREAM socket to the switch's control path and writes one 124-byte
  request `<IIIH108s2x` = 0xFEEDFACE, version 3, type 0 (new control), AF_UNIX, its name.
* The switch answers with exactly 110 bytes: `<H108s` = AF_UNIX, its own data-socket name.
* Frames are raw Ethernet datagrams, one per `sendto`; the stream only signals lifetime (EOF =
  port gone).

Abstract names compare over the full address length, so both sides must use all 108 bytes of
`sun_path` (a short name never receives UML's frames — the "padding pitfall").

`DaemonPeer` is the UML side of the protocol in Python; the switch's tests and tools use it to
take part in a switch exactly as a UML kernel does.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time

MAGIC = 0xFEEDFACE
VERSION = 3
REQ_NEW_CONTROL = 0
AF_UNIX_FAMILY = 1
SUN_PATH_LEN = 108

REQUEST = struct.Struct("<IIIH108s2x")  # 124 bytes
REPLY = struct.Struct("<H108s")  # 110 bytes
REQUEST_SIZE = REQUEST.size
REPLY_SIZE = REPLY.size

# UML reads at most MTU + 26 bytes; a switch must accept at least an untagged 1514-byte frame.
MAX_FRAME = 1500 + 26
ETH_HEADER = 14


class ProtocolError(ValueError):
    """A control request that is not a valid version-3 daemon request."""


def abstract_name(pid: int | None = None, usec: int | None = None) -> bytes:
    """A 108-byte abstract socket name shaped like UML's and uml_switch's: NUL, pad, pid, usec."""
    if pid is None:
        pid = os.getpid()
    if usec is None:
        usec = int(time.time() * 1_000_000) % 1_000_000
    name = b"\0" * 4 + struct.pack("<ii", pid, usec)
    return name.ljust(SUN_PATH_LEN, b"\0")


def pad_name(name: bytes) -> bytes:
    """Pad a socket name to the full 108 bytes, as the C code does with sizeof(sockaddr_un)."""
    if len(name) > SUN_PATH_LEN:
        raise ValueError(f"socket name longer than {SUN_PATH_LEN} bytes")
    return name.ljust(SUN_PATH_LEN, b"\0")


def build_request(data_name: bytes, version: int = VERSION) -> bytes:
    """The 124-byte control request that announces a peer's data socket."""
    return REQUEST.pack(MAGIC, version, REQ_NEW_CONTROL, AF_UNIX_FAMILY, pad_name(data_name))


def parse_request(data: bytes) -> bytes:
    """Return the peer's 108-byte data-socket name from a control request.

    Raises ProtocolError naming what is wrong, so the switch can log it and drop the connection.
    """
    if len(data) != REQUEST_SIZE:
        raise ProtocolError(f"request is {len(data)} bytes, expected {REQUEST_SIZE}")
    magic, version, request_type, family, name = REQUEST.unpack(data)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic 0x{magic:08x}")
    if version != VERSION:
        raise ProtocolError(f"version {version} is not supported (only version {VERSION})")
    if request_type != REQ_NEW_CONTROL:
        raise ProtocolError(f"unknown request type {request_type}")
    if family != AF_UNIX_FAMILY:
        raise ProtocolError(f"unsupported address family {family}")
    return name


def build_reply(data_name: bytes) -> bytes:
    """The 110-byte reply naming the switch's data socket."""
    return REPLY.pack(AF_UNIX_FAMILY, pad_name(data_name))


def parse_reply(data: bytes) -> bytes:
    if len(data) != REPLY_SIZE:
        raise ProtocolError(f"reply is {len(data)} bytes, expected {REPLY_SIZE}")
    family, name = REPLY.unpack(data)
    if family != AF_UNIX_FAMILY:
        raise ProtocolError(f"reply has address family {family}")
    return name


def pid_from_name(name: bytes) -> int | None:
    """The pid UML stores in bytes 4–7 of an abstract data-socket name, if it is one."""
    if len(name) >= 8 and name[0] == 0:
        return struct.unpack_from("<i", name, 4)[0]
    return None


def ethernet_frame(dst: bytes, src: bytes, payload: bytes = b"", ethertype: int = 0x88B5) -> bytes:
    """A raw Ethernet frame (no FCS); 0x88B5 is the IEEE 'local experimental' EtherType."""
    return dst + src + struct.pack("!H", ethertype) + payload


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(part, 16) for part in parts)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{byte:02x}" for byte in mac)


class DaemonPeer:
    """One end of a daemon-transport link, doing what UML's `ethN=daemon` driver does.

    >>> peer = DaemonPeer.connect("/run/sw.ctl")
    >>> peer.send(frame); peer.recv(timeout=1)
    """

    def __init__(self, control: socket.socket, data: socket.socket, switch_name: bytes):
        self.control = control
        self.data = data
        self.switch_name = switch_name
        self.name: bytes = data.getsockname()

    @classmethod
    def connect(cls, control_path: str | os.PathLike, timeout: float = 5.0,
                version: int = VERSION) -> "DaemonPeer":
        data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _bind_unique_abstract_name(data)
            control.settimeout(timeout)
            control.connect(os.fspath(control_path))
            control.sendall(build_request(data.getsockname(), version))
            reply = _recv_exactly(control, REPLY_SIZE)
            switch_name = parse_reply(reply)
        except BaseException:
            data.close()
            control.close()
            raise
        return cls(control, data, switch_name)

    def send(self, frame: bytes) -> None:
        self.data.sendto(frame, self.switch_name)

    def recv(self, timeout: float | None = 1.0) -> bytes | None:
        """The next frame, or None when nothing arrives within `timeout` seconds."""
        self.data.settimeout(timeout)
        try:
            return self.data.recv(65536)
        except (socket.timeout, BlockingIOError):
            return None

    def recv_all(self, quiet: float = 0.2) -> list[bytes]:
        """Every frame that arrives until the link has been quiet for `quiet` seconds."""
        frames = []
        while (frame := self.recv(quiet)) is not None:
            frames.append(frame)
        return frames

    def close(self) -> None:
        self.control.close()
        self.data.close()

    def __enter__(self) -> "DaemonPeer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _bind_unique_abstract_name(sock: socket.socket) -> None:
    # Several peers in one process need distinct names; the usec field alone may collide.
    while True:
        try:
            sock.bind(abstract_name(usec=int.from_bytes(os.urandom(3), "little")))
            return
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ProtocolError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data
