"""chmod, chown, truncate and utimes: changes to a file's attributes.

chown only writes the side table (the host owner never changes). chmod copies the file up
and sets the host mode without setuid/setgid bits (a guest must not leave set-id binaries on
the host), and the side table keeps the full mode the guest asked for. truncate and utimes
copy up and then let the host kernel run on the upper file.
"""

from __future__ import annotations

import errno
import os
import stat

from ..os_linux.ptrace import R8, R10, RDI, RDX, RSI
from .common import AT_FDCWD, arg_fd, need_root, read_path, set_path_arg

AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID


def _node_for(guest, tracee, dirfd: int, path: str | None, follow: bool):
    """Resolve `path`, or the file behind `dirfd` when path is None/"" (f*() calls)."""
    resolver = guest.resolver
    if not path:
        path = resolver.guest_fd_path(tracee.pid, dirfd)
        dirfd = AT_FDCWD
    node = resolver.resolve(tracee.pid, dirfd, path, follow=follow)
    if not node.exists:
        raise OSError(errno.ENOENT, "no such file or directory")
    return node


def _writable_host(guest, node) -> str:
    if node.kind == "union":
        return guest.layers.copy_up(node.guest)
    if node.kind == "hostfs":
        return node.host
    raise OSError(errno.EPERM, "operation not permitted")


# -- chmod ------------------------------------------------------------------------------------

def _chmod(guest, tracee, node, mode: int) -> int:
    if node.kind not in ("union", "hostfs"):
        return 0        # devices and /proc: accepted, nothing on the host changes
    uid, _, current, _ = guest.presented_owner(node.guest, node.st)
    if tracee.creds.euid not in (0, uid):
        raise OSError(errno.EPERM, "operation not permitted")
    host = _writable_host(guest, node)
    if node.st is not None and stat.S_ISLNK(node.st.st_mode):
        raise OSError(errno.EOPNOTSUPP, "cannot chmod a symlink")
    os.chmod(host, mode & 0o7777 & ~SPECIAL_BITS)
    if node.kind == "union":
        guest.sidetable.set(node.guest, mode=stat.S_IFMT(current) | (mode & 0o7777))
    return 0


def sys_chmod(guest, tracee, regs):
    path = read_path(tracee.pid, regs[RDI])
    return _chmod(guest, tracee, _node_for(guest, tracee, AT_FDCWD, path, True), regs[RSI])


def sys_fchmod(guest, tracee, regs):
    return _chmod(guest, tracee, _node_for(guest, tracee, arg_fd(regs[RDI]), None, True),
                  regs[RSI])


def sys_fchmodat(guest, tracee, regs):
    path = read_path(tracee.pid, regs[RSI])
    return _chmod(guest, tracee, _node_for(guest, tracee, arg_fd(regs[RDI]), path, True),
                  regs[RDX])


def sys_fchmodat2(guest, tracee, regs):
    flags = regs[R10]
    path = read_path(tracee.pid, regs[RSI]) if regs[RSI] else ""
    node = _node_for(guest, tracee, arg_fd(regs[RDI]), path, not flags & AT_SYMLINK_NOFOLLOW)
    return _chmod(guest, tracee, node, regs[RDX])


# -- chown ------------------------------------------------------------------------------------

def _chown(guest, tracee, node, uid: int, gid: int) -> int:
    uid = -1 if uid & 0xFFFFFFFF == 0xFFFFFFFF else uid & 0xFFFFFFFF
    gid = -1 if gid & 0xFFFFFFFF == 0xFFFFFFFF else gid & 0xFFFFFFFF
    need_root(tracee)
    if node.kind not in ("union", "hostfs"):
        return 0        # e.g. login giving the user its tty: accepted, the host is untouched
    guest.sidetable.set(node.guest, uid=uid, gid=gid)
    if node.kind == "union" and node.st is not None and not stat.S_ISLNK(node.st.st_mode) \
            and node.st.st_mode & SPECIAL_BITS:
        guest.sidetable.set(node.guest, mode=node.st.st_mode & ~SPECIAL_BITS)
    return 0


def sys_chown(guest, tracee, regs):
    node = _node_for(guest, tracee, AT_FDCWD, read_path(tracee.pid, regs[RDI]), True)
    return _chown(guest, tracee, node, regs[RSI], regs[RDX])


def sys_lchown(guest, tracee, regs):
    node = _node_for(guest, tracee, AT_FDCWD, read_path(tracee.pid, regs[RDI]), False)
    return _chown(guest, tracee, node, regs[RSI], regs[RDX])


def sys_fchown(guest, tracee, regs):
    node = _node_for(guest, tracee, arg_fd(regs[RDI]), None, True)
    return _chown(guest, tracee, node, regs[RSI], regs[RDX])


def sys_fchownat(guest, tracee, regs):
    flags = regs[R8]
    path = read_path(tracee.pid, regs[RSI]) if regs[RSI] else ""
    node = _node_for(guest, tracee, arg_fd(regs[RDI]), path, not flags & AT_SYMLINK_NOFOLLOW)
    return _chown(guest, tracee, node, regs[RDX], regs[R10])


# -- truncate, utimes -------------------------------------------------------------------------

def sys_truncate(guest, tracee, regs):
    node = _node_for(guest, tracee, AT_FDCWD, read_path(tracee.pid, regs[RDI]), True)
    return set_path_arg(tracee.pid, regs, RDI, _writable_host(guest, node))


def _times_on_path(register_path: int, follow: bool, dirfd_register: int | None = None):
    def handler(guest, tracee, regs):
        dirfd = arg_fd(regs[dirfd_register]) if dirfd_register is not None else AT_FDCWD
        path = read_path(tracee.pid, regs[register_path])
        node = _node_for(guest, tracee, dirfd, path, follow)
        if dirfd_register is not None:
            regs[dirfd_register] = AT_FDCWD & 0xFFFFFFFFFFFFFFFF
        host = _writable_host(guest, node) if node.kind in ("union", "hostfs") else node.host
        return set_path_arg(tracee.pid, regs, register_path, host)
    return handler


sys_utime = _times_on_path(RDI, True)
sys_utimes = _times_on_path(RDI, True)
sys_futimesat = _times_on_path(RSI, True, RDI)


def sys_utimensat(guest, tracee, regs):
    flags = regs[R10]
    dirfd = arg_fd(regs[RDI])
    path = read_path(tracee.pid, regs[RSI]) if regs[RSI] else ""
    node = _node_for(guest, tracee, dirfd, path, not flags & AT_SYMLINK_NOFOLLOW)
    if node.kind not in ("union", "hostfs"):
        if not path:
            return None             # futimens() on a pipe, a tty...: nothing to protect
        regs[RDI] = AT_FDCWD & 0xFFFFFFFFFFFFFFFF
        return set_path_arg(tracee.pid, regs, RSI, node.host)
    host = _writable_host(guest, node)
    regs[RDI] = AT_FDCWD & 0xFFFFFFFFFFFFFFFF
    return set_path_arg(tracee.pid, regs, RSI, host)


HANDLERS = {
    "chmod": sys_chmod, "fchmod": sys_fchmod, "fchmodat": sys_fchmodat,
    "fchmodat2": sys_fchmodat2, "chown": sys_chown, "lchown": sys_lchown,
    "fchown": sys_fchown, "fchownat": sys_fchownat, "truncate": sys_truncate,
    "utime": sys_utime, "utimes": sys_utimes, "futimesat": sys_futimesat,
    "utimensat": sys_utimensat,
}
