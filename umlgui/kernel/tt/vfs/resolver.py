"""Guest path -> host path, component by component, as a kernel's namei would.

Every path a guest syscall names is made absolute in guest terms (cwd or the `*at()` dirfd
are read back from the host and mapped to guest paths), then walked from the guest "/":
`..` stops at the guest root, symlinks (absolute and relative) are followed inside the guest
root, and mount points switch to hostfs directories, the guest's own /proc or the virtual
/dev. The result names the host file the guest syscall may touch; nothing outside the guest
root, its hostfs mounts and the engine's device table can be named.

The magic links of /proc (`/proc/PID/{cwd,root,exe,fd/N}`) are resolved here too, because the
host kernel would follow them in host terms.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from .layers import Layers, Node

MAX_SYMLINK_HOPS = 40
_PROC_MAGIC = ("cwd", "root", "exe")


@dataclass(slots=True)
class Resolution:
    """Where a guest path leads."""

    guest: str                          # canonical guest path
    host: str                           # host path to hand to the host kernel
    kind: str                           # "union", "hostfs", "proc", "dev", "synth"
    st: os.stat_result | None = None    # lstat of the host node when the tracer looked
    layer: str = ""                     # for "union": "upper", "base" or "" (does not exist)
    magic_target: str | None = None     # for an unfollowed /proc magic link: its guest text

    @property
    def exists(self) -> bool:
        return self.kind != "union" and self.kind != "hostfs" or self.st is not None

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)


@dataclass
class Mount:
    """A guest mount point backed by a host directory (hostfs, tmpfs)."""

    guest: str
    host: str
    fstype: str
    source: str = "none"
    options: str = "rw"


@dataclass
class DeviceTable:
    """The virtual /dev: guest device names -> host paths."""

    consoles: dict[str, str] = field(default_factory=dict)   # "tty0" -> "/dev/pts/7"
    devpts: str = ""                                         # the guest's own devpts mount
    links_dir: str = ""                                      # symlinks fd, stdin, ...

    IDENTITY = ("null", "zero", "full", "random", "urandom", "tty")
    LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}

    def host_path(self, name: str) -> str | None:
        if name in self.IDENTITY:
            return "/dev/" + name
        if name in self.consoles:
            return self.consoles[name]
        if name == "ptmx":
            return self.devpts + "/ptmx"
        if name == "pts":
            return self.devpts
        if (name.startswith("tty") and name[3:].isdigit()) or \
                (name.startswith("ttyS") and name[4:].isdigit()):
            return "/dev/null"     # a line with no channel: like UML's null channel
        return None

    def unconfigured(self, name: str) -> bool:
        """A tty line with no channel: it exists, but opening it fails (ENODEV)."""
        return name not in self.consoles and self.host_path(name) == "/dev/null" and \
            name != "null"

    def names(self) -> list[str]:
        return list(self.IDENTITY) + list(self.consoles) + ["ptmx", "pts"] + list(self.LINKS)


class Resolver:
    """Translates guest paths for one machine."""

    def __init__(self, layers: Layers, devices: DeviceTable, proc_mount: str,
                 synth_proc: "callable", host_pid_of_guest: "callable"):
        self.layers = layers
        self.devices = devices
        self.proc_mount = proc_mount
        self.mounts: dict[str, Mount] = {}
        self._synth_proc = synth_proc              # (name, pid) -> host path or None
        self._host_pid_of_guest = host_pid_of_guest
        self._prefix_cache: dict[str, tuple[str, ...]] = {}
        self._cache_generation = -1

    # -- mounts ----------------------------------------------------------------------------

    def add_mount(self, mount: Mount) -> None:
        self.mounts[mount.guest] = mount
        self.layers.invalidate()

    def remove_mount(self, guest: str) -> Mount:
        mount = self.mounts.pop(guest)
        self.layers.invalidate()
        return mount

    def _mount_containing(self, guest_dir: str) -> Mount | None:
        if not self.mounts:
            return None
        probe = guest_dir
        while True:
            mount = self.mounts.get(probe)
            if mount is not None:
                return mount
            if probe == "/":
                return None
            probe = probe.rsplit("/", 1)[0] or "/"

    # -- the cwd and fds of a tracee -------------------------------------------------------

    def guest_cwd(self, pid: int) -> str:
        try:
            return self.guest_path_of(os.readlink(f"/proc/{pid}/cwd")) or "/"
        except OSError:
            return "/"

    def guest_fd_path(self, pid: int, fd: int) -> str:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            raise OSError(errno.EBADF, "bad file descriptor") from None
        guest = self.guest_path_of(target)
        if guest is None:
            raise OSError(errno.ENOTDIR, "not a directory")
        return guest

    def guest_path_of(self, host_path: str) -> str | None:
        """Reverse translation, for getcwd, /proc/PID/{cwd,exe,fd/N} and dirfds."""
        if host_path.endswith(" (deleted)"):
            host_path = host_path[:-len(" (deleted)")]
        guest = self.layers.guest_path_of(host_path)
        if guest is not None:
            return guest
        for root, guest_root in self._reverse_roots():
            if host_path == root:
                return guest_root
            if host_path.startswith(root) and host_path[len(root)] == "/":
                tail = host_path[len(root):]
                return (guest_root.rstrip("/") + tail) or "/"
        for name, console in self.devices.consoles.items():
            if host_path == console:
                return "/dev/" + name
        if host_path.startswith("/dev/") and host_path[5:] in DeviceTable.IDENTITY:
            return host_path
        return None

    def _reverse_roots(self):
        for mount in self.mounts.values():
            yield mount.host, mount.guest
        yield self.synth_root, "/"
        yield self.proc_mount, "/proc"
        yield self.devices.devpts, "/dev/pts"

    synth_root = "/nonexistent-synth-root"

    # -- resolution ------------------------------------------------------------------------

    def resolve(self, pid: int, dirfd: int, path: str, follow: bool = True) -> Resolution:
        """Resolve a guest path as the tracee `pid` would (dirfd: AT_FDCWD or a guest fd)."""
        if not path:
            raise OSError(errno.ENOENT, "empty path")
        if path[0] == "/":
            absolute = path
        else:
            start = self.guest_cwd(pid) if dirfd == -100 else self.guest_fd_path(pid, dirfd)
            absolute = start.rstrip("/") + "/" + path
        return self.resolve_absolute(pid, absolute, follow)

    def resolve_absolute(self, pid: int, absolute: str, follow: bool = True) -> Resolution:
        if self._cache_generation != self.layers.generation:
            self._prefix_cache.clear()
            self._cache_generation = self.layers.generation
        directory, _, leaf = absolute.rpartition("/")
        if leaf not in ("", ".", ".."):
            parts = self._prefix_cache.get(directory)
            if parts is not None:
                if not self.mounts and (parts[0] not in ("proc", "dev") if parts
                                        else leaf != "proc"):
                    # the hot path (find, ls -l, stat loops): one lookup in a known directory
                    guest_dir = "/" + "/".join(parts)
                    node = self.layers.lookup(guest_dir, leaf)
                    st = node.st
                    if st is None or not follow or not stat.S_ISLNK(st.st_mode):
                        return Resolution(guest_dir.rstrip("/") + "/" + leaf, node.host,
                                          "union", st, node.layer)
                return self._walk(pid, list(parts), [leaf], follow)
        components = absolute.split("/")
        components.reverse()
        if len(self._prefix_cache) > 20000:
            self._prefix_cache.clear()
        return self._walk(pid, [], components, follow, cache_key=directory)

    def base_leaf(self, absolute: str) -> tuple[str, str] | None:
        """(guest path, host path) of a name in a known base-only directory, no syscall.

        For lstat-like calls the host kernel can then look the name up itself: the
        directory is verified and cached, it has no upper copy, so the name can only be the
        base's (or missing, which the host kernel reports). None when that does not hold.
        """
        if self._cache_generation != self.layers.generation or self.mounts:
            return None
        directory, _, leaf = absolute.rpartition("/")
        if leaf in ("", ".", "..") or not directory:
            return None
        parts = self._prefix_cache.get(directory)
        if not parts or parts[0] in ("proc", "dev"):
            return None
        guest_dir = "/" + "/".join(parts)
        info = self.layers.dir_info(guest_dir)
        if info.in_upper or not info.base_visible:
            return None
        return f"{guest_dir}/{leaf}", f"{self.layers.base}{guest_dir}/{leaf}"

    def _walk(self, pid: int, parts: list[str], remaining: list[str], follow: bool,
              cache_key: str | None = None) -> Resolution:
        hops = 0
        node: Resolution | None = None
        while remaining:
            if cache_key is not None and len(remaining) == 1:
                # Only the caller's own last component is left: `parts` is its directory.
                if not parts or parts[0] not in ("proc", "dev"):
                    self._prefix_cache[cache_key] = tuple(parts)
                cache_key = None
            name = remaining.pop()
            if name == "" or name == ".":
                continue
            if name == "..":
                if parts:
                    parts.pop()
                node = None
                continue
            last = all(item in ("", ".") for item in remaining)
            node = self._step(pid, parts, name, last, follow)
            if node.magic_target is not None and (not last or follow):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise OSError(errno.ELOOP, "too many symbolic links")
                if not node.magic_target.startswith("/"):
                    if last:
                        node.magic_target = None   # pipe:[N], socket:[N]: the host opens it
                        parts.append(name)
                        continue
                    raise OSError(errno.ENOTDIR, "not a directory")
                target = node.magic_target
                parts.clear()
                node = None
                remaining.extend(reversed(target.split("/")))
                continue
            st = node.st
            if st is not None and stat.S_ISLNK(st.st_mode) and (not last or follow):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise OSError(errno.ELOOP, "too many symbolic links")
                target = os.readlink(node.host)
                if target.startswith("/"):
                    parts.clear()
                node = None
                remaining.extend(reversed(target.split("/")))
                continue
            if not last and node.kind in ("union", "hostfs"):
                if st is None:
                    raise OSError(errno.ENOENT, "no such file or directory")
                if not stat.S_ISDIR(st.st_mode):
                    raise OSError(errno.ENOTDIR, "not a directory")
            parts.append(name)
        if node is None:
            node = self._directory_node(pid, parts)
        node.guest = "/" + "/".join(parts)
        return node

    def _directory_node(self, pid: int, parts: list[str]) -> Resolution:
        """The node for a path that ended on `..` or is "/": an existing directory."""
        if not parts:
            return Resolution("/", self.layers.upper, "union", os.lstat(self.layers.upper),
                              "upper")
        return self._step(pid, parts[:-1], parts[-1], True, True)

    def _step(self, pid: int, parts: list[str], name: str, last: bool,
              follow: bool) -> Resolution:
        """Look up one component `name` in the canonical directory `parts`."""
        if parts:
            top = parts[0]
            if top == "proc":
                return self._proc_step(pid, parts, name, last, follow)
            if top == "dev":
                node = self._dev_step(parts, name)
                if node is not None:
                    return node
        elif name == "proc" and self.proc_mount:
            return Resolution("/proc", self.proc_mount, "proc")
        guest_dir = "/" + "/".join(parts)
        mount_point = (guest_dir.rstrip("/") + "/" + name)
        mount = self.mounts.get(mount_point)
        if mount is not None:
            return Resolution(mount_point, mount.host, "hostfs", os.lstat(mount.host))
        mount = self._mount_containing(guest_dir)
        if mount is not None:
            relative = guest_dir[len(mount.guest):]
            host = f"{mount.host}{relative}/{name}"
            try:
                return Resolution("", host, "hostfs", os.lstat(host))
            except FileNotFoundError:
                return Resolution("", host, "hostfs", None)
        node: Node = self.layers.lookup(guest_dir, name)
        return Resolution("", node.host, "union", node.st, node.layer)

    def _dev_step(self, parts: list[str], name: str) -> Resolution | None:
        if len(parts) == 1:
            link = DeviceTable.LINKS.get(name)
            if link is not None:
                # a real symlink with the same text stands in for lstat()
                return Resolution("", f"{self.devices.links_dir}/{name}", "dev", None,
                                  magic_target=link)
            host = self.devices.host_path(name)
            if host is None:
                return None
            return Resolution("", host, "dev")
        if parts[1] == "pts" and self.devices.devpts:
            return Resolution("", self.devices.devpts + "/" + "/".join(parts[2:] + [name]), "dev")
        return None

    def _proc_step(self, pid: int, parts: list[str], name: str, last: bool,
                   follow: bool) -> Resolution:
        depth = len(parts)          # parts[0] == "proc"
        if depth == 1:
            synthetic = self._synth_proc(name, pid)
            if synthetic is not None:
                return Resolution("", synthetic, "synth")
        process = parts[1] if depth >= 2 else None
        magic = None
        if depth == 2 and name in _PROC_MAGIC:
            magic = name
        elif depth == 4 and parts[2] == "task" and name in _PROC_MAGIC:
            magic = name
        elif parts[-1] == "fd" and name.isdigit() and depth in (3, 5):
            magic = "fd/" + name
        elif depth >= 2 and name in ("mounts", "mountinfo") and (
                depth == 2 or (depth == 4 and parts[2] == "task")):
            synthetic = self._synth_proc(name, pid)
            if synthetic is not None:
                return Resolution("", synthetic, "synth")
        host = self.proc_mount + "/" + "/".join(parts[1:] + [name])
        if magic is None:
            return Resolution("", host, "proc")
        host_pid = self._host_pid_for(pid, process, parts)
        if host_pid is None:
            raise OSError(errno.ENOENT, "no such process")
        if magic == "root":
            return Resolution("", host, "proc", magic_target="/")
        try:
            target = os.readlink(f"/proc/{host_pid}/{magic}")
        except OSError:
            raise OSError(errno.ENOENT, "no such file") from None
        if target.startswith("/"):
            guest = self.guest_path_of(target)
            target = guest if guest is not None else "/"
        return Resolution("", host, "proc", magic_target=target)

    def _host_pid_for(self, pid: int, process: str, parts: list[str]) -> int | None:
        if process == "self":
            host_pid = pid
        elif process == "thread-self":
            host_pid = pid
        elif process.isdigit():
            host_pid = self._host_pid_of_guest(int(process))
        else:
            return None
        if host_pid is not None and len(parts) >= 4 and parts[2] == "task" and \
                parts[3].isdigit():
            return self._host_pid_of_guest(int(parts[3]))
        return host_pid
