"""execve and execveat: the program, its `#!` interpreter and its ELF interpreter.

The host kernel would look up `#!` interpreters and PT_INTERP (ld.so) in the host root, so
the engine does both itself in the guest root: scripts become `interpreter [arg] script
args...`, and dynamic ELF programs run as `GUEST_LD.SO --argv0 ARGV0 /guest/program args...`
(glibc >= 2.33), whose own opens are translated like any other. Static programs are
executed directly. Only then does the host kernel run the (rewritten) execve.
"""

from __future__ import annotations

import errno
import os
import stat
import struct

from ..os_linux import memory
from ..os_linux.ptrace import R8, R10, RDI, RDX, RSI
from ..os_linux.syscall_numbers import NUMBERS
from .common import AT_FDCWD, REWRITTEN, Scratch, arg_fd, read_path, set_syscall

MAX_SCRIPT_DEPTH = 4
PT_INTERP = 3
AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100
_EXECVE = NUMBERS["execve"]


def _executable(guest, tracee, dirfd: int, path: str, follow: bool = True):
    node = guest.resolver.resolve(tracee.pid, dirfd, path, follow=follow)
    if node.kind not in ("union", "hostfs"):
        raise OSError(errno.EACCES, "permission denied")
    st = node.st
    if st is None:
        raise OSError(errno.ENOENT, "no such file or directory")
    if stat.S_ISLNK(st.st_mode):
        raise OSError(errno.ELOOP, "symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EACCES, "permission denied")
    _, _, mode, _ = guest.presented_owner(node.guest, st)
    if not mode & 0o111:
        raise OSError(errno.EACCES, "permission denied")
    return node


def _elf_interpreter(head: bytes, host_path: str) -> str | None:
    if len(head) < 64 or head[4] != 2:            # ELFCLASS64 only
        return None
    phoff, = struct.unpack_from("<Q", head, 32)
    phentsize, phnum = struct.unpack_from("<HH", head, 54)
    with open(host_path, "rb") as handle:
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
        for index in range(phnum):
            entry = table[index * phentsize:(index + 1) * phentsize]
            if len(entry) < 56:
                break
            kind, _, offset, _, _, size = struct.unpack_from("<IIQQQQ", entry)
            if kind == PT_INTERP:
                handle.seek(offset)
                return handle.read(size).split(b"\0", 1)[0].decode(errors="surrogateescape")
    return None


def _parse_shebang(head: bytes) -> tuple[str, str | None]:
    line = head[2:].split(b"\n", 1)[0][:255].strip(b" \t\r")
    if not line:
        raise OSError(errno.ENOEXEC, "empty #! line")
    parts = line.split(None, 1)
    interpreter = os.fsdecode(parts[0])
    argument = os.fsdecode(parts[1].strip()) if len(parts) > 1 else None
    return interpreter, argument


def plan_exec(guest, tracee, dirfd: int, path: str, argv: list[str],
              follow: bool = True) -> tuple[str, list[str]]:
    """(host path to execute, argv) for an execve of guest `path` with `argv`."""
    node = _executable(guest, tracee, dirfd, path, follow)
    for _ in range(MAX_SCRIPT_DEPTH):
        with open(node.host, "rb") as handle:
            head = handle.read(256)
        if head.startswith(b"#!"):
            interpreter, argument = _parse_shebang(head)
            # like Linux: the script is passed as named to execve (the interpreter's own
            # open of it is translated again)
            argv = [interpreter] + ([argument] if argument else []) + [path] + argv[1:]
            path = interpreter
            node = _executable(guest, tracee, AT_FDCWD, interpreter)
            continue
        if head.startswith(b"\x7fELF"):
            loader = _elf_interpreter(head, node.host)
            if loader is None:
                return node.host, argv
            loader_node = _executable(guest, tracee, AT_FDCWD, loader)
            argv0 = argv[0] if argv else path
            return loader_node.host, [loader, "--argv0", argv0, node.guest] + argv[1:]
        raise OSError(errno.ENOEXEC, "exec format error")
    raise OSError(errno.ELOOP, "too many levels of #! interpreters")


def _read_strings(pid: int, address: int) -> list[str]:
    try:
        pointers = memory.read_pointer_array(pid, address)
        return [os.fsdecode(memory.read_cstring(pid, pointer, 1 << 17)) for pointer in pointers]
    except memory.MemoryError_:
        raise OSError(errno.EFAULT, "bad address") from None


def _rewrite(tracee, regs, host_path: str, argv: list[str], envp: int) -> object:
    scratch = Scratch(regs)
    path_address = scratch.add_string(host_path)
    pointers = [scratch.add_string(argument) for argument in argv]
    array_address = scratch.add(struct.pack(f"<{len(pointers) + 1}Q", *pointers, 0))
    scratch.flush(tracee.pid)
    set_syscall(regs, _EXECVE, path_address, array_address, envp)
    return REWRITTEN


def sys_execve(guest, tracee, regs):
    path = read_path(tracee.pid, regs[RDI])
    argv = _read_strings(tracee.pid, regs[RSI]) if regs[RSI] else []
    host_path, new_argv = plan_exec(guest, tracee, AT_FDCWD, path, argv)
    host_path = guest.exec_alias(host_path, path)
    guest.note_exec(tracee, path, new_argv)
    return _rewrite(tracee, regs, host_path, new_argv, regs[RDX])


def sys_execveat(guest, tracee, regs):
    dirfd = arg_fd(regs[RDI])
    flags = regs[R8]
    path = read_path(tracee.pid, regs[RSI]) if regs[RSI] else ""
    if not path and flags & AT_EMPTY_PATH:
        path = guest.resolver.guest_fd_path(tracee.pid, dirfd)
        dirfd = AT_FDCWD
    argv = _read_strings(tracee.pid, regs[RDX]) if regs[RDX] else []
    host_path, new_argv = plan_exec(guest, tracee, dirfd, path, argv,
                                    follow=not flags & AT_SYMLINK_NOFOLLOW)
    host_path = guest.exec_alias(host_path, path)
    guest.note_exec(tracee, path, new_argv)
    return _rewrite(tracee, regs, host_path, new_argv, regs[R10])


HANDLERS = {"execve": sys_execve, "execveat": sys_execveat}
