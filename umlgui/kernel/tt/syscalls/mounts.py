"""mount and umount2: virtual filesystems succeed, hostfs and tmpfs are emulated.

`mount -t proc|sysfs|devtmpfs|devpts` succeed without doing anything (the guest already has
its /proc and /dev). `mount -t hostfs none DIR -o SUB` maps DIR to SUB below the machine's
hostfs= directory; `mount -t tmpfs` gives a fresh directory that lives for this boot. Mounting
real filesystems (block devices, bind mounts, overlays, ...) is refused with EPERM.
"""

from __future__ import annotations

import errno
import os

from ..os_linux.ptrace import R8, R10, RDI, RDX, RSI
from ..vfs.resolver import Mount
from .common import AT_FDCWD, need_root, read_path

MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_SHARED_FLAGS = (1 << 20) | (1 << 18) | (1 << 19) | (1 << 17)   # shared/private/slave/unbind
VIRTUAL = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs",
           "tracefs", "mqueue", "pstore", "bpf", "configfs", "binfmt_misc", "fusectl"}
MNT_DETACH = 2


def _optional_text(tracee, address: int) -> str:
    return read_path(tracee.pid, address) if address else ""


def sys_mount(guest, tracee, regs):
    need_root(tracee)
    flags = regs[R10]
    fstype = _optional_text(tracee, regs[RDX])
    target_text = read_path(tracee.pid, regs[RSI])
    target = guest.resolver.resolve(tracee.pid, AT_FDCWD, target_text, follow=True)
    if not target.exists:
        raise OSError(errno.ENOENT, "mount point does not exist")
    if flags & (MS_REMOUNT | MS_SHARED_FLAGS):
        return 0
    if flags & (MS_BIND | MS_MOVE):
        raise OSError(errno.EPERM, "bind and move mounts are not supported")
    if fstype in VIRTUAL:
        return 0
    if target.kind != "union" and target.kind != "hostfs" or not target.is_dir:
        raise OSError(errno.ENOTDIR, "mount point is not a directory")
    if fstype in ("tmpfs", "ramfs"):
        guest.tmpfs_count += 1
        host = os.path.join(guest.config.instance_dir, "tmpfs", str(guest.tmpfs_count))
        os.makedirs(host)
        os.chmod(host, _tmpfs_mode(_optional_text(tracee, regs[R8]) if regs[R8] else ""))
        guest.resolver.add_mount(Mount(target.guest, host, fstype, fstype))
        return 0
    if fstype == "hostfs":
        options = _optional_text(tracee, regs[R8]) if regs[R8] else ""
        host = guest.hostfs_directory(options)
        guest.resolver.add_mount(Mount(target.guest, host, "hostfs", "none", "rw"))
        return 0
    raise OSError(errno.EPERM, f"mounting {fstype or 'that'} is not allowed in a tt machine")


def _tmpfs_mode(options: str) -> int:
    for option in options.split(","):
        if option.startswith("mode="):
            try:
                return int(option[5:], 8) & 0o7777
            except ValueError:
                break
    return 0o1777           # tmpfs's default, as in Linux


def sys_umount2(guest, tracee, regs):
    need_root(tracee)
    target_text = read_path(tracee.pid, regs[RDI])
    node = guest.resolver.resolve(tracee.pid, AT_FDCWD, target_text, follow=True)
    if node.guest in guest.resolver.mounts:
        guest.resolver.remove_mount(node.guest)
        return 0
    if node.guest in ("/proc", "/sys", "/dev", "/dev/pts", "/"):
        return 0
    raise OSError(errno.EINVAL, "not mounted")


HANDLERS = {"mount": sys_mount, "umount2": sys_umount2}
