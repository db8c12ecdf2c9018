"""What an engine is: a way to turn a machine into a kernel process command line.

The worker owns everything else (ptys, logs, state, sockets), so both engines behave the
same from the outside; see docs/architecture.md, "The kernel process contract".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LaunchContext:
    """Host-side resources the worker prepared for one boot."""

    uml_dir: Path                       # parent of the instance dir; must exist
    umid: str
    notify_socket: Path
    console_fds: dict[str, int] = field(default_factory=dict)   # "con0" -> fd in the kernel process
    cwd: Path | None = None


class Engine:
    name = "base"

    def check(self, machine) -> None:
        """Raise UmlguiError naming what is missing to run `machine` (binary, image, ...)."""

    def argv(self, machine, ctx: LaunchContext) -> list[str]:
        raise NotImplementedError

    def env(self, machine, ctx: LaunchContext) -> dict[str, str]:
        return {}

    def explain_panic(self, machine, text: str) -> str:
        """What the user reads when the kernel panics with `text`."""
        return f"kernel panic: {text}"
