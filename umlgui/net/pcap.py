"""Classic libpcap capture files (the format Wireshark and tcpdump open everywhere).

Layout: a 24-byte global header (magic 0xa1b2c3d4, version 2.4, snaplen, linktype 1 =
Ethernet) and one 16-byte record header (seconds, microseconds, captured length, original
length) before each frame. We write host byte order, as libpcap does; readers detect it from
the magic.
"""

from __future__ import annotations

import errno
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from umlgui.errors import UmlguiError

MAGIC_MICROSECONDS = 0xA1B2C3D4
MAGIC_NANOSECONDS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
DEFAULT_SNAPLEN = 65535

_GLOBAL = "IHHiIII"
_RECORD = "IIII"
GLOBAL_HEADER = struct.Struct("=" + _GLOBAL)
RECORD_HEADER = struct.Struct("=" + _RECORD)


class PcapWriter:
    """Appends frames to a new pcap file, one write(2) per frame so a live reader sees it at once.

    A frame is written whole or not at all: when the disk fills up, the partial record is cut
    off again and `write` raises OSError, leaving a file every reader opens.
    """

    def __init__(self, path: str | os.PathLike, snaplen: int = DEFAULT_SNAPLEN,
                 linktype: int = LINKTYPE_ETHERNET):
        self.path = Path(path)
        self.snaplen = snaplen
        self.frames = 0
        try:
            self._file = open(self.path, "wb", buffering=0)
            self._append(GLOBAL_HEADER.pack(MAGIC_MICROSECONDS, 2, 4, 0, 0, snaplen, linktype))
        except OSError as error:
            if hasattr(self, "_file"):
                self._file.close()
            raise UmlguiError(f"cannot create capture file {self.path}: {error.strerror}",
                              "choose a file in a directory the switch's user may write to, "
                              "on a disk with free space") from error

    def write(self, frame, timestamp: float | None = None) -> None:
        """Append one frame (bytes or any buffer) captured at `timestamp` (default: now)."""
        if timestamp is None:
            timestamp = time.time()
        seconds = int(timestamp)
        micros = int((timestamp - seconds) * 1_000_000)
        length = len(frame)
        captured = min(length, self.snaplen)
        self._append(RECORD_HEADER.pack(seconds, micros, captured, length) + bytes(frame[:captured]))
        self.frames += 1

    def _append(self, record: bytes) -> None:
        start = self._file.tell()
        try:
            written = self._file.write(record)
        except OSError:
            os.ftruncate(self._file.fileno(), start)
            self._file.seek(start)
            raise
        if written != len(record):  # a short write: the disk filled up mid-record
            os.ftruncate(self._file.fileno(), start)
            self._file.seek(start)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class PcapRecord:
    timestamp: float
    data: bytes
    original_length: int


@dataclass
class PcapFile:
    linktype: int
    snaplen: int
    records: list[PcapRecord]


def read_pcap(path: str | os.PathLike) -> PcapFile:
    """Read a classic pcap file (either byte order, micro- or nanosecond timestamps).

    A truncated last record (a capture still being written) is ignored.
    """
    data = Path(path).read_bytes()
    if len(data) < GLOBAL_HEADER.size:
        raise UmlguiError(f"{path} is not a pcap file: only {len(data)} bytes",
                          "capture again; the file must start with a 24-byte pcap header")
    order, divisor = _byte_order(data, path)
    _, _, _, _, _, snaplen, linktype = struct.unpack_from(order + _GLOBAL, data, 0)
    record_header = struct.Struct(order + _RECORD)
    records = []
    offset = GLOBAL_HEADER.size
    while offset + record_header.size <= len(data):
        seconds, fraction, captured, length = record_header.unpack_from(data, offset)
        offset += record_header.size
        if offset + captured > len(data):
            break
        records.append(PcapRecord(seconds + fraction / divisor, data[offset:offset + captured], length))
        offset += captured
    return PcapFile(linktype, snaplen, records)


def _byte_order(data: bytes, path) -> tuple[str, int]:
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", data, 0)
        if magic == MAGIC_MICROSECONDS:
            return order, 1_000_000
        if magic == MAGIC_NANOSECONDS:
            return order, 1_000_000_000
    raise UmlguiError(f"{path} is not a classic pcap file (magic {data[:4].hex()})",
                      "open pcapng files with Wireshark; this reader handles classic pcap only")
