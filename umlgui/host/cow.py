"""UML copy-on-write (COW) disk files: read, create, check, merge, and the guest's view.

A COW file stacks a machine's own changes on a shared read-only backing image. Layout and
rules follow UML 6.1 and uml-utilities exactly (UML-INTERFACES.md §3): headers v1, v2, v3 and
the broken 64-bit v3 are read; v3 is written, byte-compatible with `uml_mkcow`.

This module is the only place that knows the format; everything here is synchronous and
Qt-free. Long operations (`merge`) take `progress` and `cancel` callbacks so a GUI thread
can drive them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from umlgui.errors import ConfigError, NotFoundError, StateError, UmlguiError

COW_MAGIC = 0x4F4F4F4D
SECTOR_SIZE = 512
DEFAULT_ALIGNMENT = 4096          # host page size, what UML and uml_mkcow use
BACKING_PATH_MAX = 4096           # v2/v3 backing_file field, including the NUL

# struct layouts (UML-INTERFACES.md Appendix A). v1 is host byte order, the rest big-endian.
_V1 = struct.Struct("=ii256sIQi")
_V2 = struct.Struct(">II4096sIQi")
_V3 = struct.Struct(">IIIQIII4096s")
_V3_BROKEN = struct.Struct(">III4xQIII4096s4x")

# Merges and reads work on runs of this many sectors (1 MiB); a multiple of 8 keeps every
# run's bitmap on whole bytes.
CHUNK_SECTORS = 2048
_PROGRESS_EVERY = 16 << 20
_PAGE = 4096


class CowFormatError(UmlguiError):
    """A file starts with the COW magic but its header cannot be used."""


class CowMismatchError(UmlguiError):
    """The backing file does not match the COW header (what UML refuses to open)."""

    def __init__(self, problem: str, fix: str | None = None, *, cow_path=None, backing_path=None,
                 header_size=None, actual_size=None, header_mtime=None, actual_mtime=None):
        super().__init__(problem, fix)
        self.cow_path = cow_path
        self.backing_path = backing_path
        self.header_size = header_size
        self.actual_size = actual_size
        self.header_mtime = header_mtime
        self.actual_mtime = actual_mtime


class BackingMissingError(CowMismatchError, NotFoundError):
    """The backing file named by a COW header (or given instead) does not exist."""


class MergeCancelled(UmlguiError):
    """`merge` stopped because `cancel()` returned True."""


@dataclass(frozen=True)
class CowHeader:
    """A parsed COW header plus the derived layout UML computes from it.

    `path` is the COW file the header was read from (None for a header not read from disk);
    `broken_layout` marks the pre-2005 64-bit v3 variant.
    """

    version: int
    backing_file: str
    mtime: int
    size: int
    sectorsize: int
    alignment: int
    bitmap_offset: int
    bitmap_len: int
    data_offset: int
    path: str | None = None
    broken_layout: bool = False

    @property
    def sectors(self) -> int:
        """Sectors of the guest disk, counting a trailing partial sector."""
        return -(-self.size // self.sectorsize)


# ----------------------------------------------------------------------------- OS errors

def describe_os_error(exc: OSError, path, action: str) -> UmlguiError:
    """A UmlguiError for an OSError met while doing `action` ("read", "create"...) on `path`.

    Shared by the host disk modules so every file problem reads the same way.
    """
    path = str(path)
    code = exc.errno
    if code == errno.ENOENT:
        return NotFoundError(f"cannot {action} {path}: it does not exist",
                             "check the path, or create the file first")
    if code == errno.EISDIR:
        return UmlguiError(f"cannot {action} {path}: it is a directory, not a disk image file",
                           "choose a file inside the directory, not the directory itself")
    if code == errno.ENOTDIR:
        return NotFoundError(f"cannot {action} {path}: a part of the path is not a directory",
                             "check the path")
    if code in (errno.EACCES, errno.EPERM):
        return UmlguiError(f"cannot {action} {path}: permission denied",
                           "check the owner and mode of the file and its directory")
    if code in (errno.ENOSPC, errno.EDQUOT):
        mount = mount_point(path)
        return UmlguiError(f"cannot {action} {path}: the filesystem at {mount} is full",
                           f"free space on {mount}, or choose a location on another filesystem")
    if code == errno.EROFS:
        mount = mount_point(path)
        return UmlguiError(f"cannot {action} {path}: the filesystem at {mount} is read-only",
                           "choose a writable location")
    if code == errno.EEXIST:
        return UmlguiError(f"cannot {action} {path}: it already exists",
                           "choose another name, or remove the existing file first")
    if code == errno.EFBIG:
        return UmlguiError(f"cannot {action} {path}: the file would be larger than its "
                           f"filesystem allows", "choose a smaller size or another filesystem")
    return UmlguiError(f"cannot {action} {path}: {exc.strerror or exc}")


def mount_point(path) -> str:
    """The mount point of the filesystem holding `path` (or where it would be created)."""
    probe = os.path.abspath(str(path))
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    while not os.path.ismount(probe):
        probe = os.path.dirname(probe)
    return probe


def _pread_full(fd: int, length: int, offset: int) -> bytes:
    """`length` bytes at `offset`, zero-padded past end of file (sparse COW files may be short)."""
    parts = []
    while length > 0:
        piece = os.pread(fd, min(length, 64 << 20), offset)
        if not piece:
            parts.append(bytes(length))
            break
        parts.append(piece)
        length -= len(piece)
        offset += len(piece)
    return b"".join(parts)


def _pwrite_full(fd: int, data, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


# -------------------------------------------------------------------------- file locks

_FLOCK = struct.Struct("hhqqi4x")      # struct flock on Linux x86-64/aarch64


def _lock(fd: int, path, exclusive: bool) -> None:
    """Take the POSIX lock UML takes (so we never touch a disk a running machine holds)."""
    try:
        fcntl.lockf(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise describe_os_error(exc, path, "lock") from exc
        holder = _lock_holder(fd, exclusive)
        who = f"process {holder}" if holder else "another process"
        raise StateError(f"{path} is in use: {who} holds a lock on it "
                         f"(most likely a running machine)",
                         "stop the machine that uses this disk, then try again") from exc


def lock_holder(path, exclusive: bool) -> int | None:
    """The process whose lock would stop UML locking `path` for writing (exclusive) or for
    reading, as it does every disk not flagged shared; None if there is none or the file
    cannot be opened. Not for a process that holds locks on `path` itself: closing the file
    here would drop them, and a process never sees its own locks."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _lock_holder(fd, exclusive)
    finally:
        os.close(fd)


