"""Path syscalls that read or open: open*, stat*, access*, readlink*, chdir, getcwd, ...

Opens of files in the guest root are turned into `openat2(..., RESOLVE_NO_SYMLINKS)` on the
fully resolved host path, so a symlink a guest swaps in after the translation cannot lead
the host kernel outside the guest root.
"""

from __future__ import annotations

import errno
import os
import stat
import struct

from ..os_linux.ptrace import R8, R10, RDI, RDX, RSI
from ..os_linux.syscall_numbers import NUMBERS
from .common import AT_FDCWD, REWRITTEN, Scratch, arg_fd, read_path, set_path_arg, \
    set_syscall, write_out

O_WRONLY = 0o1
O_RDWR = 0o2
O_CREAT = 0o100
O_EXCL = 0o200
O_TRUNC = 0o1000
O_APPEND = 0o2000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000
O_PATH = 0o10000000
O_TMPFILE = 0o20000000 | O_DIRECTORY
WRITE_FLAGS = O_WRONLY | O_RDWR | O_TRUNC | O_APPEND

AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
RESOLVE_NO_SYMLINKS = 0x04

STAT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")
STATX = struct.Struct("<IIQIIIHHQQQQ" + "qIi" * 4 + "IIIIQ104x")
STATX_BASIC_STATS = 0x7FF

_OPENAT2 = NUMBERS["openat2"]


# -- open -------------------------------------------------------------------------------------

def _open(guest, tracee, regs, dirfd: int, path_register: int, flags: int, mode: int):
    pid = tracee.pid
    path = read_path(pid, regs[path_register])
    # O_CREAT|O_EXCL must fail on any existing name, a dangling symlink included
    follow = not flags & O_NOFOLLOW and not (flags & O_CREAT and flags & O_EXCL)
    node = guest.resolver.resolve(pid, dirfd, path, follow=follow)
    writing = bool(flags & WRITE_FLAGS) or (flags & O_TMPFILE) == O_TMPFILE
    host = guest.prepare_open(tracee, node, flags, writing)
    if node.kind in ("union", "hostfs"):
        # openat2 refuses a mode without O_CREAT/O_TMPFILE
        creating = flags & O_CREAT or (flags & O_TMPFILE) == O_TMPFILE
        how = struct.pack("<QQQ", flags & 0xFFFFFFFF, (mode & 0o7777) if creating else 0,
                          RESOLVE_NO_SYMLINKS)
        scratch = Scratch(regs)
        path_address = scratch.add_string(host)
        how_address = scratch.add(how)
        scratch.flush(pid)
        set_syscall(regs, _OPENAT2, AT_FDCWD, path_address, how_address, len(how))
        return REWRITTEN
    scratch_result = set_path_arg(pid, regs, path_register, host)
    if path_register == RSI:
        regs[RDI] = AT_FDCWD & 0xFFFFFFFFFFFFFFFF
    return scratch_result


def sys_open(guest, tracee, regs):
    return _open(guest, tracee, regs, AT_FDCWD, RDI, regs[RSI], regs[RDX])


def sys_creat(guest, tracee, regs):
    return _open(guest, tracee, regs, AT_FDCWD, RDI, O_CREAT | O_WRONLY | O_TRUNC, regs[RSI])


def sys_openat(guest, tracee, regs):
    return _open(guest, tracee, regs, arg_fd(regs[RDI]), RSI, regs[RDX], regs[R10])


def sys_openat2(guest, tracee, regs):
    from ..os_linux import memory
    size = regs[R10]
    if size < 24:
        raise OSError(errno.EINVAL, "bad open_how size")
    try:
        flags, mode, resolve = struct.unpack("<QQQ", memory.read(tracee.pid, regs[RDX], 24))
    except memory.MemoryError_:
        raise OSError(errno.EFAULT, "bad address") from None
    return _open(guest, tracee, regs, arg_fd(regs[RDI]), RSI, flags, mode)


# -- stat ---------------------------------------------------------------------------------------

def _stat_node(guest, tracee, dirfd: int, path: str, follow: bool):
    return guest.resolver.resolve(tracee.pid, dirfd, path, follow=follow)


def _pack_stat(guest, node, st) -> bytes:
    uid, gid, mode, rdev = guest.presented_owner(node.guest, st)
    return STAT.pack(st.st_dev, st.st_ino, st.st_nlink, mode, uid, gid, 0, rdev, st.st_size,
                     st.st_blksize, st.st_blocks, int(st.st_atime), st.st_atime_ns % 10**9,
                     int(st.st_mtime), st.st_mtime_ns % 10**9, int(st.st_ctime),
                     st.st_ctime_ns % 10**9)


