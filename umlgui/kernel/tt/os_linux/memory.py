"""Reading and writing a tracee's memory with process_vm_readv/writev.

One system call per access and no per-process file to reopen after execve (python-ptrace's
/proc/PID/mem falls back to 8-byte PEEKs after exec). Strings are read page by page because
process_vm_readv stops at the first unmapped page.
"""

from __future__ import annotations

import ctypes
import errno

_libc = ctypes.CDLL(None, use_errno=True)


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_readv = _libc.process_vm_readv
_writev = _libc.process_vm_writev
for _fn in (_readv, _writev):
    _fn.restype = ctypes.c_ssize_t
    _fn.argtypes = [ctypes.c_int, ctypes.POINTER(_IoVec), ctypes.c_ulong,
                    ctypes.POINTER(_IoVec), ctypes.c_ulong, ctypes.c_ulong]

PAGE = 4096
_BUFFER_SIZE = 1 << 16
_buffer = ctypes.create_string_buffer(_BUFFER_SIZE)
_local = _IoVec(ctypes.addressof(_buffer), 0)
_remote = _IoVec(0, 0)
_local_p = ctypes.pointer(_local)
_remote_p = ctypes.pointer(_remote)


class MemoryError_(OSError):
    """The tracee's memory could not be accessed (bad pointer: the guest gets EFAULT)."""


def _read_into_buffer(pid: int, address: int, length: int) -> int:
    _local.len = length
    _remote.base = address
    _remote.len = length
    return _readv(pid, _local_p, 1, _remote_p, 1, 0)


def read(pid: int, address: int, length: int) -> bytes:
    """Exactly `length` bytes from the tracee, or MemoryError_ (EFAULT)."""
    if length > _BUFFER_SIZE:
        return b"".join(read(pid, address + offset, min(_BUFFER_SIZE, length - offset))
                        for offset in range(0, length, _BUFFER_SIZE))
    got = _read_into_buffer(pid, address, length)
    if got != length:
        raise MemoryError_(errno.EFAULT, "bad address")
    return _buffer.raw[:length]


def read_cstring(pid: int, address: int, limit: int = 4096) -> bytes:
    """A NUL-terminated string (without the NUL), at most `limit` bytes."""
    if address == 0:
        raise MemoryError_(errno.EFAULT, "NULL pointer")
    chunks = []
    total = 0
    while total < limit:
        chunk = min(PAGE - (address % PAGE), limit - total)
        got = _read_into_buffer(pid, address, chunk)
        if got <= 0:
            raise MemoryError_(errno.EFAULT, "bad address")
        data = _buffer.raw[:got]
        end = data.find(b"\0")
        if end >= 0:
            chunks.append(data[:end])
            return b"".join(chunks)
        chunks.append(data)
        total += got
        address += got
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
    source = ctypes.create_string_buffer(data, len(data))
    local = _IoVec(ctypes.addressof(source), len(data))
    remote = _IoVec(address, len(data))
    if _writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) != len(data):
        raise MemoryError_(errno.EFAULT, "bad address")
