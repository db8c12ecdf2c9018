"""Machine states and the state file a worker leaves behind."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STOPPED = "stopped"        # no worker, never booted (or state file gone)
BOOTING = "booting"
RUNNING = "running"
PAUSED = "paused"
REBOOTING = "rebooting"
HALTING = "halting"
HALTED = "halted"
CRASHED = "crashed"        # kernel panic (exit 134) or any other abnormal exit
KILLED = "killed"

LIVE_STATES = (BOOTING, RUNNING, PAUSED, REBOOTING, HALTING)
FINAL_STATES = (STOPPED, HALTED, CRASHED, KILLED)


@dataclass
class MachineState:
    name: str
    state: str = STOPPED
    engine: str = "linux"
    worker_pid: int | None = None
    kernel_pid: int | None = None
    exit_code: int | None = None
    started: float | None = None        # when the kernel process started
    boots: int = 0                      # SOCKET notifications seen (1 + reboots)
    ready: bool = False                 # a login or shell prompt was seen on con0
    consoles: list[str] = field(default_factory=list)
    mconsole: str | None = None
    message: str = ""                   # e.g. the panic text
    updated: float = field(default_factory=time.time)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def uptime(self) -> float | None:
        return time.time() - self.started if self.started and self.live else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MachineState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def write_state(path: Path, state: MachineState) -> None:
    state.updated = time.time()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_dict()))
    os.replace(tmp, path)


def read_state(path: Path) -> MachineState | None:
    try:
        return MachineState.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
