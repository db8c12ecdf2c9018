"""Ownership, special mode bits and device numbers the guest set: the fake-root side table.

The guest runs as root but the host files keep the engine's owner, so `chown`, `mknod` and
setuid bits live here, keyed by guest path (a copy-up keeps the key). The table persists in
`ttcow/owners.tsv` as an append-only journal, compacted at boot, so a crash loses nothing
already answered and a `tar` extracting thousands of files appends one line each.

Journal lines (tab-separated):  `S path uid gid mode rdev`  set (mode/rdev -1: unchanged),
`D path`  forget path and everything below it, `R old new`  rename a subtree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(slots=True)
class Entry:
    uid: int = -1            # -1: the host owner decides (mapped to 0)
    gid: int = -1
    mode: int = -1           # full st_mode (type + permissions) to show, -1: host's
    rdev: int = -1


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _unescape(text: str) -> str:
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            out.append({"t": "\t", "n": "\n"}.get(following, following))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


class SideTable:
    """The persistent table; `get` is on the stat fast path, so it is a plain dict lookup."""

    def __init__(self, journal_path: str):
        self.path = journal_path
        self.entries: dict[str, Entry] = {}
        self._load()
        self._compact()
        self._journal = open(self.path, "a", encoding="utf-8", errors="surrogateescape")

    def get(self, guest_path: str) -> Entry | None:
        return self.entries.get(guest_path)

    def set(self, guest_path: str, *, uid: int = -1, gid: int = -1, mode: int = -1,
            rdev: int = -1) -> None:
        self._apply_set(guest_path, uid, gid, mode, rdev)
        self._write(f"S\t{_escape(guest_path)}\t{uid}\t{gid}\t{mode}\t{rdev}")

    def forget(self, guest_path: str) -> None:
        if self._apply_forget(guest_path):
            self._write(f"D\t{_escape(guest_path)}")

    def rename(self, old: str, new: str) -> None:
        if self._apply_forget(new) | self._apply_rename(old, new):
            self._write(f"R\t{_escape(old)}\t{_escape(new)}")

    def close(self) -> None:
        self._journal.close()

    # -- journal ---------------------------------------------------------------------------

    def _write(self, line: str) -> None:
        self._journal.write(line + "\n")
        self._journal.flush()

    def _apply_set(self, path: str, uid: int, gid: int, mode: int, rdev: int) -> None:
        entry = self.entries.setdefault(path, Entry())
        if uid != -1:
            entry.uid = uid
        if gid != -1:
            entry.gid = gid
        if mode != -1:
            entry.mode = mode
        if rdev != -1:
            entry.rdev = rdev

    def _apply_forget(self, path: str) -> bool:
        below = path.rstrip("/") + "/"
        doomed = [key for key in self.entries if key == path or key.startswith(below)]
        for key in doomed:
            del self.entries[key]
        return bool(doomed)

    def _apply_rename(self, old: str, new: str) -> bool:
        below = old.rstrip("/") + "/"
        moved = [key for key in self.entries if key == old or key.startswith(below)]
        for key in moved:
            self.entries[new + key[len(old):]] = self.entries.pop(key)
        return bool(moved)

    def _load(self) -> None:
        try:
            handle = open(self.path, encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                fields = line.rstrip("\n").split("\t")
                try:
                    if fields[0] == "S" and len(fields) == 6:
                        self._apply_set(_unescape(fields[1]), *map(int, fields[2:]))
                    elif fields[0] == "D" and len(fields) == 2:
                        self._apply_forget(_unescape(fields[1]))
                    elif fields[0] == "R" and len(fields) == 3:
                        self._apply_forget(_unescape(fields[2]))
                        self._apply_rename(_unescape(fields[1]), _unescape(fields[2]))
                except ValueError:
                    continue    # a line torn by a crash mid-write

    def _compact(self) -> None:
        temporary = self.path + ".new"
        with open(temporary, "w", encoding="utf-8", errors="surrogateescape") as handle:
            for path, entry in self.entries.items():
                handle.write(f"S\t{_escape(path)}\t{entry.uid}\t{entry.gid}\t{entry.mode}\t"
                             f"{entry.rdev}\n")
        os.replace(temporary, self.path)
