"""Files and directories the engine makes up: merged listings and parts of /proc.

Merged directories: `getdents64` reads an fd, so a directory that combines both layers (or
hides whiteouts) is opened as a stand-in tree under the instance directory, holding one empty
entry of the right type per visible name. Later lookups through such an fd go through the
resolver again, which maps the stand-in back to the guest path. The stand-in is rebuilt when
the union changed since it was made.

/proc files whose host content would describe the host (meminfo, cmdline, version, mounts,
uptime, hostname...) are generated into files under the instance directory on every open.
"""

from __future__ import annotations

import os
import shutil
import stat
import time


class MergedDirs:
    """Stand-in directories mirroring guest paths below `root`."""

    def __init__(self, root: str):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self._built: dict[str, int] = {}

    def host_dir(self, guest_dir: str, entries: dict[str, int], generation: int) -> str:
        path = self.root + (guest_dir if guest_dir != "/" else "")
        if self._built.get(guest_dir) == generation and os.path.isdir(path):
            return path or self.root
        os.makedirs(path, exist_ok=True)
        existing = {}
        with os.scandir(path) as scan:
            for entry in scan:
                existing[entry.name] = entry.stat(follow_symlinks=False).st_mode
        for name, mode in existing.items():
            wanted = entries.get(name)
            if wanted is None or stat.S_IFMT(wanted) != stat.S_IFMT(mode):
                _remove(f"{path}/{name}", mode)
        for name, mode in entries.items():
            if name in existing and stat.S_IFMT(existing[name]) == stat.S_IFMT(mode):
                continue
            _make(f"{path}/{name}", mode)
        self._built[guest_dir] = generation
        return path or self.root


def _remove(path: str, mode: int) -> None:
    if stat.S_ISDIR(mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)


def _make(path: str, mode: int) -> None:
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFDIR:
        os.mkdir(path)
    elif kind == stat.S_IFLNK:
        os.symlink(".", path)
    elif kind == stat.S_IFIFO:
        os.mkfifo(path)
    elif kind in (stat.S_IFCHR, stat.S_IFBLK) and os.geteuid() == 0:
        os.mknod(path, kind | 0o600, 0)
    else:
        with open(path, "wb"):
            pass


class ProcFiles:
    """Generated /proc files; `kernel` supplies the facts (see Guest)."""

    NAMES = ("meminfo", "cmdline", "version", "uptime", "swaps", "mounts", "mountinfo",
             "filesystems")

    def __init__(self, root: str, guest):
        self.root = root
        self.guest = guest
        os.makedirs(root, exist_ok=True)

    def host_path(self, name: str, pid: int) -> str | None:
        if name not in self.NAMES:
            return None
        content = getattr(self, "_" + name)()
        path = f"{self.root}/{name}"
        temporary = f"{path}.{pid}"
        with open(temporary, "w") as handle:
            handle.write(content)
        os.replace(temporary, path)
        return path

    def _meminfo(self) -> str:
        total_kb = self.guest.memory_bytes // 1024
        used_kb = min(total_kb, self.guest.memory_used_bytes() // 1024)
        free_kb = total_kb - used_kb
        rows = [("MemTotal", total_kb), ("MemFree", free_kb), ("MemAvailable", free_kb),
                ("Buffers", 0), ("Cached", 0), ("SwapCached", 0), ("Active", used_kb),
                ("Inactive", 0), ("SwapTotal", 0), ("SwapFree", 0), ("Dirty", 0),
                ("AnonPages", used_kb), ("Shmem", 0), ("Slab", 0)]
        return "".join(f"{name + ':':<16}{value:>8} kB\n" for name, value in rows)

    def _cmdline(self) -> str:
        return " ".join(self.guest.cmdline_words) + "\n"

    def _version(self) -> str:
        return (f"Linux version {self.guest.release} (umlgui tt engine) "
                f"{self.guest.kernel_version}\n")

    def _uptime(self) -> str:
        up = time.monotonic() - self.guest.boot_monotonic
        return f"{up:.2f} {up:.2f}\n"

    def _swaps(self) -> str:
        return "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"

    def _mounts(self) -> str:
        lines = ["/dev/root / tt rw 0 0", "proc /proc proc rw,nosuid,nodev,noexec 0 0",
                 "sysfs /sys sysfs rw,nosuid,nodev,noexec 0 0", "devtmpfs /dev devtmpfs rw 0 0",
                 "devpts /dev/pts devpts rw,mode=620,ptmxmode=666 0 0"]
        for mount in self.guest.resolver.mounts.values():
            lines.append(f"{mount.source} {mount.guest} {mount.fstype} {mount.options} 0 0")
        return "\n".join(lines) + "\n"

    def _mountinfo(self) -> str:
        rows = []
        for index, line in enumerate(self._mounts().splitlines(), start=20):
            source, target, fstype, options, _, _ = line.split()
            parent = 1 if index == 20 else 20
            rows.append(f"{index} {parent} 0:{index} / {target} {options} - {fstype} {source} "
                        f"{options}")
        return "\n".join(rows) + "\n"

    def _filesystems(self) -> str:
        return "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tdevtmpfs\nnodev\tdevpts\n" \
               "nodev\thostfs\n\ttt\n"
