"""Disk image files on the host: create sparse images, format them ext4, inspect them.

Qt-free and synchronous. COW files are handled by umlgui.host.cow; `inspect` looks through a
COW layer to report the guest's filesystem and the backing chain.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from umlgui.errors import ConfigError, NotFoundError, UmlguiError
from umlgui.host import cow
from umlgui.host.cow import describe_os_error, mount_point
from umlgui.model.units import parse_size

SECTOR_SIZE = 512
MIN_EXT4_SIZE = 1 << 20          # mkfs.ext4 fails below ~128 KiB; under 1 MiB is of no use
EXT4_LABEL_MAX = 16
# mkfs.ext4 lives in /usr/sbin, which is not on an ordinary user's PATH on Debian.
SYSTEM_TOOL_DIRS = ("/usr/sbin", "/sbin")
MKFS_TIMEOUT = 600


@dataclass
class ImageInfo:
    """What `inspect` finds out about an image file.

    `filesystem` is the guest's view ("ext4", "swap", ... or None when unknown); for a COW
    file it is read through the COW layer. `backing_chain` lists the backing files, nearest
    first (empty for a plain image). `backing_ok` is None for a plain image, else whether
    the backing file exists and matches the header; `backing_problem` then says why not.
    """

    path: Path
    apparent_size: int
    allocated_bytes: int
    guest_size: int
    filesystem: str | None = None
    label: str | None = None
    uuid: str | None = None
    cow: cow.CowHeader | None = None
    cow_changed_bytes: int | None = None
    backing_chain: list[Path] = field(default_factory=list)
    backing_ok: bool | None = None
    backing_problem: str | None = None


# ------------------------------------------------------------------------------ create

def _image_size(size, minimum: int = SECTOR_SIZE) -> int:
    size = parse_size(size, "image size")
    if size < minimum:
        raise ConfigError(f"image size {size} bytes is too small (at least {minimum} bytes)",
                          "choose a larger size, e.g. 256M or 1G")
    if size % SECTOR_SIZE:
        raise ConfigError(f"image size {size} bytes is not a multiple of {SECTOR_SIZE}",
                          "use a size in K, M or G, e.g. 256M or 1G")
    return size


def create_sparse(path, size) -> Path:
    """Create a sparse file of `size` bytes (int or '256M'); refuses an existing file."""
    size = _image_size(size)
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError as exc:
        raise UmlguiError(f"cannot create image {path}: the file already exists",
                          "choose another name, or remove the existing file first") from exc
    except OSError as exc:
        raise describe_os_error(exc, path, "create image") from exc
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise describe_os_error(exc, path, "create image") from exc
    os.close(fd)
    return path


def find_tool(name: str, package: str) -> str:
    """The path of a host tool, looking in PATH and the sbin directories."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SYSTEM_TOOL_DIRS])
    found = shutil.which(name, path=search)
    if not found:
        raise NotFoundError(f"the program {name} was not found",
                            f"install it: apt-get install {package}")
    return found


def format_ext4(path, label: str | None = None, root_dir=None) -> None:
    """Make an ext4 filesystem in the image file `path` (`mkfs.ext4 -q -F`).

    `root_dir` populates it with that directory's contents (`-d`). Refuses anything but an
    existing regular file that is not a COW file.
    """
    path = Path(path)
    _check_formattable(path)
    command = [find_tool("mkfs.ext4", "e2fsprogs"), "-q", "-F"]
    if label is not None:
        if len(label.encode()) > EXT4_LABEL_MAX:
            raise ConfigError(f"filesystem label {label!r} is longer than {EXT4_LABEL_MAX} bytes",
                              "choose a shorter label")
        command += ["-L", label]
    if root_dir is not None:
        if not Path(root_dir).is_dir():
            raise NotFoundError(f"cannot fill the new filesystem from {root_dir}: "
                                f"not a directory", "choose an existing directory")
        command += ["-d", str(root_dir)]
    command.append(str(path))
    _run_mkfs(command, path)


