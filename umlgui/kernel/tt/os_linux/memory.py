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
_buffer_address = ctypes.addressof(_buffer)
_local = _IoVec(_buffer_address, 0)
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
    return ctypes.string_at(_buffer_address, length)


def read_cstring(pid: int, address: int, limit: int = 4096) -> bytes:
    """A NUL-terminated string (without the NUL), at most `limit` bytes."""
    if address == 0:
        raise MemoryError_(errno.EFAULT, "NULL pointer")
    chunks = []
    total = 0
    first = True
    while total < limit:
        # most paths are short: try 256 bytes before reading to the end of the page
        chunk = min(PAGE - (address % PAGE), limit - total, 256 if first else PAGE)
        first = False
        got = _read_into_buffer(pid, address, chunk)
        if got <= 0:
            raise MemoryError_(errno.EFAULT, "bad address")
        data = ctypes.string_at(_buffer_address, got)
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
    length = len(data)
    if length > _BUFFER_SIZE:
        for offset in range(0, length, _BUFFER_SIZE):
            write(pid, address + offset, data[offset:offset + _BUFFER_SIZE])
        return
    ctypes.memmove(_buffer_address, data, length)
    _local.len = length
    _remote.base = address
    _remote.len = length
    if _writev(pid, _local_p, 1, _remote_p, 1, 0) != length:
        raise MemoryError_(errno.EFAULT, "bad address")
