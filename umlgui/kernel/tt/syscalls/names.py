"""Syscalls that add, remove or move names: mkdir, mknod, unlink, rmdir, rename, link, symlink.

They are emulated: the tracer does the work on the union (copy-up, whiteouts, side table) and
answers the syscall itself, so these changes happen one at a time in the tracer's thread.
"""

from __future__ import annotations

import errno
import os
import stat

from ..os_linux.ptrace import R8, R10, RDI, RDX, RSI
from .common import AT_FDCWD, arg_fd, read_path

AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def _new_name(guest, tracee, dirfd: int, path: str):
    """Resolve a name that is about to be created; EEXIST if it exists."""
    node = guest.resolver.resolve(tracee.pid, dirfd, path, follow=False)
    if node.exists:
        raise OSError(errno.EEXIST, "file exists")
    if node.kind not in ("union", "hostfs"):
        raise OSError(errno.EPERM, "operation not permitted")
    return node


def _create_host(guest, node) -> str:
    if node.kind == "hostfs":
        return node.host
    return guest.layers.prepare_create(node.guest)


# -- mkdir, mknod ---------------------------------------------------------------------------

def _mkdir(guest, tracee, dirfd: int, path: str, mode: int) -> int:
    node = _new_name(guest, tracee, dirfd, path)
    host = _create_host(guest, node)
    os.mkdir(host, mode & 0o7777 & ~guest.umask_of(tracee.pid))
    if node.kind == "union":
        guest.layers.make_opaque_if_needed(node.guest)
        guest.layers.invalidate()
        guest.record_new_file(tracee, node.guest)
    return 0


def sys_mkdir(guest, tracee, regs):
    return _mkdir(guest, tracee, AT_FDCWD, read_path(tracee.pid, regs[RDI]), regs[RSI])


def sys_mkdirat(guest, tracee, regs):
    return _mkdir(guest, tracee, arg_fd(regs[RDI]), read_path(tracee.pid, regs[RSI]), regs[RDX])


def _mknod(guest, tracee, dirfd: int, path: str, mode: int, device: int) -> int:
    kind = stat.S_IFMT(mode) or stat.S_IFREG
    permissions = mode & 0o7777 & ~guest.umask_of(tracee.pid)
    if kind not in (stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
        raise OSError(errno.EINVAL, "invalid mode")
    if kind in (stat.S_IFCHR, stat.S_IFBLK) and tracee.creds.euid != 0:
        raise OSError(errno.EPERM, "operation not permitted")
    node = _new_name(guest, tracee, dirfd, path)
    host = _create_host(guest, node)
    if kind == stat.S_IFIFO:
        os.mkfifo(host, permissions)
    else:
        # device nodes are never real: an empty file stands in, the side table says what
        # the guest sees (opening it reads nothing)
        with open(host, "xb"):
            pass
        os.chmod(host, permissions)
    if node.kind == "union":
        guest.layers.invalidate()
        guest.record_new_file(tracee, node.guest)
        if kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK):
            guest.sidetable.set(node.guest, mode=kind | permissions,
                                rdev=device if kind != stat.S_IFSOCK else 0)
    return 0


def sys_mknod(guest, tracee, regs):
    return _mknod(guest, tracee, AT_FDCWD, read_path(tracee.pid, regs[RDI]), regs[RSI],
                  regs[RDX])


def sys_mknodat(guest, tracee, regs):
    return _mknod(guest, tracee, arg_fd(regs[RDI]), read_path(tracee.pid, regs[RSI]),
                  regs[RDX], regs[R10])


# -- unlink, rmdir ----------------------------------------------------------------------------

def _remove(guest, tracee, dirfd: int, path: str, directory: bool) -> int:
    node = guest.resolver.resolve(tracee.pid, dirfd, path, follow=False)
    if node.guest in ("/", ) or node.guest in guest.resolver.mounts:
        raise OSError(errno.EBUSY, "resource busy")
    if node.kind == "hostfs":
        (os.rmdir if directory else os.unlink)(node.host)
        guest.layers.invalidate()
        return 0
    if node.kind != "union":
        raise OSError(errno.EPERM if node.exists else errno.ENOENT, "operation not permitted")
    if path.rstrip("/").endswith("/.") or path == ".":
        raise OSError(errno.EINVAL, "invalid argument")
    guest.layers.remove(node.guest, directory)
    guest.sidetable.forget(node.guest)
    return 0


def sys_unlink(guest, tracee, regs):
    return _remove(guest, tracee, AT_FDCWD, read_path(tracee.pid, regs[RDI]), False)


def sys_rmdir(guest, tracee, regs):
    return _remove(guest, tracee, AT_FDCWD, read_path(tracee.pid, regs[RDI]), True)


def sys_unlinkat(guest, tracee, regs):
    return _remove(guest, tracee, arg_fd(regs[RDI]), read_path(tracee.pid, regs[RSI]),
                   bool(regs[RDX] & AT_REMOVEDIR))


# -- rename ---------------------------------------------------------------------------------