def _check_formattable(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise describe_os_error(exc, path, "format") from exc
    if path.is_dir():
        raise UmlguiError(f"cannot format {path}: it is a directory, not a disk image file",
                          "choose an image file")
    if not path.is_file():
        raise UmlguiError(f"refusing to format {path}: it is not a regular file "
                          f"(mode {oct(mode)})", "umlgui only formats image files")
    if cow.read_header(path) is not None:
        raise UmlguiError(f"refusing to format {path}: it is a COW layer",
                          "format the backing image, or the guest disk from inside the machine")


def _run_mkfs(command: list[str], path: Path) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=MKFS_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise UmlguiError(f"mkfs.ext4 on {path} did not finish in {MKFS_TIMEOUT} s",
                          "check the disk holding the image") from exc
    if result.returncode == 0:
        return
    output = (result.stderr + result.stdout).strip()
    if "No space left on device" in output or _is_full(path):
        mount = mount_point(path)
        raise UmlguiError(f"cannot format {path}: the filesystem at {mount} is full",
                          f"free space on {mount}, or create the image on another filesystem")
    last_line = output.splitlines()[-1] if output else f"exit status {result.returncode}"
    raise UmlguiError(f"mkfs.ext4 failed on {path}: {last_line}",
                      "check the image file and the options (label, source directory)")


def _is_full(path: Path) -> bool:
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < (64 << 10)


def create_image(path, size, fs: str | None = "ext4", label: str | None = None,
                 root_dir=None) -> Path:
    """Create a sparse image, formatted with `fs` ("ext4" or None for a blank disk).

    On failure the half-made file is removed.
    """
    if fs not in ("ext4", None):
        raise ConfigError(f"unsupported filesystem {fs!r}", "use ext4, or none for a blank disk")
    if fs is None and (label is not None or root_dir is not None):
        raise ConfigError("a label or source directory needs a filesystem", "use fs='ext4'")
    size = _image_size(size, MIN_EXT4_SIZE if fs else SECTOR_SIZE)
    path = create_sparse(path, size)
    if fs == "ext4":
        try:
            format_ext4(path, label=label, root_dir=root_dir)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return path


# ----------------------------------------------------------------------------- inspect

def inspect(path) -> ImageInfo:
    """Size, allocation, filesystem, COW header and backing chain of an image file."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise describe_os_error(exc, path, "inspect") from exc
    if path.is_dir():
        raise UmlguiError(f"cannot inspect {path}: it is a directory, not a disk image file",
                          "choose an image file")
    info = ImageInfo(path=path, apparent_size=stat.st_size,
                     allocated_bytes=stat.st_blocks * 512, guest_size=stat.st_size)
    header = cow.read_header(path)
    if header is None:
        _fill_filesystem(info, lambda offset, length: _read_plain(path, offset, length))
        return info
    info.cow = header
    info.guest_size = header.size
    info.backing_chain = _backing_chain(header)
    try:
        cow.check_backing(header)
        info.backing_ok = True
    except UmlguiError as exc:
        info.backing_ok, info.backing_problem = False, str(exc)
        return info
    with cow.CowImage(path) as image:
        info.cow_changed_bytes = image.changed_sectors() * header.sectorsize
        _fill_filesystem(info, image.read)
    return info


def _read_plain(path: Path, offset: int, length: int) -> bytes:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read(length)
    except OSError as exc:
        raise describe_os_error(exc, path, "read") from exc


def _backing_chain(header: cow.CowHeader) -> list[Path]:
    """Backing files, nearest first. UML itself reads only one level; deeper levels appear
    when a backing file is (wrongly) a COW file, and are listed so the user can see that."""
    chain: list[Path] = []
    seen = {os.path.realpath(header.path)} if header.path else set()
    while header is not None:
        backing = Path(header.backing_file)
        chain.append(backing)
        if os.path.realpath(backing) in seen or not backing.is_file():
            break
        seen.add(os.path.realpath(backing))
        try:
            header = cow.read_header(backing)
        except UmlguiError:
            break
    return chain


# ------------------------------------------------------------------------- filesystems

_EXT_MAGIC = b"\x53\xef"
# Features ext3 understands; anything more means the filesystem needs ext4 (as blkid decides).
_EXT3_INCOMPAT = 0x0002 | 0x0004 | 0x0010     # filetype, recover, meta_bg
_EXT3_RO_COMPAT = 0x0001 | 0x0002 | 0x0004    # sparse_super, large_file, btree_dir
_HAS_JOURNAL = 0x0004


def _fill_filesystem(info: ImageInfo, read) -> None:
    head = read(0, 0x10100)
    superblock = head[1024:2048]
    if len(superblock) >= 0x78 + 16 and superblock[0x38:0x3A] == _EXT_MAGIC:
        info.filesystem = _ext_flavour(superblock)
        info.label = superblock[0x78:0x88].split(b"\0", 1)[0].decode(errors="replace") or None
        info.uuid = _format_uuid(superblock[0x68:0x78])
    elif head[4086:4096] in (b"SWAPSPACE2", b"SWAP-SPACE"):
        info.filesystem = "swap"
    elif head[0:4] == b"XFSB":
        info.filesystem = "xfs"
    elif head[0:4] == b"hsqs":
        info.filesystem = "squashfs"
    elif head[0x10040:0x10048] == b"_BHRfS_M":
        info.filesystem = "btrfs"


def _ext_flavour(superblock: bytes) -> str:
    compat = int.from_bytes(superblock[0x5C:0x60], "little")
    incompat = int.from_bytes(superblock[0x60:0x64], "little")
    ro_compat = int.from_bytes(superblock[0x64:0x68], "little")
    if incompat & ~_EXT3_INCOMPAT or ro_compat & ~_EXT3_RO_COMPAT:
        return "ext4"
    return "ext3" if compat & _HAS_JOURNAL else "ext2"


def _format_uuid(raw: bytes) -> str | None:
    if not any(raw):
        return None
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
