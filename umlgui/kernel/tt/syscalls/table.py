"""Every syscall the tt engine handles, by name, and the seccomp filter built from them.

The tracer looks handlers up by number in `HANDLERS_BY_NUMBER`; everything not listed here
or in denied.DENIED runs untouched in the host kernel (read, write, mmap, fstat, getdents64,
futex, poll, pipes, signals, ...). A guest pid is a host pid in the guest's pid namespace, so
getpid/kill/wait4 need no translation either.
"""

from __future__ import annotations

from ..os_linux import seccomp
from ..os_linux.syscall_numbers import NAMES, NUMBERS
from . import attributes, denied, exec as exec_, files, identity, mounts, names, sockets, system

HANDLERS: dict[str, object] = {
    **files.HANDLERS,        # open*, stat*, access*, readlink*, getcwd, chdir, statfs, xattr reads
    **names.HANDLERS,        # mkdir*, mknod*, unlink*, rmdir, rename*, link*, symlink*
    **attributes.HANDLERS,   # chmod*, chown*, truncate, utime*
    **exec_.HANDLERS,        # execve, execveat
    **identity.HANDLERS,     # get/set*id, getgroups, setgroups
    **system.HANDLERS,       # uname, sethostname, setdomainname, reboot, syslog
    **mounts.HANDLERS,       # mount, umount2
    **sockets.HANDLERS,      # bind, connect (unix socket paths)
}

HANDLERS_BY_NUMBER: dict[int, object] = {NUMBERS[name]: handler for name, handler in HANDLERS.items()}


def filter_actions(trace_everything: bool = False) -> tuple[dict[int, seccomp.Action], seccomp.Action]:
    """Per-number actions and the default, for seccomp.build_program."""
    actions: dict[int, seccomp.Action] = {}
    for name in HANDLERS:
        actions[NUMBERS[name]] = seccomp.Action.trace()
    for name, error in denied.DENIED.items():
        if name in NUMBERS:
            actions[NUMBERS[name]] = seccomp.Action.refuse(error)
    default = seccomp.Action.trace() if trace_everything else seccomp.Action.allow()
    for name in denied.FLAG_CHECKED:
        actions[NUMBERS[name]] = seccomp.Action(default.ret, refuse_flags=denied.NAMESPACE_FLAGS)
    return actions, default


def build_filter(trace_everything: bool = False) -> bytes:
    actions, default = filter_actions(trace_everything)
    return seccomp.build_program(actions, default)


def name_of(number: int) -> str:
    return NAMES.get(number, f"syscall_{number}")