def _lock_holder(fd: int, exclusive: bool) -> int | None:
    try:
        query = _FLOCK.pack(fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
        l_type, _, _, _, pid = _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, query))
    except OSError:
        return None
    return pid if l_type != fcntl.F_UNLCK and pid > 0 else None


# ------------------------------------------------------------------------------ header

def _cstring(raw: bytes) -> str:
    return os.fsdecode(raw.split(b"\0", 1)[0])


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _layout_v3(size: int, sectorsize: int, alignment: int, header_len: int) -> tuple[int, int, int]:
    bitmap_offset = _round_up(header_len, alignment)
    bitmap_len = -(-(-(-size // sectorsize)) // 8)
    data_offset = _round_up(bitmap_offset + bitmap_len, alignment)
    return bitmap_offset, bitmap_len, data_offset


def _layout_v1_v2(size: int, sectorsize: int, header_len: int) -> tuple[int, int, int]:
    # Integer division exactly as UML: under-counts by a byte for some sizes (kept on purpose).
    bitmap_len = (size + sectorsize - 1) // (8 * sectorsize)
    data_offset = _round_up(header_len + bitmap_len, sectorsize)
    return header_len, bitmap_len, data_offset


def parse_header(raw: bytes, path: str | None = None) -> CowHeader | None:
    """Parse the first bytes of a file (at least 4136 when available); None if not COW."""
    if len(raw) < 8:
        return None
    where = path or "the file"
    if struct.unpack_from("=I", raw)[0] == COW_MAGIC:
        version = struct.unpack_from("=i", raw, 4)[0]
        if version != 1:
            raise CowFormatError(f"{where} has a host-order COW magic but version {version}, "
                                 f"not 1", "the file is damaged or not a UML COW file")
        return _parse_v1(raw, path, where)
    if struct.unpack_from(">I", raw)[0] != COW_MAGIC:
        return None
    version = struct.unpack_from(">I", raw, 4)[0]
    if version == 2:
        return _parse_v2(raw, path, where)
    if version == 3:
        return _parse_v3(raw, path, where)
    raise CowFormatError(f"{where} is a COW file of unknown version {version}",
                         "only versions 1, 2 and 3 exist; the file is probably damaged")


def _need(raw: bytes, length: int, where: str) -> None:
    if len(raw) < length:
        raise CowFormatError(f"{where} has a COW magic but its header is cut short "
                             f"({len(raw)} of {length} bytes)",
                             "the file is damaged; re-create the COW layer")


def _check_geometry(sectorsize: int, alignment: int, where: str) -> None:
    if sectorsize <= 0 or alignment <= 0:
        raise CowFormatError(f"{where} has an invalid COW header (sector size {sectorsize}, "
                             f"alignment {alignment})",
                             "the file is damaged; re-create the COW layer")


def _parse_v1_v2(version: int, layout_struct, raw, path, where) -> CowHeader:
    """v1 and v2 differ only in byte order and path length (the structs say which)."""
    _need(raw, layout_struct.size, where)
    _, _, backing, mtime, size, sectorsize = layout_struct.unpack_from(raw)
    _check_geometry(sectorsize, sectorsize, where)
    layout = _layout_v1_v2(size, sectorsize, layout_struct.size)
    return CowHeader(version, _cstring(backing), mtime, size, sectorsize, sectorsize, *layout, path=path)


def _parse_v1(raw, path, where) -> CowHeader:
    return _parse_v1_v2(1, _V1, raw, path, where)


def _parse_v2(raw, path, where) -> CowHeader:
    return _parse_v1_v2(2, _V2, raw, path, where)


def _parse_v3(raw, path, where) -> CowHeader:
    _need(raw, _V3.size, where)
    # A correct v3 has the backing path at offset 32; zeros there mean the broken layout,
    # whose cow_format word (0) sits at 32 and path at 36 (UML does the same test).
    if raw[32:36] != bytes(4):
        layout_struct, broken = _V3, False
    else:
        _need(raw, _V3_BROKEN.size, where)
        layout_struct, broken = _V3_BROKEN, True
    _, _, mtime, size, sectorsize, alignment, cow_format, backing = layout_struct.unpack_from(raw)
    if cow_format != 0:
        raise CowFormatError(f"{where} uses COW format {cow_format}, not the bitmap format (0)",
                             "the file is damaged or was made by an unknown tool")
    _check_geometry(sectorsize, alignment, where)
    if not backing.split(b"\0", 1)[0]:
        raise CowFormatError(f"{where} is a COW file without a backing file name",
                             "the file is damaged; re-create the COW layer")
    layout = _layout_v3(size, sectorsize, alignment, layout_struct.size)
    return CowHeader(3, _cstring(backing), mtime, size, sectorsize, alignment, *layout,
                     path=path, broken_layout=broken)


def read_header(path) -> CowHeader | None:
    """The COW header of `path`, or None when the file is not a COW file.

    Raises NotFoundError for a missing file, UmlguiError for a directory or unreadable
    file, CowFormatError for a file with the COW magic but an unusable header.
    """
    path = str(path)
    try:
        with open(path, "rb") as file:
            raw = file.read(_V3_BROKEN.size)
    except OSError as exc:
        raise describe_os_error(exc, path, "read") from exc
    return parse_header(raw, path)


def absolute_backing_path(backing_path) -> str:
    """The path UML and uml_mkcow store: the directory resolved, the last name kept as given."""
    backing_path = os.fspath(backing_path)
    directory, name = os.path.split(backing_path)
    return os.path.join(os.path.realpath(directory or "."), name)


def create_cow(cow_path, backing_path, *, force: bool = False) -> CowHeader:
    """Create a v3 COW file over `backing_path`, as `uml_mkcow [-f] COW BACKING` does.

    Absolute backing path, sector size 512, alignment 4096, zero bitmap, sparse, mode 0644
    (less the umask, like uml_mkcow). Refuses an existing `cow_path` unless `force`.
    """
    cow_path = str(cow_path)
    backing = absolute_backing_path(backing_path)
    stat = _stat_backing_for_create(backing)
    encoded = os.fsencode(backing)
    if len(encoded) >= BACKING_PATH_MAX:
        raise ConfigError(f"backing file path is too long for a COW header ({len(encoded)} bytes, "
                          f"at most {BACKING_PATH_MAX - 1}): {backing}",
                          "move the backing file to a shorter path")
    # The header field is u32; UML and uml_mkcow truncate the same way.
    mtime = int(stat.st_mtime) & 0xFFFFFFFF
    raw = _V3.pack(COW_MAGIC, 3, mtime, stat.st_size, SECTOR_SIZE, DEFAULT_ALIGNMENT, 0, encoded)
    header = parse_header(raw, cow_path)
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(cow_path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise UmlguiError(f"COW file {cow_path} already exists",
                              "choose another name, remove the old file, or overwrite it "
                              "(its changes are lost)") from exc
        raise describe_os_error(exc, cow_path, "create") from exc
    try:
        _pwrite_full(fd, raw, 0)
        os.ftruncate(fd, header.data_offset + header.size)
    except OSError as exc:
        os.close(fd)
        _remove_quietly(cow_path)
        raise describe_os_error(exc, cow_path, "write") from exc
    os.close(fd)
    return header


def _stat_backing_for_create(backing: str) -> os.stat_result:
    try:
        stat = os.stat(backing)
    except OSError as exc:
        raise describe_os_error(exc, backing, "use as backing file") from exc
    if os.path.isdir(backing):
        raise UmlguiError(f"backing file {backing} is a directory, not a disk image",
                          "choose the image file (e.g. base.img) inside it")
    if read_header(backing) is not None:
        raise ConfigError(f"backing file {backing} is itself a COW file; UML cannot stack "
                          f"COW layers", "merge it into a standalone image first, and use that "
                                         "as the backing file")
    return stat


def _remove_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def check_backing(header: CowHeader, backing_path=None) -> Path:
    """Check the backing file the way UML does at open: same size and same mtime (seconds).

    `backing_path` overrides the path in the header (like `uml_moo -b`). Returns the backing
    file's path; raises BackingMissingError or CowMismatchError with the fix.
    """
    backing = os.fspath(backing_path) if backing_path is not None else header.backing_file
    cow = header.path or "the COW file"
    details = dict(cow_path=header.path, backing_path=backing,
                   header_size=header.size, header_mtime=header.mtime)
    try:
        stat = os.stat(backing)
    except FileNotFoundError as exc:
        raise BackingMissingError(
            f"the backing file {backing} of {cow} does not exist",
            "put the backing image back at that path, or point the disk at where it is now "
            "(the file must be the same one the COW layer was made on)", **details) from exc
    except OSError as exc:
        raise describe_os_error(exc, backing, "read backing file") from exc
    if os.path.isdir(backing):
        raise CowMismatchError(f"the backing file {backing} of {cow} is a directory",
                               "point the disk at the backing image file", **details)
    details.update(actual_size=stat.st_size, actual_mtime=int(stat.st_mtime))
    if stat.st_size != header.size:
        raise CowMismatchError(
            f"the backing file {backing} does not match {cow}: size {stat.st_size} bytes, "
            f"but the COW header says {header.size}",
            f"point the disk at the backing file the COW layer was made on (one of "
            f"{header.size} bytes), or re-create the COW layer (its changes are lost)", **details)
    if int(stat.st_mtime) != header.mtime:
        raise CowMismatchError(
            f"the backing file {backing} does not match {cow}: modified at {int(stat.st_mtime)}, "
            f"but the COW header says {header.mtime} (sizes match)",
            f"if the backing file's content has not changed since the COW layer was made, "
            f"restore its time with: touch -d @{header.mtime} {backing} ; otherwise re-create "
            f"the COW layer (its changes are lost)", **details)
    return Path(backing)


# ------------------------------------------------------------------------------ bitmap

def _bit_runs(bits: int, count: int) -> Iterator[tuple[int, int, bool]]:
    """(start, length, is_set) runs over the low `count` bits of `bits` (bit 0 first)."""
    position = 0
    while position < count:
        rest = bits >> position
        if rest & 1:
            length = (~rest & (rest + 1)).bit_length() - 1        # trailing ones
            is_set = True
        else:
            length = (rest & -rest).bit_length() - 1 if rest else count - position  # trailing zeros
            is_set = False
        length = min(length, count - position)
        yield position, length, is_set
        position += length


def _bits_for(bitmap_bytes: bytes, first_bit: int, count: int) -> int:
    """The `count` bits starting at bit `first_bit` of `bitmap_bytes`, as an int (LSB first)."""
    value = int.from_bytes(bitmap_bytes, "little") >> first_bit
    return value & ((1 << count) - 1)


class _Bitmap:
    """Reads bitmap bits for sector ranges; bits past the header's bitmap_len read as clear."""

    def __init__(self, fd: int, header: CowHeader):
        self.fd = fd
        self.header = header

    def bytes_for(self, first_sector: int, count: int) -> tuple[bytes, int]:
        first_byte = first_sector // 8
        end_byte = min(-(-(first_sector + count) // 8), self.header.bitmap_len)
        raw = b""
        if end_byte > first_byte:
            position = self.header.bitmap_offset + first_byte
            raw = _pread_full(self.fd, end_byte - first_byte, position)
        return raw, first_byte

    def bits(self, first_sector: int, count: int) -> int:
        raw, first_byte = self.bytes_for(first_sector, count)
        return _bits_for(raw, first_sector - first_byte * 8, count)


# ------------------------------------------------------------------------------ CowImage

class CowImage:
    """The guest's view of a COW disk: sectors with their bit set come from the COW file,
    the rest from the backing file.

    `write` changes the COW file as UML does (data first, then the bitmap bits). A writable
    CowImage takes UML's locks (write lock on the COW file, read lock on the backing file),
    so it cannot be opened while a machine uses the disk.
    """

    def __init__(self, cow_path, *, backing=None, writable: bool = False, check: bool = True):
        self.path = str(cow_path)
        header = read_header(self.path)
        if header is None:
            raise UmlguiError(f"{self.path} is not a UML COW file",
                              "open it as a plain image instead")
        self.header = header
        self.backing_path = str(check_backing(header, backing) if check
                                else (backing or header.backing_file))
        self.writable = writable
        self._cow_fd = self._open(self.path, os.O_RDWR if writable else os.O_RDONLY)
        try:
            self._backing_fd = self._open(self.backing_path, os.O_RDONLY)
        except UmlguiError:
            os.close(self._cow_fd)
            raise
        self._bitmap = _Bitmap(self._cow_fd, header)
        if writable:
            try:
                _lock(self._cow_fd, self.path, exclusive=True)
                _lock(self._backing_fd, self.backing_path, exclusive=False)
            except UmlguiError:
                self.close()
                raise

    @staticmethod
    def _open(path: str, flags: int) -> int:
        try:
            return os.open(path, flags | os.O_CLOEXEC)
        except OSError as exc:
            raise describe_os_error(exc, path, "open") from exc

    @property
    def size(self) -> int:
        """Size of the guest disk in bytes (the backing file's size)."""
        return self.header.size

    def close(self) -> None:
        for name in ("_cow_fd", "_backing_fd"):
            fd = getattr(self, name, None)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def __enter__(self) -> CowImage:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def sector_in_cow(self, sector: int) -> bool:
        """True when the guest has written `sector` (its data lives in the COW file)."""
        return bool(self._bitmap.bits(sector, 1))

    def changed_sectors(self) -> int:
        """How many sectors the COW layer holds."""
        total = 0
        step = CHUNK_SECTORS * 64
        for first in range(0, self.header.sectors, step):
            raw, _ = self._bitmap.bytes_for(first, min(step, self.header.sectors - first))
            total += int.from_bytes(raw, "little").bit_count()
        return total

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes of the guest disk at `offset` (short at the end of the disk)."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        end = min(offset + length, self.size)
        if end <= offset:
            return b""
        sectorsize = self.header.sectorsize
        first = offset // sectorsize
        count = -(-end // sectorsize) - first
        parts = []
        for run_start, run_len, in_cow in _bit_runs(self._bitmap.bits(first, count), count):
            start = max(offset, (first + run_start) * sectorsize)
            stop = min(end, (first + run_start + run_len) * sectorsize)
            if in_cow:
                position = self.header.data_offset + start
                parts.append(_pread_full(self._cow_fd, stop - start, position))
            else:
                parts.append(_pread_full(self._backing_fd, stop - start, start))
        return b"".join(parts)

    def write(self, offset: int, data: bytes) -> None:
        """Write `data` at `offset` of the guest disk into the COW file, UML's way.

        Partial sectors are completed from the current guest view, so the COW file only ever
        holds whole sectors.
        """
        if not self.writable:
            raise StateError(f"{self.path} was opened read-only", "open it with writable=True")
        if offset < 0 or offset + len(data) > self.size:
            raise ValueError(f"write of {len(data)} bytes at {offset} is outside the "
                             f"{self.size}-byte disk")
        if not data:
            return
        sectorsize = self.header.sectorsize
        first = offset // sectorsize
        end_sector = -(-(offset + len(data)) // sectorsize)
        aligned_start = first * sectorsize
        buffer = bytearray(self.read(aligned_start, end_sector * sectorsize - aligned_start))
        buffer.extend(bytes(end_sector * sectorsize - aligned_start - len(buffer)))
        buffer[offset - aligned_start:offset - aligned_start + len(data)] = data
        try:
            _pwrite_full(self._cow_fd, buffer, self.header.data_offset + aligned_start)
            self._set_bits(first, end_sector - first)
        except OSError as exc:
            raise describe_os_error(exc, self.path, "write") from exc

    def _set_bits(self, first_sector: int, count: int) -> None:
        first_byte = first_sector // 8
        end_byte = -(-(first_sector + count) // 8)
        if end_byte > self.header.bitmap_len:
            # v1/v2 bitmaps can be a byte short: UML would set bits it never reads back.
            end_byte = self.header.bitmap_len
        if end_byte <= first_byte:
            return
        position = self.header.bitmap_offset + first_byte
        current = _pread_full(self._cow_fd, end_byte - first_byte, position)
        current = int.from_bytes(current, "little")
        current |= ((1 << count) - 1) << (first_sector - first_byte * 8)
        current &= (1 << ((end_byte - first_byte) * 8)) - 1
        _pwrite_full(self._cow_fd, current.to_bytes(end_byte - first_byte, "little"), position)

    def flush(self) -> None:
        """fsync the COW file."""
        os.fsync(self._cow_fd)


# ------------------------------------------------------------------------------- merge

ProgressCallback = Callable[[int, int], None]
CancelCallback = Callable[[], bool]


def merge(cow_path, output_path=None, *, backing=None,
          progress: ProgressCallback | None = None, cancel: CancelCallback | None = None) -> Path:
    """Merge a COW file with its backing file, as `uml_moo` does; returns the result's path.

    With `output_path`: writes a new standalone sparse image there (the file must not exist):
    sectors whose bit is set come from the COW file, the rest from the backing file; all-zero
    blocks are left as holes. The image has the backing file's exact size (uml_moo drops a
    trailing partial sector; nothing else differs). On cancel or error the new file is removed.

    Without `output_path`: merges in place into the backing file (`uml_moo -d`): only the
    sectors the guest wrote are written. WARNING: this changes the backing file and its
    mtime, so every other COW layer made over it becomes invalid (and would see a corrupted
    disk if its mtime were restored). The COW file itself is never changed. If cancelled (or
    on an error) midway the backing file is left partly merged: the sectors done so far hold
    the COW's data. The COW file still holds everything; `MergeCancelled` says how to
    restore the backing file's mtime and finish the merge.

    `backing` overrides the header's backing path (`uml_moo -b`); size and mtime must still
    match. `progress(done_bytes, total_bytes)` is called periodically; `cancel()` is polled
    between 1 MiB chunks and raises MergeCancelled when it returns True. Refuses disks in use
    by a running machine (UML's file locks).
    """
    cow_path = str(cow_path)
    header = read_header(cow_path)
    if header is None:
        raise UmlguiError(f"{cow_path} is not a UML COW file, so there is nothing to merge",
                          "choose the machine's COW file (the one whose backing file you want "
                          "to merge into)")
    backing_path = str(check_backing(header, backing))
    job = _MergeJob(header, cow_path, backing_path, progress, cancel)
    if output_path is None:
        job.in_place()
        return Path(backing_path)
    job.to_new_image(str(output_path))
    return Path(output_path)


class _MergeJob:
    def __init__(self, header: CowHeader, cow_path: str, backing_path: str,
                 progress: ProgressCallback | None, cancel: CancelCallback | None):
        self.header = header
        self.cow_path = cow_path
        self.backing_path = backing_path
        self.progress = progress
        self.cancel = cancel
        self._reported = 0

    # Each chunk: (byte offset, byte length, bitmap bits of its sectors, sector count).
    def _chunks(self, bitmap: _Bitmap) -> Iterator[tuple[int, int, int, int]]:
        header = self.header
        chunk_bytes = CHUNK_SECTORS * header.sectorsize
        for first in range(0, header.sectors, CHUNK_SECTORS):
            count = min(CHUNK_SECTORS, header.sectors - first)
            offset = first * header.sectorsize
            yield offset, min(chunk_bytes, header.size - offset), bitmap.bits(first, count), count
            self._step(min(offset + chunk_bytes, header.size))

    def _step(self, done: int) -> None:
        if self.progress and (done - self._reported >= _PROGRESS_EVERY or done >= self.header.size):
            self._reported = done
            self.progress(done, self.header.size)
        if self.cancel and done < self.header.size and self.cancel():
            raise MergeCancelled("merge cancelled")

    def _open(self, path: str, flags: int, what: str, mode: int = 0o644) -> int:
        try:
            return os.open(path, flags | os.O_CLOEXEC, mode)
        except OSError as exc:
            raise describe_os_error(exc, path, what) from exc

    def _compose(self, cow_fd: int, offset: int, length: int, bits: int, count: int,
                 backing_fd: int) -> bytes:
        """The guest's view of one chunk."""
        data_at = self.header.data_offset + offset
        if bits == 0:
            return _pread_full(backing_fd, length, offset)
        if bits == (1 << count) - 1:
            return _pread_full(cow_fd, length, data_at)
        merged = bytearray(_pread_full(backing_fd, length, offset))
        from_cow = _pread_full(cow_fd, length, data_at)
        sectorsize = self.header.sectorsize
        for start, run, in_cow in _bit_runs(bits, count):
            if in_cow:
                merged[start * sectorsize:(start + run) * sectorsize] = \
                    from_cow[start * sectorsize:(start + run) * sectorsize]
        return bytes(merged[:length])

    def to_new_image(self, output_path: str) -> None:
        if os.path.lexists(output_path):
            raise UmlguiError(f"cannot merge into {output_path}: the file already exists",
                              "choose a new file name, or remove the existing file first")
        cow_fd = self._open(self.cow_path, os.O_RDONLY, "read")
        backing_fd = out_fd = None
        try:
            _lock(cow_fd, self.cow_path, exclusive=False)
            backing_fd = self._open(self.backing_path, os.O_RDONLY, "read")
            out_fd = self._open(output_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "create")
            try:
                self._copy_chunks(cow_fd, backing_fd, out_fd, output_path)
            except BaseException:
                os.close(out_fd)
                out_fd = None
                _remove_quietly(output_path)
                raise
        finally:
            for fd in (cow_fd, backing_fd, out_fd):
                if fd is not None:
                    os.close(fd)

    def _copy_chunks(self, cow_fd: int, backing_fd: int, out_fd: int, output_path: str) -> None:
        try:
            os.ftruncate(out_fd, self.header.size)
            holes = _HoleFinder(backing_fd)
            for offset, length, bits, count in self._chunks(_Bitmap(cow_fd, self.header)):
                if bits == 0 and holes.is_hole(offset, length):
                    continue
                data = self._compose(cow_fd, offset, length, bits, count, backing_fd)
                _write_skipping_zeros(out_fd, data, offset)
            os.fsync(out_fd)
        except OSError as exc:
            raise describe_os_error(exc, output_path, "write") from exc

    def in_place(self) -> None:
        cow_fd = self._open(self.cow_path, os.O_RDONLY, "read")
        backing_fd = None
        try:
            _lock(cow_fd, self.cow_path, exclusive=False)
            backing_fd = self._open(self.backing_path, os.O_RDWR, "write")
            _lock(backing_fd, self.backing_path, exclusive=True)
            try:
                for offset, length, bits, count in self._chunks(_Bitmap(cow_fd, self.header)):
                    if bits:
                        self._write_runs(cow_fd, backing_fd, offset, length, bits, count)
                os.fsync(backing_fd)
            except OSError as exc:
                raise describe_os_error(exc, self.backing_path, "write") from exc
            except MergeCancelled as exc:
                raise MergeCancelled(
                    f"merge of {self.cow_path} into {self.backing_path} cancelled; the backing "
                    f"file is partly merged and must not be used on its own",
                    f"to finish the merge, restore the backing file's time with "
                    f"touch -d @{self.header.mtime} {self.backing_path} and merge again; the "
                    f"COW file still holds all changes") from exc
        finally:
            for fd in (cow_fd, backing_fd):
                if fd is not None:
                    os.close(fd)

    def _write_runs(self, cow_fd, backing_fd, offset, length, bits, count) -> None:
        sectorsize = self.header.sectorsize
        from_cow = _pread_full(cow_fd, length, self.header.data_offset + offset)
        for start, run, in_cow in _bit_runs(bits, count):
            if in_cow:
                piece = from_cow[start * sectorsize:min((start + run) * sectorsize, length)]
                _pwrite_full(backing_fd, piece, offset + start * sectorsize)


class _HoleFinder:
    """Tells whether a byte range of a file is a hole, so merges skip unallocated backing data."""

    def __init__(self, fd: int):
        self.fd = fd
        self.next_data = 0           # no data in [checked_from, next_data)
        self.checked_from = -1

    def is_hole(self, offset: int, length: int) -> bool:
        if not (self.checked_from <= offset < self.next_data):
            try:
                self.next_data = os.lseek(self.fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:        # ENXIO: only a hole up to end of file
                    return False
                self.next_data = 1 << 63
            self.checked_from = offset
        return offset + length <= self.next_data


_ZERO_PAGE = bytes(_PAGE)


def _write_skipping_zeros(fd: int, data: bytes, offset: int) -> None:
    """Write `data` at `offset`, leaving all-zero 4 KiB blocks as holes (the file is pre-sized)."""
    if data.count(0) == len(data):
        return
    view = memoryview(data)
    run_start = None
    for block in range(0, len(data), _PAGE):
        piece = view[block:block + _PAGE]
        is_zero = piece == _ZERO_PAGE[:len(piece)]
        if is_zero and run_start is not None:
            _pwrite_full(fd, view[run_start:block], offset + run_start)
            run_start = None
        elif not is_zero and run_start is None:
            run_start = block
    if run_start is not None:
        _pwrite_full(fd, view[run_start:], offset + run_start)