def _emulated_stat(guest, tracee, regs, dirfd: int, path_register: int, buffer: int,
                   follow: bool):
    path = read_path(tracee.pid, regs[path_register])
    if not follow and guest.native_stat_ok and path[:1] == "/":
        fast = guest.resolver.base_leaf(path)
        if fast is not None and fast[0] not in guest.sidetable.entries:
            # an untouched base file shows its host owner natively: let the host stat it
            if path_register == RSI:
                regs[RDI] = AT_FDCWD & 0xFFFFFFFFFFFFFFFF
            return set_path_arg(tracee.pid, regs, path_register, fast[1])
    node = _stat_node(guest, tracee, dirfd, path, follow)
    if node.kind not in ("union", "hostfs"):
        return _native_on(guest, tracee, regs, node, path_register)
    st = node.st
    if st is None:
        raise OSError(errno.ENOENT, "no such file or directory")
    if follow and stat.S_ISLNK(st.st_mode):
        st = os.stat(node.host)
    write_out(tracee.pid, buffer, _pack_stat(guest, node, st))
    return 0


def _native_on(guest, tracee, regs, node, path_register: int):
    """Let the host kernel run the syscall on a translated path (/proc, /dev, synthetic)."""
    if node.magic_target is not None and not node.host:
        raise OSError(errno.ENOENT, "no such file")
    if path_register == RSI:
        regs[RDI] = AT_FDCWD & 0xFFFFFFFFFFFFFFFF
    return set_path_arg(tracee.pid, regs, path_register, node.host)


def sys_stat(guest, tracee, regs):
    return _emulated_stat(guest, tracee, regs, AT_FDCWD, RDI, regs[RSI], True)


def sys_lstat(guest, tracee, regs):
    return _emulated_stat(guest, tracee, regs, AT_FDCWD, RDI, regs[RSI], False)


def sys_newfstatat(guest, tracee, regs):
    flags = regs[R10]
    if flags & AT_EMPTY_PATH and _is_empty_path(tracee.pid, regs[RSI]):
        return None                 # fstat() of an open fd: nothing to translate
    return _emulated_stat(guest, tracee, regs, arg_fd(regs[RDI]), RSI, regs[RDX],
                          not flags & AT_SYMLINK_NOFOLLOW)


def sys_statx(guest, tracee, regs):
    flags = regs[RDX]
    if flags & AT_EMPTY_PATH and _is_empty_path(tracee.pid, regs[RSI]):
        return None
    path = read_path(tracee.pid, regs[RSI])
    node = _stat_node(guest, tracee, arg_fd(regs[RDI]), path, not flags & AT_SYMLINK_NOFOLLOW)
    if node.kind not in ("union", "hostfs"):
        return _native_on(guest, tracee, regs, node, RSI)
    st = node.st
    if st is None:
        raise OSError(errno.ENOENT, "no such file or directory")
    if not flags & AT_SYMLINK_NOFOLLOW and stat.S_ISLNK(st.st_mode):
        st = os.stat(node.host)
    uid, gid, mode, rdev = guest.presented_owner(node.guest, st)
    times = []
    for seconds, nanoseconds in ((st.st_atime, st.st_atime_ns), (0, 0),
                                 (st.st_ctime, st.st_ctime_ns), (st.st_mtime, st.st_mtime_ns)):
        times += [int(seconds), nanoseconds % 10**9, 0]
    data = STATX.pack(STATX_BASIC_STATS, st.st_blksize, 0, st.st_nlink, uid, gid, mode & 0xFFFF,
                      0, st.st_ino, st.st_size, st.st_blocks, 0, *times,
                      os.major(rdev), os.minor(rdev), os.major(st.st_dev), os.minor(st.st_dev), 0)
    write_out(tracee.pid, regs[R8], data)
    return 0


def _is_empty_path(pid: int, address: int) -> bool:
    if address == 0:
        return True
    try:
        return read_path(pid, address) == ""
    except OSError:
        return False


# -- access, readlink, getcwd, chdir ----------------------------------------------------------

def _access(guest, tracee, regs, dirfd: int, path_register: int, mode: int, flags: int):
    path = read_path(tracee.pid, regs[path_register])
    node = guest.resolver.resolve(tracee.pid, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW)
    if node.kind not in ("union", "hostfs"):
        return _native_on(guest, tracee, regs, node, path_register)
    st = node.st
    if st is None:
        raise OSError(errno.ENOENT, "no such file or directory")
    if stat.S_ISLNK(st.st_mode) and not flags & AT_SYMLINK_NOFOLLOW:
        st = os.stat(node.host)
    _, _, presented_mode, _ = guest.presented_owner(node.guest, st)
    if mode & 1 and not stat.S_ISDIR(presented_mode) and not presented_mode & 0o111:
        raise OSError(errno.EACCES, "permission denied")
    if tracee.creds.euid != 0 and mode & 6:
        uid, _, _, _ = guest.presented_owner(node.guest, st)
        shift = 6 if uid == tracee.creds.euid else 0
        if (presented_mode >> shift) & (mode & 6) != (mode & 6):
            raise OSError(errno.EACCES, "permission denied")
    return 0


