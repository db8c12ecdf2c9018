"""Fake credentials: the get/set*id family and supplementary groups.

Guest processes start as uid/gid 0; set*id calls change only the tracer's record (Creds, per
thread, inherited on fork), following the kernel's rules for root and non-root callers.
"""

from __future__ import annotations

import errno
import struct

from ..os_linux import memory
from ..os_linux.ptrace import RDI, RDX, RSI
from .common import write_out

KEEP = 0xFFFFFFFF          # (uid_t)-1: leave unchanged
NGROUPS_MAX = 65536


def _id(value: int) -> int:
    return value & 0xFFFFFFFF


def sys_getuid(guest, tracee, regs):
    return tracee.creds.uid


def sys_geteuid(guest, tracee, regs):
    return tracee.creds.euid


def sys_getgid(guest, tracee, regs):
    return tracee.creds.gid


def sys_getegid(guest, tracee, regs):
    return tracee.creds.egid


def _write_triple(tracee, regs, values) -> int:
    for register, value in zip((RDI, RSI, RDX), values):
        write_out(tracee.pid, regs[register], struct.pack("<I", value))
    return 0


def sys_getresuid(guest, tracee, regs):
    c = tracee.creds
    return _write_triple(tracee, regs, (c.uid, c.euid, c.suid))


def sys_getresgid(guest, tracee, regs):
    c = tracee.creds
    return _write_triple(tracee, regs, (c.gid, c.egid, c.sgid))


def _setres(creds, kind: str, real: int, effective: int, saved: int) -> int:
    current = (getattr(creds, kind), getattr(creds, "e" + kind), getattr(creds, "s" + kind))
    if creds.euid != 0:
        for value in (real, effective, saved):
            if value != KEEP and value not in current:
                raise OSError(errno.EPERM, "operation not permitted")
    return _setres_unchecked(creds, kind, real, effective, saved)


def sys_setresuid(guest, tracee, regs):
    return _setres(tracee.creds, "uid", _id(regs[RDI]), _id(regs[RSI]), _id(regs[RDX]))


def sys_setresgid(guest, tracee, regs):
    return _setres(tracee.creds, "gid", _id(regs[RDI]), _id(regs[RSI]), _id(regs[RDX]))


def _set_one(creds, kind: str, value: int) -> int:
    if creds.euid == 0:
        return _setres(creds, kind, value, value, value)
    if value not in (getattr(creds, kind), getattr(creds, "s" + kind)):
        raise OSError(errno.EPERM, "operation not permitted")
    return _setres(creds, kind, KEEP, value, KEEP)


def sys_setuid(guest, tracee, regs):
    return _set_one(tracee.creds, "uid", _id(regs[RDI]))


def sys_setgid(guest, tracee, regs):
    return _set_one(tracee.creds, "gid", _id(regs[RDI]))


def _setre(creds, kind: str, real: int, effective: int) -> int:
    old_real = getattr(creds, kind)
    saved = KEEP
    if real != KEEP or (effective != KEEP and effective != old_real):
        saved = effective if effective != KEEP else getattr(creds, "e" + kind)
    if creds.euid != 0:
        allowed = (old_real, getattr(creds, "e" + kind), getattr(creds, "s" + kind))
        if (real != KEEP and real not in allowed[:2]) or (effective != KEEP and
                                                           effective not in allowed):
            raise OSError(errno.EPERM, "operation not permitted")
    return _setres_unchecked(creds, kind, real, effective, saved)


def _setres_unchecked(creds, kind, real, effective, saved) -> int:
    if real != KEEP:
        setattr(creds, kind, real)
    if effective != KEEP:
        setattr(creds, "e" + kind, effective)
    if saved != KEEP:
        setattr(creds, "s" + kind, saved)
    setattr(creds, "fs" + kind, getattr(creds, "e" + kind))
    return 0


def sys_setreuid(guest, tracee, regs):
    return _setre(tracee.creds, "uid", _id(regs[RDI]), _id(regs[RSI]))


def sys_setregid(guest, tracee, regs):
    return _setre(tracee.creds, "gid", _id(regs[RDI]), _id(regs[RSI]))


def _setfs(creds, kind: str, value: int) -> int:
    """setfsuid/setfsgid: no error ever; the old value comes back, the change only if allowed."""
    old = getattr(creds, "fs" + kind)
    if value != KEEP and (creds.euid == 0 or value in (getattr(creds, kind), getattr(creds, "e" + kind))):
        setattr(creds, "fs" + kind, value)
    return old


def sys_setfsuid(guest, tracee, regs):
    return _setfs(tracee.creds, "uid", _id(regs[RDI]))


def sys_setfsgid(guest, tracee, regs):
    return _setfs(tracee.creds, "gid", _id(regs[RDI]))


def sys_getgroups(guest, tracee, regs):
    groups = tracee.creds.groups
    size = regs[RDI] & 0xFFFFFFFF
    if size == 0:
        return len(groups)
    if size < len(groups):
        raise OSError(errno.EINVAL, "buffer too small")
    if groups:
        write_out(tracee.pid, regs[RSI], struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


def sys_setgroups(guest, tracee, regs):
    if tracee.creds.euid != 0:
        raise OSError(errno.EPERM, "operation not permitted")
    size = regs[RDI] & 0xFFFFFFFF
    if size > NGROUPS_MAX:
        raise OSError(errno.EINVAL, "too many groups")
    groups: tuple[int, ...] = ()
    if size:
        try:
            raw = memory.read(tracee.pid, regs[RSI], 4 * size)
        except memory.MemoryError_:
            raise OSError(errno.EFAULT, "bad address") from None
        groups = struct.unpack(f"<{size}I", raw)
    tracee.creds.groups = groups
    return 0


HANDLERS = {
    "getuid": sys_getuid, "geteuid": sys_geteuid, "getgid": sys_getgid,
    "getegid": sys_getegid, "getresuid": sys_getresuid, "getresgid": sys_getresgid,
    "setuid": sys_setuid, "setgid": sys_setgid, "setreuid": sys_setreuid,
    "setregid": sys_setregid, "setresuid": sys_setresuid, "setresgid": sys_setresgid,
    "setfsuid": sys_setfsuid, "setfsgid": sys_setfsgid, "getgroups": sys_getgroups,
    "setgroups": sys_setgroups,
}
