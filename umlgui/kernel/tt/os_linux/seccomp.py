"""The seccomp-bpf filter: which guest syscalls stop in the tracer, which are refused.

Untrapped syscalls never leave the host kernel, so they run at native speed; only the
syscalls the engine handles produce a ptrace stop (ENGINE-RESEARCH.md §4.4). The filter is a
binary search over syscall-number ranges, so an untrapped syscall runs about ten BPF
instructions whatever the size of the tables.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from dataclasses import dataclass

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_ALLOW = 0x7FFF0000

_LD_W_ABS = 0x20
_JMP_JA = 0x05
_JMP_JEQ_K = 0x15
_JMP_JGE_K = 0x35
_JMP_JSET_K = 0x45
_RET_K = 0x06

_OFFSET_NR = 0
_OFFSET_ARCH = 4
_OFFSET_ARG0 = 16


@dataclass(frozen=True)
class Action:
    """What the filter does with one syscall number."""

    ret: int                         # RET_* value, errno or trace data included
    refuse_flags: int = 0            # if arg0 has any of these bits: RET_ERRNO|EPERM instead

    @staticmethod
    def allow() -> "Action":
        return Action(RET_ALLOW)

    @staticmethod
    def trace() -> "Action":
        return Action(RET_TRACE)

    @staticmethod
    def refuse(error: int) -> "Action":
        return Action(RET_ERRNO | (error & 0xFFFF))


def _insn(code: int, jt: int = 0, jf: int = 0, k: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k & 0xFFFFFFFF)


def _leaf(action: Action) -> list:
    if not action.refuse_flags:
        return [_insn(_RET_K, k=action.ret)]
    return [
        _insn(_LD_W_ABS, k=_OFFSET_ARG0),
        _insn(_JMP_JSET_K, 0, 1, action.refuse_flags),
        _insn(_RET_K, k=RET_ERRNO | errno.EPERM),
        _insn(_RET_K, k=action.ret),
    ]


def _search(ranges: list[tuple[int, Action]]) -> list:
    """Code for a sorted list of (first_nr, action) ranges; the number is in the accumulator."""
    if len(ranges) == 1:
        return _leaf(ranges[0][1])
    middle = len(ranges) // 2
    left = _search(ranges[:middle])
    right = _search(ranges[middle:])
    # jge pivot -> the "ja" over the left half; otherwise skip the "ja" into the left half.
    return [_insn(_JMP_JGE_K, 0, 1, ranges[middle][0]), _insn(_JMP_JA, k=len(left))] + left + right


def build_program(actions: dict[int, Action], default: Action, highest_nr: int = 1024) -> bytes:
    """A BPF program: x86-64 only, x32 refused, `actions` per number, `default` otherwise.

    Each leaf returns, and argument checks reload nothing afterwards, so leaves need no
    knowledge of where they sit.
    """
    ranges: list[tuple[int, Action]] = []
    for number in range(highest_nr):
        action = actions.get(number, default)
        if not ranges or ranges[-1][1] != action:
            ranges.append((number, action))
    code = [
        _insn(_LD_W_ABS, k=_OFFSET_ARCH),
        _insn(_JMP_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _insn(_RET_K, k=RET_KILL_PROCESS),
        _insn(_LD_W_ABS, k=_OFFSET_NR),
        _insn(_JMP_JGE_K, 0, 1, X32_SYSCALL_BIT),
        _insn(_RET_K, k=RET_ERRNO | errno.ENOSYS),
    ] + _search(ranges)
    return b"".join(struct.pack("<HBBI", *instruction) for instruction in code)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


def install(program: bytes) -> None:
    """Install the filter in the calling process (inherited by all its descendants)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS)")
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
