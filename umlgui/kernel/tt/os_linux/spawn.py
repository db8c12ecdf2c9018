"""Starting the guest's first process: namespaces, private mounts, capabilities, seccomp.

The guest init runs in fresh pid, mount, network, IPC and UTS namespaces, so it is pid 1, sees
only guest processes in its /proc and cannot touch the host's network. Path translation (the
tracer's work) decides which files it sees; the namespaces only provide what ptrace cannot
fake cheaply. Without root the same is done inside a user namespace that maps guest 0 to the
caller.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

from . import ptrace, seccomp

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000
NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
                   | CLONE_NEWNET | CLONE_NEWCGROUP | 0x00000080)  # 0x80 = CLONE_NEWTIME
SIGCHLD = 17
SYS_CLONE = 56

MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

PR_CAPBSET_DROP = 24
# Capabilities a guest process never needs, because the tracer emulates what they allow
# (mounts, mknod, reboot, hostname) or because they reach the host (modules, raw I/O, clock).
DROPPED_CAPABILITIES = (
    9,   # LINUX_IMMUTABLE
    16,  # SYS_MODULE
    17,  # SYS_RAWIO
    19,  # SYS_PTRACE
    20,  # SYS_PACCT
    21,  # SYS_ADMIN
    22,  # SYS_BOOT
    25,  # SYS_TIME
    26,  # SYS_TTY_CONFIG
    27,  # MKNOD
    28,  # LEASE
    29,  # AUDIT_WRITE
    30,  # AUDIT_CONTROL
    31,  # SETFCAP
    32,  # MAC_OVERRIDE
    33,  # MAC_ADMIN
    34,  # SYSLOG
    35,  # WAKE_ALARM
    36,  # BLOCK_SUSPEND
    37,  # AUDIT_READ
    38,  # PERFMON
    39,  # BPF
    40,  # CHECKPOINT_RESTORE
)


@dataclass
class GuestLaunch:
    """What the first guest process is started with."""

    init_path: str                       # a guest path; translated by the tracer like any exec
    argv: list[str]
    env: dict[str, str]
    host_cwd: str                        # host directory of the guest's "/"
    console_fd: int | None               # becomes fds 0, 1, 2
    proc_mount: str                      # host dir where the guest's own proc is mounted
    devpts_mount: str                    # host dir for the guest's own devpts instance
    filter_program: bytes
    real_root: bool = True


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    encode = lambda text: text.encode() if text is not None else None  # noqa: E731
    if _libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {fstype or source} on {target}: {os.strerror(error)}")


def _child(launch: GuestLaunch, release_fd: int) -> None:
    os.read(release_fd, 1)               # wait until the tracer has seized us
    os.close(release_fd)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", launch.proc_mount, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # gid 5 (tty) exists only when we are real root (a user namespace maps just one id)
    _mount("devpts", launch.devpts_mount, "devpts", MS_NOSUID | MS_NOEXEC,
           "newinstance,ptmxmode=0666,mode=620" + (",gid=5" if launch.real_root else ""))
    for capability in DROPPED_CAPABILITIES:
        _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)
    if launch.console_fd is not None:
        for target in (0, 1, 2):
            if launch.console_fd != target:
                os.dup2(launch.console_fd, target)
    else:
        null = os.open("/dev/null", os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
    os.closerange(3, 65536)   # consoles are reached by path (/dev/console -> the pty slave)
    os.chdir(launch.host_cwd)
    os.umask(0o022)
    seccomp.install(launch.filter_program)
    # From here on every trapped syscall stops in the tracer; execve is translated there.
    os.execve(launch.init_path, launch.argv, launch.env)


def _write_id_maps(pid: int) -> None:
    with open(f"/proc/{pid}/setgroups", "w") as handle:
        handle.write("deny")
    with open(f"/proc/{pid}/uid_map", "w") as handle:
        handle.write(f"0 {os.geteuid()} 1")
    with open(f"/proc/{pid}/gid_map", "w") as handle:
        handle.write(f"0 {os.getegid()} 1")


def start_guest(launch: GuestLaunch) -> int:
    """Clone the guest init into new namespaces, seize it, let it exec; returns its host pid."""
    flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    launch.real_root = os.geteuid() == 0
    if not launch.real_root:
        flags |= CLONE_NEWUSER
    release_read, release_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = _libc.syscall(SYS_CLONE, flags | SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        try:
            os.close(release_write)
            _child(launch, release_read)
        except BaseException as error:  # noqa: BLE001 - nothing may unwind into the tracer's code
            try:
                os.write(2, f"tt: cannot start init: {error}\n".encode())
            finally:
                os._exit(127)
        os._exit(127)
    os.close(release_read)
    if pid < 0:
        error = ctypes.get_errno()
        os.close(release_write)
        raise OSError(error, f"clone: {os.strerror(error)}")
    try:
        if flags & CLONE_NEWUSER:
            _write_id_maps(pid)
        ptrace.seize(pid)
    finally:
        os.write(release_write, b"x")
        os.close(release_write)
    return pid
