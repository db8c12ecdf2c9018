"""ptrace(2) through ctypes: the only place the tt engine talks ptrace.

Like UML's arch/um/os-Linux, this module hides the host mechanism behind a few functions.
One `Registers` buffer is allocated per tracer and reused at every stop, because allocating
ctypes structures per stop is a measurable share of the per-syscall cost.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.restype = ctypes.c_long
_ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]

PTRACE_TRACEME = 0
PTRACE_PEEKUSER = 3
PTRACE_CONT = 7
PTRACE_KILL = 8
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
PTRACE_SYSCALL = 24
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208

O_TRACESYSGOOD = 0x01
O_TRACEFORK = 0x02
O_TRACEVFORK = 0x04
O_TRACECLONE = 0x08
O_TRACEEXEC = 0x10
O_TRACEVFORKDONE = 0x20
O_TRACEEXIT = 0x40
O_TRACESECCOMP = 0x80
O_EXITKILL = 0x100000

EVENT_FORK = 1
EVENT_VFORK = 2
EVENT_CLONE = 3
EVENT_EXEC = 4
EVENT_VFORK_DONE = 5
EVENT_EXIT = 6
EVENT_SECCOMP = 7
EVENT_STOP = 128

WALL = 0x40000000

TRACE_OPTIONS = (O_TRACESYSGOOD | O_TRACEFORK | O_TRACEVFORK | O_TRACECLONE | O_TRACEEXEC
                 | O_TRACESECCOMP | O_EXITKILL)

# user_regs_struct field order (x86-64), as indices into the register array.
R15, R14, R13, R12, RBP, RBX, R11, R10, R9, R8, RAX, RCX, RDX, RSI, RDI, ORIG_RAX, RIP, CS, \
    EFLAGS, RSP, SS, FS_BASE, GS_BASE, DS, ES, FS, GS = range(27)
ARG_REGISTERS = (RDI, RSI, RDX, R10, R8, R9)

Registers = ctypes.c_ulonglong * 27


class PtraceError(OSError):
    pass


def _check(result: int, request: int, pid: int) -> int:
    if result == -1:
        err = ctypes.get_errno()
        if err:
            raise PtraceError(err, f"ptrace({request:#x}, {pid}): {os.strerror(err)}")
    return result


def seize(pid: int, options: int = TRACE_OPTIONS) -> None:
    """Attach without stopping; job-control stops are then reported as EVENT_STOP."""
    _check(_ptrace(PTRACE_SEIZE, pid, None, options), PTRACE_SEIZE, pid)


def resume(pid: int, signal: int = 0) -> bool:
    """PTRACE_CONT; False when the tracee vanished (killed while stopped)."""
    return _ptrace(PTRACE_CONT, pid, None, signal) == 0


def resume_to_exit(pid: int, signal: int = 0) -> bool:
    """PTRACE_SYSCALL: run to the syscall-exit stop of the current syscall."""
    return _ptrace(PTRACE_SYSCALL, pid, None, signal) == 0


def listen(pid: int) -> bool:
    """Leave a group-stopped tracee stopped until SIGCONT (job control)."""
    return _ptrace(PTRACE_LISTEN, pid, None, 0) == 0


def interrupt(pid: int) -> bool:
    return _ptrace(PTRACE_INTERRUPT, pid, None, 0) == 0


def get_regs(pid: int, regs) -> bool:
    return _ptrace(PTRACE_GETREGS, pid, None, ctypes.addressof(regs)) == 0


def set_regs(pid: int, regs) -> bool:
    return _ptrace(PTRACE_SETREGS, pid, None, ctypes.addressof(regs)) == 0


_event_message = ctypes.c_ulong()


def event_message(pid: int) -> int:
    _ptrace(PTRACE_GETEVENTMSG, pid, None, ctypes.addressof(_event_message))
    return _event_message.value


_siginfo = (ctypes.c_char * 128)()


def is_group_stop(pid: int) -> bool:
    """A stop without siginfo is a group-stop (ptrace(2), "Group-stop")."""
    return _ptrace(PTRACE_GETSIGINFO, pid, None, ctypes.addressof(_siginfo)) == -1


def syscall_args(regs) -> tuple[int, int, int, int, int, int]:
    return (regs[RDI], regs[RSI], regs[RDX], regs[R10], regs[R8], regs[R9])


def signed(value: int) -> int:
    """A register as a signed 64-bit number (syscall results, AT_FDCWD)."""
    return value - (1 << 64) if value & (1 << 63) else value


def signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value
