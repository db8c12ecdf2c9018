"""Progress and cancellation for slow work, without Qt.

Slow operations (building templates, formatting images, merging COW files) take a
`Progress` and call `progress.step(...)`; the CLI prints it, the GUI's job dialog shows it
and sets `cancelled` from its Cancel button (virt-manager's asyncjob, minus the toolkit).
"""

from __future__ import annotations

import sys
import threading
from typing import Callable


class Cancelled(Exception):
    """The user cancelled; the operation has cleaned up after itself."""


class Progress:
    def __init__(self, on_change: Callable[[str, float | None], None] | None = None):
        self._on_change = on_change
        self._cancel = threading.Event()
        self.stage = ""
        self.fraction: float | None = None

    def step(self, stage: str, fraction: float | None = None) -> None:
        """Report the current stage and how far it is (0..1, None if unknown); raise if cancelled."""
        self.check()
        self.stage, self.fraction = stage, fraction
        if self._on_change:
            self._on_change(stage, fraction)

    def bytes_callback(self, stage: str) -> Callable[[int, int], None]:
        """An adapter for APIs that report (done, total) bytes."""
        return lambda done, total: self.step(stage, done / total if total else None)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()


def console_progress(stream=sys.stderr) -> Progress:
    """A Progress that prints one line per stage change and a bar on terminals."""
    last = {"stage": None}
    tty = stream.isatty()

    def show(stage: str, fraction: float | None) -> None:
        if tty and fraction is not None:
            bar = "#" * int(fraction * 30)
            stream.write(f"\r{stage:<28} [{bar:<30}] {fraction * 100:5.1f}%")
            if fraction >= 1:
                stream.write("\n")
        elif stage != last["stage"]:
            stream.write(f"{stage}...\n")
        stream.flush()
        last["stage"] = stage

    return Progress(show)
