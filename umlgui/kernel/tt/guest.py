"""The guest as the syscall handlers see it: its files, identity, name and power state.

One `Guest` exists per boot. Handlers in syscalls/ read and change it; the tracer and the
kernel process (kernel.py) own the processes and the lifecycle.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from dataclasses import dataclass, field

from .vfs.layers import Layers
from .vfs.resolver import DeviceTable, Resolution, Resolver
from .vfs.sidetable import SideTable
from .vfs.synth import MergedDirs, ProcFiles

RELEASE = "6.1.0-tt"
KERNEL_VERSION = "#1 SMP PREEMPT_DYNAMIC umlgui-tt"
SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID

O_CREAT = 0o100
O_EXCL = 0o200
O_PATH = 0o10000000
O_TMPFILE = 0o20000000 | 0o200000

# /proc files a guest may never open: host memory, the host kernel log, host SysRq.
PROC_FORBIDDEN = {"kcore", "kmsg", "kpagecount", "kpageflags", "kpagecgroup", "sysrq-trigger",
                  "kallsyms", "vmallocinfo", "iomem", "ioports", "timer_list", "keys",
                  "key-users", "config.gz"}


@dataclass
class Creds:
    """Fake credentials of one guest thread (the host ones never change)."""

    uid: int = 0
    euid: int = 0
    suid: int = 0
    fsuid: int = 0
    gid: int = 0
    egid: int = 0
    sgid: int = 0
    fsgid: int = 0
    groups: tuple[int, ...] = ()

    def copy(self) -> "Creds":
        return Creds(self.uid, self.euid, self.suid, self.fsuid, self.gid, self.egid,
                     self.sgid, self.fsgid, self.groups)


@dataclass
class GuestConfig:
    base: str
    cow: str
    instance_dir: str
    proc_mount: str
    devpts_mount: str
    hostname: str = "(none)"
    memory_bytes: int = 256 << 20
    hostfs_root: str | None = None
    consoles: dict[str, str] = field(default_factory=dict)
    cmdline_words: list[str] = field(default_factory=list)


class Guest:
    """State shared by all syscall handlers of one boot."""

    def __init__(self, config: GuestConfig, host_pid_of_guest, memory_used):
        self.config = config
        os.makedirs(config.cow, exist_ok=True)
        self.layers = Layers(config.base, os.path.join(config.cow, "root"))
        self.sidetable = SideTable(os.path.join(config.cow, "owners.tsv"))
        self.devices = DeviceTable(dict(config.consoles), config.devpts_mount,
                                   os.path.join(config.instance_dir, "devlinks"))
        os.makedirs(self.devices.links_dir, exist_ok=True)
        for name, target in DeviceTable.LINKS.items():
            if not os.path.islink(os.path.join(self.devices.links_dir, name)):
                os.symlink(target, os.path.join(self.devices.links_dir, name))
        self.proc_files = ProcFiles(os.path.join(config.instance_dir, "proc-files"), self)
        self.resolver = Resolver(self.layers, self.devices, config.proc_mount,
                                 self._synth_proc, host_pid_of_guest)
        self.merged = MergedDirs(os.path.join(config.instance_dir, "merged"))
        self.resolver.synth_root = self.merged.root
        self.hostname = config.hostname
        self.domainname = "(none)"
        self.release = RELEASE
        self.kernel_version = KERNEL_VERSION
        self.memory_bytes = config.memory_bytes
        self.memory_used_bytes = memory_used
        self.cmdline_words = config.cmdline_words
        self.boot_monotonic = time.monotonic()
        self.power_request: str | None = None      # "halt" or "reboot", set by reboot(2)
        self.cad_enabled = True
        self.tmpfs_count = 0
        self._exec_aliases: dict[tuple[str, str], str] = {}
        base_st = os.stat(self.layers.base)
        self._root_uids = {os.geteuid(), base_st.st_uid}
        self._root_gids = {os.getegid(), base_st.st_gid}
        # the host kernel's own stat shows the right owner when the base belongs to us
        # (root, or the user mapped to 0 in the guest's user namespace)
        self.native_stat_ok = (base_st.st_uid == os.geteuid() and
                               base_st.st_gid == os.getegid())
        if self._has_base_dir("/dev"):
            # /dev in upper makes it a merged directory, so listings show the virtual devices
            self.layers.ensure_upper_dir("/dev")

    def _has_base_dir(self, guest_dir: str) -> bool:
        return os.path.isdir(self.layers.base + guest_dir)

    def close(self) -> None:
        self.sidetable.close()

    # -- /proc -------------------------------------------------------------------------

    def _synth_proc(self, name: str, pid: int) -> str | None:
        return self.proc_files.host_path(name, pid)

    # -- ownership -----------------------------------------------------------------------

    def presented_owner(self, guest_path: str, st: os.stat_result) -> tuple[int, int, int, int]:
        """(uid, gid, st_mode, rdev) the guest sees for a file."""
        uid = 0 if st.st_uid in self._root_uids else st.st_uid
        gid = 0 if st.st_gid in self._root_gids else st.st_gid
        mode, rdev = st.st_mode, st.st_rdev
        entry = self.sidetable.get(guest_path)
        if entry is not None:
            if entry.uid != -1:
                uid = entry.uid
            if entry.gid != -1:
                gid = entry.gid
            if entry.mode != -1:
                mode = entry.mode
            if entry.rdev != -1:
                rdev = entry.rdev
        return uid, gid, mode, rdev

    def record_new_file(self, tracee, guest_path: str) -> None:
        """Files made by a guest process with a non-root fake identity belong to it."""
        creds = tracee.creds
        if creds.fsuid != 0 or creds.fsgid != 0:
            self.sidetable.set(guest_path, uid=creds.fsuid, gid=creds.fsgid)
        elif self.sidetable.get(guest_path) is not None:
            self.sidetable.forget(guest_path)

    # -- opening -----------------------------------------------------------------------

    def prepare_open(self, tracee, node: Resolution, flags: int, writing: bool) -> str:
        """The host path an open of `node` may use; copies up or creates as needed."""
        kind = node.kind
        if kind == "union":
            return self._prepare_union_open(tracee, node, flags, writing)
        if kind == "hostfs":
            if node.st is None and not flags & O_CREAT:
                raise OSError(errno.ENOENT, "no such file or directory")
            if node.st is not None and flags & O_CREAT and flags & O_EXCL:
                raise OSError(errno.EEXIST, "file exists")
            return node.host
        if kind == "proc":
            parts = node.guest.split("/")
            name = parts[2] if len(parts) > 2 else ""
            if name in PROC_FORBIDDEN:
                raise OSError(errno.EACCES, "permission denied")
            process_file = name.isdigit() or name in ("self", "thread-self")
            if writing and not process_file:
                raise OSError(errno.EACCES, "read-only in the guest")
            return node.host
        if kind == "dev":
            parts = node.guest.split("/")
            if len(parts) == 3 and self.devices.unconfigured(parts[2]):
                raise OSError(errno.ENODEV, "no channel configured for this line")
            return node.host
        if kind == "synth":
            if writing:
                raise OSError(errno.EACCES, "read-only in the guest")
            return node.host
        return node.host

    def _prepare_union_open(self, tracee, node: Resolution, flags: int, writing: bool) -> str:
        layers = self.layers
        st = node.st
        if st is not None and stat.S_ISLNK(st.st_mode):
            # only reached with O_NOFOLLOW/O_PATH: the host kernel answers ELOOP or opens the link
            return node.host
        if st is None:
            if (flags & O_TMPFILE) == O_TMPFILE or not flags & O_CREAT:
                raise OSError(errno.ENOENT, "no such file or directory")
            host = layers.prepare_create(node.guest)
            self.record_new_file(tracee, node.guest)
            return host
        if flags & O_CREAT and flags & O_EXCL:
            raise OSError(errno.EEXIST, "file exists")
        if stat.S_ISDIR(st.st_mode):
            if (flags & O_TMPFILE) == O_TMPFILE:
                return layers.ensure_upper_dir(node.guest)
            if writing:
                raise OSError(errno.EISDIR, "is a directory")
            if not flags & O_PATH and layers.is_merged(node.guest):
                return self.merged_dir(node.guest)
            return node.host
        if writing and node.layer == "base":
            return layers.copy_up(node.guest)
        return node.host

    def merged_dir(self, guest_dir: str) -> str:
        entries = self.layers.listing(guest_dir)
        if guest_dir == "/dev":
            for name in self.devices.names():
                entries.setdefault(name, stat.S_IFCHR if name not in ("pts", "fd", "stdin",
                                   "stdout", "stderr") else
                                   (stat.S_IFDIR if name == "pts" else stat.S_IFLNK))
        return self.merged.host_dir(guest_dir, entries, self.layers.generation)

    # -- helpers for handlers ----------------------------------------------------------

    def hostfs_directory(self, option: str) -> str:
        """The host directory for `mount -t hostfs none DIR -o OPTION` (below hostfs=)."""
        root = self.config.hostfs_root
        if not root:
            raise OSError(errno.EPERM, "no hostfs= directory is configured for this machine")
        root = os.path.realpath(root)
        sub = option.split(",", 1)[0] if option else ""
        host = os.path.realpath(os.path.join(root, sub.lstrip("/")))
        if host != root and not host.startswith(root + "/"):
            raise OSError(errno.EPERM, "outside the machine's hostfs directory")
        if not os.path.isdir(host):
            raise OSError(errno.ENOENT, "no such host directory")
        return host

    def exec_alias(self, host_path: str, name: str) -> str:
        """A path ending in `name` that leads to `host_path`.

        The host kernel names a process (comm, `ps`) after the last component of the path
        given to execve; the guest expects its own name (init, not busybox; ls, not ld.so).
        """
        name = name.rsplit("/", 1)[-1] or "exe"
        if name == host_path.rsplit("/", 1)[-1]:
            return host_path
        key = (host_path, name)
        alias = self._exec_aliases.get(key)
        if alias is None:
            directory = os.path.join(self.config.instance_dir, "exec", str(len(self._exec_aliases)))
            os.makedirs(directory)
            alias = os.path.join(directory, name)
            os.symlink(host_path, alias)
            self._exec_aliases[key] = alias
        return alias

    def note_exec(self, tracee, path: str, argv: list[str]) -> None:
        """Called for every execve (the monitor reads the argv from here)."""

    def kernel_log_text(self) -> str:
        return ""

    def umask_of(self, pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Umask:"):
                        return int(line.split()[1], 8)
        except OSError:
            pass
        return 0o022
