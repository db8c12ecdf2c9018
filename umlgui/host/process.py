"""Host processes of a kernel: UML spreads itself over several, not all in one group."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path


def parent_map() -> dict[int, int]:
    """pid -> ppid for every process we can see (from /proc, no dependencies: the worker stays small)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields start after the last ')'
        fields = text[text.rindex(")") + 2:].split()
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def without_address_randomisation(argv: list[str]) -> list[str]:
    """`argv` run with the host's address-space randomisation off for that one process
    (setarch -R, util-linux). UML adds the random gap between its binary and its heap to the
    guest's "physical memory" and sizes its page tables for it, so with randomisation a
    mem=64M guest gets 41-50 MB of usable RAM, a different amount each boot; without, 53 MB
    every time. Guest processes are still randomised by the guest kernel itself."""
    setarch = shutil.which("setarch")
    return [setarch, "--addr-no-randomize", *argv] if setarch else argv


def is_alive(pid: int | None) -> bool:
    """True for a running process; a zombie counts as dead (pid 1 may never reap orphans here)."""
    if not pid:
        return False
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] not in "ZX"


def descendants(pid: int) -> list[int]:
    parents = parent_map()
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def with_argument(word: str) -> list[int]:
    """Pids whose command line holds `word` exactly (helpers are forks: same argv as the kernel)."""
    needle = word.encode()
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes().split(b"\0"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def kill_tree(pid: int, marker: str | None = None) -> None:
    """SIGKILL a kernel, its process group, its descendants and, with `marker`, every
    process whose argv holds that word (the kernel's helpers, even once orphaned).

    UML's helpers share its process group, except the console window-size helper, which
    calls setsid() to own the pty; all of them keep the disk images open (and locked).
    """
    victims = descendants(pid) + (with_argument(marker) if marker else [])
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
