"""Syscalls a guest may not make, each with the errno it gets.

They would reach the host directly (device handles, other processes' memory, the host
clock, kernel modules, host mounts) or bypass path translation (io_uring, open_by_handle_at).
The seccomp filter answers them in the host kernel; no tracer stop is involved.
"""

from __future__ import annotations

import errno

DENIED: dict[str, int] = {
    # bypass path translation
    "io_uring_setup": errno.EPERM, "io_uring_enter": errno.EPERM,
    "io_uring_register": errno.EPERM, "open_by_handle_at": errno.EPERM,
    "name_to_handle_at": errno.EOPNOTSUPP, "uselib": errno.ENOSYS,
    "fanotify_init": errno.EPERM, "fanotify_mark": errno.EPERM,
    # other processes, the guest's own included (the engine is their only tracer)
    "ptrace": errno.EPERM, "process_vm_readv": errno.EPERM, "process_vm_writev": errno.EPERM,
    "kcmp": errno.EPERM, "pidfd_getfd": errno.EPERM, "process_madvise": errno.EPERM,
    # the host kernel itself
    "bpf": errno.EPERM, "perf_event_open": errno.EPERM, "kexec_load": errno.EPERM,
    "kexec_file_load": errno.EPERM, "init_module": errno.EPERM, "finit_module": errno.EPERM,
    "delete_module": errno.EPERM, "create_module": errno.ENOSYS, "iopl": errno.EPERM,
    "ioperm": errno.EPERM, "swapon": errno.EPERM, "swapoff": errno.EPERM,
    "acct": errno.EPERM, "quotactl": errno.EPERM, "quotactl_fd": errno.EPERM,
    "lookup_dcookie": errno.EPERM, "userfaultfd": errno.EPERM, "keyctl": errno.ENOSYS,
    "add_key": errno.ENOSYS, "request_key": errno.ENOSYS, "vhangup": errno.EPERM,
    "settimeofday": errno.EPERM, "clock_settime": errno.EPERM,
    "clock_adjtime": errno.EPERM, "nfsservctl": errno.ENOSYS, "vm86": errno.ENOSYS,
    # host mounts and namespaces
    "pivot_root": errno.EPERM, "chroot": errno.EPERM, "setns": errno.EPERM,
    "open_tree": errno.EPERM, "open_tree_attr": errno.EPERM, "move_mount": errno.EPERM,
    "fsopen": errno.EPERM, "fsconfig": errno.EPERM, "fsmount": errno.EPERM,
    "fspick": errno.EPERM, "mount_setattr": errno.EPERM, "statmount": errno.EPERM,
    "listmount": errno.EPERM,
    # extended attributes could carry host file capabilities: not stored
    "setxattr": errno.EOPNOTSUPP, "lsetxattr": errno.EOPNOTSUPP,
    "fsetxattr": errno.EOPNOTSUPP, "removexattr": errno.EOPNOTSUPP,
    "lremovexattr": errno.EOPNOTSUPP, "fremovexattr": errno.EOPNOTSUPP,
    "setxattrat": errno.EOPNOTSUPP, "removexattrat": errno.EOPNOTSUPP,
    # glibc falls back to clone(2), whose flags the filter can check
    "clone3": errno.ENOSYS,
}

# clone/unshare with these flags would leave the guest's namespaces: EPERM.
NAMESPACE_FLAGS = (0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
                   | 0x02000000 | 0x00000080)
FLAG_CHECKED = ("clone", "unshare")