def sys_access(guest, tracee, regs):
    return _access(guest, tracee, regs, AT_FDCWD, RDI, regs[RSI], 0)


def sys_faccessat(guest, tracee, regs):
    return _access(guest, tracee, regs, arg_fd(regs[RDI]), RSI, regs[RDX], 0)


def sys_faccessat2(guest, tracee, regs):
    return _access(guest, tracee, regs, arg_fd(regs[RDI]), RSI, regs[RDX], regs[R10])


def _readlink(guest, tracee, regs, dirfd: int, path_register: int, buffer: int, size: int):
    path = read_path(tracee.pid, regs[path_register])
    node = guest.resolver.resolve(tracee.pid, dirfd, path, follow=False)
    if node.magic_target is not None:
        text = node.magic_target
    elif node.kind in ("union", "hostfs"):
        if node.st is None:
            raise OSError(errno.ENOENT, "no such file or directory")
        if not stat.S_ISLNK(node.st.st_mode):
            raise OSError(errno.EINVAL, "not a symbolic link")
        text = os.readlink(node.host)
    else:
        return _native_on(guest, tracee, regs, node, path_register)
    if size <= 0 or size > 0x7FFFFFFF:
        raise OSError(errno.EINVAL, "bad size")
    data = os.fsencode(text)[:size]
    write_out(tracee.pid, buffer, data)
    return len(data)


def sys_readlink(guest, tracee, regs):
    return _readlink(guest, tracee, regs, AT_FDCWD, RDI, regs[RSI], regs[RDX])


def sys_readlinkat(guest, tracee, regs):
    return _readlink(guest, tracee, regs, arg_fd(regs[RDI]), RSI, regs[RDX], regs[R10])


def sys_getcwd(guest, tracee, regs):
    cwd = os.fsencode(guest.resolver.guest_cwd(tracee.pid)) + b"\0"
    if regs[RSI] < len(cwd):
        raise OSError(errno.ERANGE, "buffer too small")
    write_out(tracee.pid, regs[RDI], cwd)
    return len(cwd)


def sys_chdir(guest, tracee, regs):
    path = read_path(tracee.pid, regs[RDI])
    node = guest.resolver.resolve(tracee.pid, AT_FDCWD, path, follow=True)
    if node.kind in ("union", "hostfs"):
        if node.st is None:
            raise OSError(errno.ENOENT, "no such file or directory")
        if not stat.S_ISDIR(node.st.st_mode):
            raise OSError(errno.ENOTDIR, "not a directory")
    return set_path_arg(tracee.pid, regs, RDI, node.host)


# -- other read-only path calls ------------------------------------------------------------

def _plain(follow: bool, path_register: int = RDI, dirfd_register: int | None = None):
    """A syscall whose path only needs translating (statfs, getxattr, inotify_add_watch)."""

    def handler(guest, tracee, regs):
        dirfd = arg_fd(regs[dirfd_register]) if dirfd_register is not None else AT_FDCWD
        path = read_path(tracee.pid, regs[path_register])
        node = guest.resolver.resolve(tracee.pid, dirfd, path, follow=follow)
        if dirfd_register is not None:
            regs[dirfd_register] = AT_FDCWD & 0xFFFFFFFFFFFFFFFF
        return set_path_arg(tracee.pid, regs, path_register, node.host)

    return handler


sys_statfs = _plain(True)
sys_getxattr = _plain(True)
sys_lgetxattr = _plain(False)
sys_listxattr = _plain(True)
sys_llistxattr = _plain(False)


def sys_inotify_add_watch(guest, tracee, regs):
    path = read_path(tracee.pid, regs[RSI])
    node = guest.resolver.resolve(tracee.pid, AT_FDCWD, path, follow=not regs[RDX] & 0x01000000)
    return set_path_arg(tracee.pid, regs, RSI, node.host)


HANDLERS = {
    "open": sys_open, "creat": sys_creat, "openat": sys_openat, "openat2": sys_openat2,
    "stat": sys_stat, "lstat": sys_lstat, "newfstatat": sys_newfstatat, "statx": sys_statx,
    "access": sys_access, "faccessat": sys_faccessat, "faccessat2": sys_faccessat2,
    "readlink": sys_readlink, "readlinkat": sys_readlinkat, "getcwd": sys_getcwd,
    "chdir": sys_chdir, "statfs": sys_statfs, "getxattr": sys_getxattr,
    "lgetxattr": sys_lgetxattr, "listxattr": sys_listxattr, "llistxattr": sys_llistxattr,
    "inotify_add_watch": sys_inotify_add_watch,
}
