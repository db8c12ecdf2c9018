"""What every syscall handler gets and returns.

A handler is `handler(guest, tracee, regs) -> result` and runs at the seccomp stop, before
the host kernel sees the syscall:

* `None`: let the syscall run unchanged;
* `REWRITTEN`: the handler changed registers (a translated path, another syscall number);
  the tracer writes them back and lets the host kernel run the call;
* an `int`: the syscall is answered by the engine with that value (a negative errno is an
  error); the host kernel skips it (orig_rax = -1), so emulation costs one stop.

Handlers raise OSError for guest errors; the dispatcher turns it into -errno.
"""

from __future__ import annotations

import errno
import os

from ..os_linux import memory
from ..os_linux.ptrace import ORIG_RAX, R8, R9, R10, RDI, RDX, RSI, RSP

REWRITTEN = object()
AT_FDCWD = -100
RED_ZONE = 128


def arg_fd(value: int) -> int:
    """An fd argument as the kernel reads it (int, so AT_FDCWD is -100)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value


def read_path(pid: int, address: int) -> str:
    """A path argument from guest memory, as str (undecodable bytes kept by surrogateescape)."""
    try:
        raw = memory.read_cstring(pid, address, 4096)
    except memory.MemoryError_ as error:
        raise OSError(error.errno, error.strerror) from None
    return raw.decode("utf-8", "surrogateescape")


class Scratch:
    """Bytes placed below the tracee's stack red zone, used by the rewritten syscall only."""

    def __init__(self, regs):
        self.top = (regs[RSP] - RED_ZONE) & ~0xF
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> int:
        """Reserve `data`; returns the guest address it will have after `flush`."""
        self.size += (len(data) + 7) & ~7
        padded = data + b"\0" * (((len(data) + 7) & ~7) - len(data))
        self.chunks.append(padded)
        return self.top - self.size

    def add_string(self, text: str) -> int:
        return self.add(os.fsencode(text) + b"\0")

    def flush(self, pid: int) -> None:
        # Chunks were handed out downwards from `top`; write them in address order.
        data = b"".join(reversed(self.chunks))
        try:
            memory.write(pid, self.top - self.size, data)
        except memory.MemoryError_:
            raise OSError(errno.EFAULT, "cannot write below the guest stack") from None


def write_out(pid: int, address: int, data: bytes) -> None:
    """Copy a result structure into guest memory (EFAULT on a bad pointer)."""
    try:
        memory.write(pid, address, data)
    except memory.MemoryError_:
        raise OSError(errno.EFAULT, "bad address") from None


def set_path_arg(pid: int, regs, register: int, host_path: str) -> object:
    """Point argument `register` at `host_path` (written below the red zone)."""
    scratch = Scratch(regs)
    address = scratch.add_string(host_path)
    scratch.flush(pid)
    regs[register] = address
    return REWRITTEN


def set_syscall(regs, number: int, *args: int) -> None:
    """Turn the stopped syscall into another one (seccomp is not re-run for it)."""
    regs[ORIG_RAX] = number
    for register, value in zip((RDI, RSI, RDX, R10, R8, R9), args):
        regs[register] = value & 0xFFFFFFFFFFFFFFFF


def need_root(tracee) -> None:
    if tracee.creds.euid != 0:
        raise OSError(errno.EPERM, "operation not permitted")
