"""bind and connect on unix socket paths: the sockaddr names a guest path.

Abstract names need no translation (the guest has its own network namespace, which scopes
them). A translated path longer than sun_path allows fails with ENAMETOOLONG.
"""

from __future__ import annotations

import errno
import os

from ..os_linux import memory
from ..os_linux.ptrace import RDX, RSI
from .common import AT_FDCWD, REWRITTEN, Scratch

AF_UNIX = 1
SUN_PATH_MAX = 108


def _translate(guest, tracee, regs, creating: bool):
    length = regs[RDX] & 0xFFFFFFFF
    if length < 3 or length > 110:
        return None
    try:
        raw = memory.read(tracee.pid, regs[RSI], length)
    except memory.MemoryError_:
        raise OSError(errno.EFAULT, "bad address") from None
    if int.from_bytes(raw[:2], "little") != AF_UNIX or raw[2] == 0:
        return None
    path = os.fsdecode(raw[2:].split(b"\0", 1)[0])
    node = guest.resolver.resolve(tracee.pid, AT_FDCWD, path, follow=not creating)
    if creating:
        if node.exists:
            raise OSError(errno.EADDRINUSE, "address in use")
        host = guest.layers.prepare_create(node.guest) if node.kind == "union" else node.host
    else:
        host = node.host
    encoded = os.fsencode(host)
    if len(encoded) >= SUN_PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, "socket path too long after translation")
    sockaddr = AF_UNIX.to_bytes(2, "little") + encoded + b"\0"
    scratch = Scratch(regs)
    address = scratch.add(sockaddr)
    scratch.flush(tracee.pid)
    regs[RSI] = address
    regs[RDX] = len(sockaddr)
    return REWRITTEN


def sys_bind(guest, tracee, regs):
    return _translate(guest, tracee, regs, creating=True)


def sys_connect(guest, tracee, regs):
    return _translate(guest, tracee, regs, creating=False)


HANDLERS = {"bind": sys_bind, "connect": sys_connect}