def _rename(guest, tracee, old_dirfd: int, old_path: str, new_dirfd: int, new_path: str,
            flags: int) -> int:
    if flags & ~RENAME_NOREPLACE:
        raise OSError(errno.EINVAL, "rename flags not supported")
    resolver, layers = guest.resolver, guest.layers
    source = resolver.resolve(tracee.pid, old_dirfd, old_path, follow=False)
    target = resolver.resolve(tracee.pid, new_dirfd, new_path, follow=False)
    if not source.exists:
        raise OSError(errno.ENOENT, "no such file or directory")
    if source.kind != target.kind or source.kind not in ("union", "hostfs"):
        raise OSError(errno.EXDEV, "cross-device link")
    if target.exists and flags & RENAME_NOREPLACE:
        raise OSError(errno.EEXIST, "file exists")
    if source.guest == target.guest:
        return 0
    if (target.guest + "/").startswith(source.guest + "/"):
        raise OSError(errno.EINVAL, "cannot move a directory into itself")
    if source.kind == "hostfs":
        os.rename(source.host, target.host)
        layers.invalidate()
        return 0
    source_is_dir = stat.S_ISDIR(source.st.st_mode)
    if source_is_dir and layers.exists_in_base(source.guest):
        # like overlayfs without redirect_dir: mv falls back to copying
        raise OSError(errno.EXDEV, "cannot rename a directory of the base layer")
    if target.exists:
        target_is_dir = stat.S_ISDIR(target.st.st_mode)
        if source_is_dir and not target_is_dir:
            raise OSError(errno.ENOTDIR, "not a directory")
        if target_is_dir and not source_is_dir:
            raise OSError(errno.EISDIR, "is a directory")
        if target_is_dir:
            layers.remove(target.guest, True)          # ENOTEMPTY when it has entries
    source_host = layers.copy_up(source.guest)
    source_in_base = layers.exists_in_base(source.guest)
    target_host = layers.prepare_create(target.guest)
    os.rename(source_host, target_host)
    layers.invalidate()
    if source_in_base:
        parent, name = source.guest.rsplit("/", 1)
        with open(f"{layers.ensure_upper_dir(parent or '/')}/.wh.{name}", "wb"):
            pass
    if source_is_dir:
        layers.make_opaque_if_needed(target.guest)
    layers.invalidate()
    guest.sidetable.rename(source.guest, target.guest)
    return 0


def sys_rename(guest, tracee, regs):
    return _rename(guest, tracee, AT_FDCWD, read_path(tracee.pid, regs[RDI]), AT_FDCWD,
                   read_path(tracee.pid, regs[RSI]), 0)


def sys_renameat(guest, tracee, regs):
    return _rename(guest, tracee, arg_fd(regs[RDI]), read_path(tracee.pid, regs[RSI]),
                   arg_fd(regs[RDX]), read_path(tracee.pid, regs[R10]), 0)


def sys_renameat2(guest, tracee, regs):
    return _rename(guest, tracee, arg_fd(regs[RDI]), read_path(tracee.pid, regs[RSI]),
                   arg_fd(regs[RDX]), read_path(tracee.pid, regs[R10]), regs[R8] & 0xFFFFFFFF)


# -- link, symlink ----------------------------------------------------------------------------

def _link(guest, tracee, old_dirfd: int, old_path: str, new_dirfd: int, new_path: str,
          flags: int) -> int:
    resolver = guest.resolver
    if flags & AT_EMPTY_PATH and old_path == "":
        old_path = resolver.guest_fd_path(tracee.pid, old_dirfd)
        old_dirfd = AT_FDCWD
    source = resolver.resolve(tracee.pid, old_dirfd, old_path,
                              follow=bool(flags & AT_SYMLINK_FOLLOW))
    if not source.exists:
        raise OSError(errno.ENOENT, "no such file or directory")
    if stat.S_ISDIR(source.st.st_mode):
        raise OSError(errno.EPERM, "hard link to a directory")
    target = _new_name(guest, tracee, new_dirfd, new_path)
    if source.kind != target.kind:
        raise OSError(errno.EXDEV, "cross-device link")
    if source.kind == "hostfs":
        os.link(source.host, target.host, follow_symlinks=False)
        guest.layers.invalidate()
        return 0
    source_host = guest.layers.copy_up(source.guest)
    os.link(source_host, guest.layers.prepare_create(target.guest), follow_symlinks=False)
    guest.layers.invalidate()
    entry = guest.sidetable.get(source.guest)
    if entry is not None:
        guest.sidetable.set(target.guest, uid=entry.uid, gid=entry.gid, mode=entry.mode,
                            rdev=entry.rdev)
    return 0


def sys_link(guest, tracee, regs):
    return _link(guest, tracee, AT_FDCWD, read_path(tracee.pid, regs[RDI]), AT_FDCWD,
                 read_path(tracee.pid, regs[RSI]), 0)


def sys_linkat(guest, tracee, regs):
    return _link(guest, tracee, arg_fd(regs[RDI]), read_path(tracee.pid, regs[RSI]),
                 arg_fd(regs[RDX]), read_path(tracee.pid, regs[R10]), regs[R8])


def _symlink(guest, tracee, target_text: str, dirfd: int, path: str) -> int:
    if not target_text:
        raise OSError(errno.ENOENT, "empty symlink target")
    node = _new_name(guest, tracee, dirfd, path)
    os.symlink(target_text, _create_host(guest, node))
    guest.layers.invalidate()
    if node.kind == "union":
        guest.record_new_file(tracee, node.guest)
    return 0


def sys_symlink(guest, tracee, regs):
    return _symlink(guest, tracee, read_path(tracee.pid, regs[RDI]), AT_FDCWD,
                    read_path(tracee.pid, regs[RSI]))


def sys_symlinkat(guest, tracee, regs):
    return _symlink(guest, tracee, read_path(tracee.pid, regs[RDI]), arg_fd(regs[RSI]),
                    read_path(tracee.pid, regs[RDX]))


HANDLERS = {
    "mkdir": sys_mkdir, "mkdirat": sys_mkdirat, "mknod": sys_mknod, "mknodat": sys_mknodat,
    "unlink": sys_unlink, "unlinkat": sys_unlinkat, "rmdir": sys_rmdir,
    "rename": sys_rename, "renameat": sys_renameat, "renameat2": sys_renameat2,
    "link": sys_link, "linkat": sys_linkat, "symlink": sys_symlink, "symlinkat": sys_symlinkat,
}
