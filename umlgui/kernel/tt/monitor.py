"""The syscall monitor (`ttmonitor=PATH`): one JSON line per guest syscall.

Off by default and free when off: without `ttmonitor=` the seccomp filter traps only the
syscalls the engine handles and this module is never imported. With it, the filter traps
every syscall and each one is logged at its exit with the result, so a guest runs several
times slower; meant for malware analysis and honeypots, not for everyday machines.

Line format (documented in docs/tt-engine.md, read by the GUI's monitor panel)::

    {"t": 1700000000.123456, "pid": 42, "tid": 42, "comm": "sh", "nr": 257,
     "name": "openat", "args": ["AT_FDCWD", "/etc/passwd", "0x80000", "0"],
     "ret": 3}
    {"t": ..., "name": "openat", ..., "ret": -2, "err": "ENOENT"}

`args` holds up to six decoded arguments: paths and strings as the guest wrote them (before
translation), argv lists for execve, fds as numbers (AT_FDCWD by name), the rest as hex.
`ret` is the result the guest saw; a negative `ret` comes with `err`, the errno name.
Calls answered by the engine itself carry `"emulated": true`.
"""

from __future__ import annotations

import errno
import json
import os
import time

from .os_linux import memory
from .os_linux.ptrace import R8, R9, R10, RDI, RDX, RSI
from .os_linux.syscall_numbers import NAMES

_ARG_REGISTERS = (RDI, RSI, RDX, R10, R8, R9)

# Which arguments are strings (index list) for the syscalls worth reading; everything else
# is shown as numbers. Kept small on purpose: the monitor must not slow the guest further.
STRING_ARGS: dict[str, tuple[int, ...]] = {
    "open": (0,), "creat": (0,), "openat": (1,), "openat2": (1,), "stat": (0,), "lstat": (0,),
    "newfstatat": (1,), "statx": (1,), "access": (0,), "faccessat": (1,), "faccessat2": (1,),
    "readlink": (0,), "readlinkat": (1,), "chdir": (0,), "mkdir": (0,), "mkdirat": (1,),
    "rmdir": (0,), "unlink": (0,), "unlinkat": (1,), "rename": (0, 1), "renameat": (1, 3),
    "renameat2": (1, 3), "link": (0, 1), "linkat": (1, 3), "symlink": (0, 1),
    "symlinkat": (0, 2), "chmod": (0,), "fchmodat": (1,), "chown": (0,), "lchown": (0,),
    "fchownat": (1,), "truncate": (0,), "mknod": (0,), "mknodat": (1,), "statfs": (0,),
    "mount": (0, 1, 2), "umount2": (0,), "sethostname": (), "execve": (0,), "execveat": (1,),
    "utimensat": (1,), "inotify_add_watch": (1,), "getxattr": (0, 1), "lgetxattr": (0, 1),
}
FD_FIRST = {"read", "write", "close", "fstat", "lseek", "ioctl", "pread64", "pwrite64",
            "readv", "writev", "dup", "dup2", "dup3", "fcntl", "getdents64", "fchdir",
            "fsync", "openat", "newfstatat", "fchmod", "fchown", "sendto", "recvfrom",
            "connect", "bind", "accept", "accept4", "listen", "shutdown", "mkdirat",
            "unlinkat", "readlinkat", "faccessat", "faccessat2", "statx", "fchownat",
            "fchmodat", "utimensat", "execveat", "mknodat"}
AT_FDCWD = (1 << 64) - 100


class SyscallMonitor:
    """Writes the log; the tracer calls entry() at each stop and exit() at syscall exits."""

    def __init__(self, path: str, tracer):
        self.path = path
        self.tracer = tracer
        self._file = open(path, "a", buffering=1 << 16)
        self._comm: dict[int, str] = {}
        self._tgid: dict[int, int] = {}

    def close(self) -> None:
        self._file.close()

    def entry(self, tracee, number: int, regs) -> dict:
        """Called before the handler changes anything; returns the record for exit()."""
        name = NAMES.get(number, f"syscall_{number}")
        pid = tracee.pid
        record = {"t": round(time.time(), 6), "pid": self._guest_tgid(tracee),
                  "tid": self.tracer.guest_pid_of(tracee), "comm": self._comm_of(pid),
                  "nr": number, "name": name, "args": self._decode(pid, name, regs)}
        if name in ("execve", "execveat"):
            self._comm.pop(pid, None)
            self._tgid.pop(pid, None)
        return record

    def finish(self, record: dict, result: int, emulated: bool = False) -> None:
        record["ret"] = result
        if result < 0 and -result < 4096:
            record["err"] = errno.errorcode.get(-result, str(-result))
        if emulated:
            record["emulated"] = True
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def exit(self, tracee, record: dict, result: int) -> None:
        self.finish(record, result)

    def flush(self) -> None:
        self._file.flush()

    # -- decoding -------------------------------------------------------------------------

    def _decode(self, pid: int, name: str, regs) -> list:
        strings = STRING_ARGS.get(name, ())
        args: list = []
        for index, register in enumerate(_ARG_REGISTERS):
            value = regs[register]
            if index in strings:
                args.append(self._string(pid, value))
            elif name in ("execve",) and index == 1:
                args.append(self._argv(pid, value))
            elif index == 0 and name in FD_FIRST:
                args.append("AT_FDCWD" if value == AT_FDCWD else _signed32(value))
            else:
                args.append(hex(value))
        return args

    @staticmethod
    def _string(pid: int, address: int) -> str | None:
        if not address:
            return None
        try:
            return os.fsdecode(memory.read_cstring(pid, address, 4096))
        except OSError:
            return hex(address)

    @staticmethod
    def _argv(pid: int, address: int) -> list[str] | None:
        if not address:
            return None
        try:
            pointers = memory.read_pointer_array(pid, address, 64)
            return [os.fsdecode(memory.read_cstring(pid, pointer, 1024)) for pointer in pointers]
        except OSError:
            return None

    def _guest_tgid(self, tracee) -> int:
        tgid = self._tgid.get(tracee.pid)
        if tgid is None:
            tgid = self._tgid[tracee.pid] = self._read_guest_tgid(tracee)
        return tgid

    def _read_guest_tgid(self, tracee) -> int:
        try:
            with open(f"/proc/{tracee.pid}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"NStgid:"):
                        return int(line.split()[-1])
        except OSError:
            pass
        return self.tracer.guest_pid_of(tracee)

    def _comm_of(self, pid: int) -> str:
        comm = self._comm.get(pid)
        if comm is None:
            try:
                with open(f"/proc/{pid}/comm") as handle:
                    comm = handle.read().strip()
            except OSError:
                comm = "?"
            self._comm[pid] = comm
        return comm


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value
