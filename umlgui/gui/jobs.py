"""One way to run slow work off the GUI thread, with progress and cancel (virt-manager's asyncjob).

    run_job(parent, "Merging disk", lambda progress: cow.merge(...),
            on_done=lambda result: ..., on_error=show_error)

The work function gets a `umlgui.jobs.Progress`; it calls `progress.step(stage, fraction)`
and stops with `Cancelled` when the user presses Cancel. A progress dialog appears only if
the work takes longer than `show_after_ms`, so quick jobs never flash a window.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QObject, QThread, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QProgressDialog, QWidget

from umlgui.errors import UmlguiError
from umlgui.jobs import Cancelled, Progress

SHOW_AFTER_MS = 400
_running: set["AsyncJob"] = set()     # keep jobs alive until they finish


class _Runner(QThread):
    progressed = Signal(str, float)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()

    def __init__(self, work: Callable[[Progress], Any]):
        super().__init__()
        self.work = work
        self.progress = Progress(lambda stage, fraction: self.progressed.emit(
            stage, -1.0 if fraction is None else float(fraction)))

    def run(self) -> None:
        try:
            result = self.work(self.progress)
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:   # every failure reaches the user as a message
            if not isinstance(exc, UmlguiError):
                traceback.print_exc()
            self.failed.emit(exc)
        else:
            self.succeeded.emit(result)


class AsyncJob(QObject):
    """A running job; `finished` fires once, whatever the outcome."""

    finished = Signal()

    def __init__(self, parent: QWidget | None, title: str, work, on_done=None, on_error=None,
                 on_cancel=None, show_after_ms: int = SHOW_AFTER_MS, cancellable: bool = True):
        super().__init__(parent)
        self.title = title
        self.on_done, self.on_error, self.on_cancel = on_done, on_error, on_cancel
        self.runner = _Runner(work)
        self.dialog = QProgressDialog(title, "Cancel" if cancellable else None, 0, 1000, parent)
        self.dialog.setWindowTitle(title)
        self.dialog.setMinimumDuration(show_after_ms)
        self.dialog.setAutoClose(False)
        self.dialog.setAutoReset(False)
        self.dialog.setValue(0)
        self.dialog.canceled.connect(self.cancel)
        self.runner.progressed.connect(self._show_progress)
        self.runner.succeeded.connect(self._succeeded)
        self.runner.failed.connect(self._failed)
        self.runner.cancelled.connect(self._cancelled)
        self.runner.finished.connect(self._cleanup)

    def start(self) -> "AsyncJob":
        _running.add(self)
        self.runner.start()
        return self

    @property
    def progress(self) -> Progress:
        return self.runner.progress

    def cancel(self) -> None:
        self.runner.progress.cancel()
        self.dialog.setLabelText(f"{self.title}: cancelling…")

    def wait(self, ms: int = 60000) -> bool:
        return self.runner.wait(ms)

    def _show_progress(self, stage: str, fraction: float) -> None:
        self.dialog.setLabelText(f"{self.title}: {stage}")
        if fraction < 0:
            self.dialog.setRange(0, 0)          # busy indicator
        else:
            self.dialog.setRange(0, 1000)
            self.dialog.setValue(int(fraction * 1000))

    def _succeeded(self, result) -> None:
        self.dialog.hide()
        if self.on_done:
            self.on_done(result)

    def _failed(self, exc: Exception) -> None:
        self.dialog.hide()
        if self.on_error:
            self.on_error(exc)
        else:
            show_error(self.parent(), self.title, exc)

    def _cancelled(self) -> None:
        self.dialog.hide()
        if self.on_cancel:
            self.on_cancel()

    def _cleanup(self) -> None:
        QTimer.singleShot(0, self._release)

    def _release(self) -> None:
        _running.discard(self)
        if shiboken6.isValid(self.dialog):     # the parent (and so the dialog) may be gone
            self.dialog.close()
            self.dialog.deleteLater()
        if shiboken6.isValid(self):            # ... and this job with it
            self.finished.emit()


def run_job(parent: QWidget | None, title: str, work: Callable[[Progress], Any], on_done=None,
            on_error=None, on_cancel=None, show_after_ms: int = SHOW_AFTER_MS,
            cancellable: bool = True) -> AsyncJob:
    """Start `work(progress)` in a thread; see the module docstring."""
    return AsyncJob(parent, title, work, on_done, on_error, on_cancel, show_after_ms, cancellable).start()


def finish_jobs(timeout_s: float = 30.0) -> None:
    """Before the application ends: let running jobs finish, cancel those that take longer.

    A QThread destroyed while it runs aborts the whole process, which could cut a disk merge
    or a lab's halt in half; quitting waits instead.
    """
    deadline = time.monotonic() + timeout_s
    for job in list(_running):
        if not job.runner.wait(max(0, int((deadline - time.monotonic()) * 1000))):
            job.runner.progress.cancel()
            job.runner.wait()


def error_text(exc: BaseException) -> tuple[str, str | None]:
    """(problem, fix) for any exception: ours carry both, others get their repr."""
    if isinstance(exc, UmlguiError):
        return exc.problem, exc.fix
    return f"{type(exc).__name__}: {exc}", None


def show_error(parent: QWidget | None, title: str, exc: BaseException) -> None:
    """A message box naming the problem and, in its informative text, the fix."""
    problem, fix = error_text(exc)
    box = QMessageBox(QMessageBox.Icon.Warning, title, problem, QMessageBox.StandardButton.Ok, parent)
    if fix:
        box.setInformativeText(f"Fix: {fix}")
    box.setObjectName("errorBox")
    box.open()
