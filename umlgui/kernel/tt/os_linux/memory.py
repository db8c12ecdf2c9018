"""Reading and writing a tracee's memory: pread/pwrite on /proc/PID/mem.

One system call per access, made by CPython itself (process_vm_readv/writev through ctypes
measured 2-4 µs slower per call). The fd is per thread and dropped on exec and exit (an fd
opened before an execve keeps showing the old address space; python-ptrace's fallback to
8-byte PEEKs comes from exactly that). Strings are read 256 bytes first, then page by page.
"""

from __future__ import annotations

import errno
import os

PAGE = 4096


class MemoryError_(OSError):
    """The tracee's memory could not be accessed (bad pointer: the guest gets EFAULT)."""


_fds: dict[int, int] = {}


def _fd(pid: int) -> int:
    """An open /proc/PID/mem (pread/pwrite cost a few µs less than process_vm_*v via ctypes)."""
    fd = _fds.get(pid)
    if fd is None:
        try:
            fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
        except OSError as error:
            raise MemoryError_(errno.ESRCH, str(error)) from None
        _fds[pid] = fd
    return fd


def forget(pid: int) -> None:
    """Drop the cached fd: the thread exited or exec'd (the fd would show the old memory)."""
    fd = _fds.pop(pid, None)
    if fd is not None:
        os.close(fd)


def read(pid: int, address: int, length: int) -> bytes:
    """Exactly `length` bytes from the tracee, or MemoryError_ (EFAULT)."""
    try:
        data = os.pread(_fd(pid), length, address)
    except OSError:
        raise MemoryError_(errno.EFAULT, "bad address") from None
    if len(data) != length:
        raise MemoryError_(errno.EFAULT, "bad address")
    return data


def read_cstring(pid: int, address: int, limit: int = 4096) -> bytes:
    """A NUL-terminated string (without the NUL), at most `limit` bytes."""
    if address == 0:
        raise MemoryError_(errno.EFAULT, "NULL pointer")
    fd = _fd(pid)
    chunks = []
    total = 0
    size = 256                   # most paths are short
    while total < limit:
        try:
            data = os.pread(fd, min(size, limit - total), address)
        except OSError:
            data = b""
        if not data:
            raise MemoryError_(errno.EFAULT, "bad address")
        end = data.find(b"\0")
        if end >= 0:
            if not chunks:
                return data[:end]
            chunks.append(data[:end])
            return b"".join(chunks)
        chunks.append(data)
        total += len(data)
        address += len(data)
        size = PAGE
    raise MemoryError_(errno.ENAMETOOLONG, "string too long")


def read_pointer_array(pid: int, address: int, limit: int = 65536) -> list[int]:
    """A NULL-terminated array of pointers (argv, envp)."""
    pointers: list[int] = []
    while address and len(pointers) < limit:
        raw = read(pid, address, 8 * 64) if (address % PAGE) <= PAGE - 512 else read(pid, address, 8)
        for index in range(0, len(raw), 8):
            value = int.from_bytes(raw[index:index + 8], "little")
            if value == 0:
                return pointers
            pointers.append(value)
        address += len(raw)
    return pointers


def write(pid: int, address: int, data: bytes) -> None:
    """Write `data` into the tracee, or MemoryError_ (EFAULT)."""
    try:
        written = os.pwrite(_fd(pid), data, address)
    except OSError:
        raise MemoryError_(errno.EFAULT, "bad address") from None
    if written != len(data):
        raise MemoryError_(errno.EFAULT, "bad address")
