"""The guest root: a read-only base tree under a per-machine copy-on-write layer.

The base (a template's root/) is shared by many machines and never written. Every change
lands in the upper directory (`ttcow/root/`), in the style of aufs:

* copy-up: a base file is copied to upper before it is opened for writing, chmod'ed,
  truncated, renamed, linked, ...; parent directories are created in upper first;
* whiteouts: removing a name that exists in the base leaves an empty `.wh.NAME` in upper;
* opaque directories: a directory removed and created again gets `.wh..wh..opq`, which
  hides everything the base had below it.

Names starting with `.wh.` therefore never reach the guest. "Reset to pristine" is removing
`ttcow/`. All mutations run in the tracer's single thread, so a guest cannot race them.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


@dataclass(slots=True)
class DirInfo:
    """Where a guest directory exists: in upper, in the (visible) base, or both."""

    in_upper: bool
    base_visible: bool
    opaque: bool


@dataclass(slots=True)
class Node:
    """One resolved guest name: its host path, layer and lstat result (None if missing)."""

    host: str
    layer: str                      # "upper", "base" or "" (missing)
    st: os.stat_result | None


class Layers:
    """Lookup and copy-up between the base tree and the upper layer."""

    def __init__(self, base: str, upper: str):
        self.base = os.path.realpath(base)
        self.upper = os.path.realpath(upper)
        os.makedirs(self.upper, exist_ok=True)
        self._dirs: dict[str, DirInfo] = {}
        self.generation = 0

    # -- caching ---------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget cached directory facts after any change of the namespace."""
        self._dirs.clear()
        self.generation += 1

    def dir_info(self, guest_dir: str) -> DirInfo:
        """Facts about a guest directory that is known to exist (guest_dir is canonical)."""
        info = self._dirs.get(guest_dir)
        if info is not None:
            return info
        if guest_dir == "/":
            info = DirInfo(True, True, os.path.lexists(self.upper + "/" + OPAQUE_MARKER))
            info.base_visible = not info.opaque
        else:
            parent, name = guest_dir.rsplit("/", 1)
            parent_info = self.dir_info(parent or "/")
            upper_path = self.upper + guest_dir
            in_upper = parent_info.in_upper and os.path.isdir(upper_path) and \
                not os.path.islink(upper_path)
            opaque = in_upper and os.path.lexists(upper_path + "/" + OPAQUE_MARKER)
            base_visible = (parent_info.base_visible and not opaque
                            and not (parent_info.in_upper and os.path.lexists(
                                f"{self.upper}{parent}/{WHITEOUT_PREFIX}{name}"))
                            and _is_real_dir(self.base + guest_dir))
            info = DirInfo(in_upper, base_visible, opaque)
        self._dirs[guest_dir] = info
        return info

    # -- lookup ----------------------------------------------------------------------------

    def lookup(self, guest_dir: str, name: str) -> Node:
        """The node `name` in the existing canonical guest directory `guest_dir`."""
        info = self.dir_info(guest_dir)
        prefix = guest_dir if guest_dir != "/" else ""
        if info.in_upper:
            upper_path = f"{self.upper}{prefix}/{name}"
            try:
                return Node(upper_path, "upper", os.lstat(upper_path))
            except FileNotFoundError:
                pass
            if info.base_visible and os.path.lexists(
                    f"{self.upper}{prefix}/{WHITEOUT_PREFIX}{name}"):
                return Node(upper_path, "", None)
        base_path = f"{self.base}{prefix}/{name}"
        if info.base_visible:
            try:
                return Node(base_path, "base", os.lstat(base_path))
            except FileNotFoundError:
                pass
        return Node(f"{self.upper}{prefix}/{name}", "", None)

    def is_merged(self, guest_dir: str) -> bool:
        """True when a directory listing must combine layers or hide whiteouts."""
        info = self.dir_info(guest_dir)
        return info.in_upper and (info.base_visible or info.opaque)

    def listing(self, guest_dir: str) -> dict[str, int]:
        """Merged directory entries: name -> st_mode (type bits), whiteouts applied."""
        info = self.dir_info(guest_dir)
        entries: dict[str, int] = {}
        hidden: set[str] = set()
        if info.in_upper:
            with os.scandir(self.upper + guest_dir) as scan:
                for entry in scan:
                    if entry.name.startswith(WHITEOUT_PREFIX):
                        hidden.add(entry.name[len(WHITEOUT_PREFIX):])
                        continue
                    entries[entry.name] = entry.stat(follow_symlinks=False).st_mode
        if info.base_visible:
            with os.scandir(self.base + guest_dir) as scan:
                for entry in scan:
                    if entry.name not in entries and entry.name not in hidden:
                        entries[entry.name] = entry.stat(follow_symlinks=False).st_mode
        return entries

    def exists_in_base(self, guest_path: str) -> bool:
        parent, name = guest_path.rsplit("/", 1)
        if not self.dir_info(parent or "/").base_visible:
            return False
        return os.path.lexists(self.base + guest_path)

    # -- copy-up and mutations -------------------------------------------------------------

    def ensure_upper_dir(self, guest_dir: str) -> str:
        """Create `guest_dir` (and its parents) in upper, copying modes; returns its path."""
        upper_path = self.upper + (guest_dir if guest_dir != "/" else "")
        if guest_dir == "/" or self.dir_info(guest_dir).in_upper:
            return upper_path or self.upper
        parent = guest_dir.rsplit("/", 1)[0] or "/"
        self.ensure_upper_dir(parent)
        mode = 0o755
        try:
            mode = stat.S_IMODE(os.lstat(self.base + guest_dir).st_mode)
        except FileNotFoundError:
            pass
        _unlink_quietly(upper_path)     # a stale file (never a dir) may sit there
        os.mkdir(upper_path, mode)
        os.chmod(upper_path, mode)
        self.invalidate()
        return upper_path

    def copy_up(self, guest_path: str) -> str:
        """Make `guest_path` (which exists) live in upper; returns its upper path."""
        parent = guest_path.rsplit("/", 1)[0] or "/"
        node = self.lookup(parent, guest_path.rsplit("/", 1)[1])
        if node.layer == "upper":
            return node.host
        if node.layer == "":
            raise FileNotFoundError(errno.ENOENT, "no such file", guest_path)
        self.ensure_upper_dir(parent)
        target = self.upper + guest_path
        mode = node.st.st_mode
        if stat.S_ISDIR(mode):
            return self.ensure_upper_dir(guest_path)
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(node.host), target)
        elif stat.S_ISREG(mode):
            shutil.copyfile(node.host, target, follow_symlinks=False)
            os.chmod(target, stat.S_IMODE(mode))
            os.utime(target, ns=(node.st.st_atime_ns, node.st.st_mtime_ns))
        elif stat.S_ISFIFO(mode):
            os.mkfifo(target, stat.S_IMODE(mode))
        else:
            # sockets and device nodes are recreated as empty files; the side table keeps
            # what the guest sees
            with open(target, "wb"):
                pass
        self.invalidate()
        return target

    def prepare_create(self, guest_path: str) -> str:
        """Upper path for a new name: parent in upper, any whiteout for the name removed."""
        parent, name = guest_path.rsplit("/", 1)
        if name.startswith(WHITEOUT_PREFIX):
            raise PermissionError(errno.EPERM, "reserved name", guest_path)
        upper_parent = self.ensure_upper_dir(parent or "/")
        whiteout = f"{upper_parent}/{WHITEOUT_PREFIX}{name}"
        if os.path.lexists(whiteout):
            os.unlink(whiteout)
            self.invalidate()
        return f"{upper_parent}/{name}"

    def remove(self, guest_path: str, directory: bool) -> None:
        """unlink/rmdir in the union: drop the upper copy, whiteout the base name."""
        parent, name = guest_path.rsplit("/", 1)
        parent = parent or "/"
        node = self.lookup(parent, name)
        if node.layer == "":
            raise FileNotFoundError(errno.ENOENT, "no such file", guest_path)
        is_dir = stat.S_ISDIR(node.st.st_mode)
        if directory and not is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", guest_path)
        if not directory and is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", guest_path)
        if is_dir and self.listing(guest_path):
            raise OSError(errno.ENOTEMPTY, "directory not empty", guest_path)
        in_base = self.exists_in_base(guest_path)
        if node.layer == "upper":
            if is_dir:
                shutil.rmtree(node.host)
            else:
                os.unlink(node.host)
        if in_base:
            upper_parent = self.ensure_upper_dir(parent)
            with open(f"{upper_parent}/{WHITEOUT_PREFIX}{name}", "wb"):
                pass
        self.invalidate()

    def make_opaque_if_needed(self, guest_dir: str) -> None:
        """A directory created where the base had one must not show the base's entries."""
        if self.exists_in_base(guest_dir) or _is_real_dir(self.base + guest_dir):
            with open(self.upper + guest_dir + "/" + OPAQUE_MARKER, "wb"):
                pass
            self.invalidate()

    def guest_path_of(self, host_path: str) -> str | None:
        """Reverse mapping for paths inside either layer."""
        for root in (self.upper, self.base):
            if host_path == root:
                return "/"
            if host_path.startswith(root) and host_path[len(root)] == "/":
                return host_path[len(root):]
        return None


def _is_real_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _unlink_quietly(path: str) -> None:
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
    except FileNotFoundError:
        pass
