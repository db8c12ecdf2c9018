"""Reading the tt engine's syscall monitor log (`logs/NAME/syscalls.jsonl`) incrementally.

Shared by `umlgui monitor` and the window's monitor panel; the format is in docs/tt-engine.md.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SyscallEvent:
    time: float
    pid: int
    comm: str
    name: str
    args: tuple
    ret: int | None
    err: str | None
    emulated: bool
    raw: str

    def args_text(self) -> str:
        parts = []
        for arg in self.args:
            parts.append(repr(arg) if isinstance(arg, (str, list)) else str(arg))
        return ", ".join(parts)

    def result_text(self) -> str:
        if self.err:
            return f"{self.ret} {self.err}"
        return "" if self.ret is None else str(self.ret)

    def line(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.time)) + f".{int(self.time % 1 * 1e6):06d}"
        flag = " (emulated)" if self.emulated else ""
        return f"{stamp} [{self.pid}] {self.comm}: {self.name}({self.args_text()}) = {self.result_text()}{flag}"

    def matches(self, text: str) -> bool:
        """A filter: words that must all appear in the name, pid, command or arguments."""
        haystack = f"{self.name} {self.pid} {self.comm} {self.args_text()} {self.err or ''}".lower()
        return all(word in haystack for word in text.lower().split())


def parse(line: str) -> SyscallEvent | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return SyscallEvent(float(data.get("t", 0)), int(data.get("pid", 0)), str(data.get("comm", "")),
                        str(data.get("name", "?")), tuple(data.get("args", ())), data.get("ret"),
                        data.get("err"), bool(data.get("emulated", False)), line.rstrip("\n"))


class SyscallLogReader:
    """Returns the events appended since the last call; starts over if the log is replaced."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self.partial = b""
        self.inode = None

    def read_new(self, limit: int = 1 << 20) -> list[SyscallEvent]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        if stat.st_ino != self.inode or stat.st_size < self.offset:
            self.inode, self.offset, self.partial = stat.st_ino, 0, b""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(limit)
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        events = (parse(line.decode(errors="replace")) for line in lines if line.strip())
        return [event for event in events if event is not None]
