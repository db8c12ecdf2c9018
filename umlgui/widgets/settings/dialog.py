"""A machine's Settings window, in virt-manager's style (its "Details" view).

    dialog = MachineSettingsDialog("vm1", parent)
    dialog.show()

A page list on the left (Overview, Memory, Disks, Network, Consoles, Kernel and boot,
mconsole), the page on the right, Apply / Revert / Close below. Apply saves the current page
into the machine's definition (library.save); Revert reloads it from the saved definition.
Leaving a page or closing the window with unapplied changes asks first.

Adding, removing and merging disks and network cards act at once, as virt-manager's "Add
Hardware" and "Remove" do: on a running machine they are hot-plugged through mconsole
(`config`/`remove`) and saved only when the kernel accepted them. Everything else takes effect
at the next boot, and each page says so while the machine runs.
"""

from __future__ import annotations

import copy
from typing import Callable

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QMessageBox, QStackedWidget,
                               QVBoxLayout, QWidget)

from umlgui.errors import UmlguiError
from umlgui.gui.jobs import AsyncJob, run_job, show_error
from umlgui.model import library
from umlgui.model.machine import Machine, to_dict
from umlgui.widgets.settings import hotplug
from umlgui.widgets.settings.consoles import ConsolesPage
from umlgui.widgets.settings.disks import DisksPage
from umlgui.widgets.settings.kernel import KernelPage
from umlgui.widgets.settings.mconsole import MconsolePage
from umlgui.widgets.settings.memory import MemoryPage
from umlgui.widgets.settings.network import NetworkPage
from umlgui.widgets.settings.overview import OverviewPage
from umlgui.widgets.settings.page import SettingsPage
from umlgui.worker import client
from umlgui.worker.state import MachineState

STATE_POLL_MS = 1000
PAGE_CLASSES = (OverviewPage, MemoryPage, DisksPage, NetworkPage, ConsolesPage, KernelPage,
                MconsolePage)


class MachineSettingsDialog(QDialog):
    """Settings of machine `name`. Raises NotFoundError/ConfigError if it cannot be loaded."""

    machineChanged = Signal(str)      # the definition was saved (name)
    stateChanged = Signal(object)     # MachineState, when the polled state changes

    def __init__(self, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = name
        self.saved: Machine = library.load(name)
        self.state: MachineState = client.machine_state(name)
        self.jobs: set[AsyncJob] = set()
        self._delete_when_idle = False
        self.setObjectName("machineSettings")
        self.setWindowTitle(f"{name} — Settings")
        self.resize(980, 640)
        self.pages: list[SettingsPage] = [cls(self) for cls in PAGE_CLASSES]
        self._build()
        for page in self.pages:
            page.load(copy.deepcopy(self.saved))
            page.changed.connect(self._update_buttons)
        self.refresh_state(force=True)
        self.state_timer = QTimer(self)
        self.state_timer.timeout.connect(self.refresh_state)
        self.state_timer.start(STATE_POLL_MS)
        self.page_list.setCurrentRow(0)
        self._update_buttons()

    # --- layout --------------------------------------------------------------------------

    def _build(self) -> None:
        self.page_list = QListWidget()
        self.page_list.setObjectName("pageList")
        self.page_list.setIconSize(QSize(20, 20))
        self.page_list.setFixedWidth(190)
        self.stack = QStackedWidget()
        for page in self.pages:
            item = QListWidgetItem(self.style().standardIcon(page.icon), page.title)
            item.setSizeHint(QSize(0, 30))
            self.page_list.addItem(item)
            self.stack.addWidget(page)
        self.page_list.currentRowChanged.connect(self._page_selected)
        self.status = QLabel()
        self.status.setObjectName("statusLine")
        self.status.setWordWrap(True)
        buttons = QDialogButtonBox()
        self.revert_button = buttons.addButton("Revert", QDialogButtonBox.ButtonRole.ResetRole)
        self.apply_button = buttons.addButton("Apply", QDialogButtonBox.ButtonRole.ApplyRole)
        self.close_button = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.apply_button.setObjectName("applyButton")
        self.revert_button.setObjectName("revertButton")
        self.apply_button.clicked.connect(self.apply)
        self.revert_button.clicked.connect(self.revert)
        self.close_button.clicked.connect(self.reject)
        self.close_button.setAutoDefault(False)
        self.apply_button.setAutoDefault(False)
        body = QHBoxLayout()
        body.addWidget(self.page_list)
        body.addWidget(self.stack, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(buttons)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addLayout(bottom)

    # --- pages ---------------------------------------------------------------------------

    def current_page(self) -> SettingsPage:
        return self.pages[self.stack.currentIndex()]

    def page(self, title: str) -> SettingsPage:
        return next(page for page in self.pages if page.title == title)

    def show_page(self, title: str) -> None:
        self.page_list.setCurrentRow(self.pages.index(self.page(title)))

    def is_dirty(self, page: SettingsPage | None = None) -> bool:
        page = page or self.current_page()
        if not page.editable:
            return False
        trial = copy.deepcopy(self.saved)
        try:
            page.store(trial)
        except UmlguiError:
            return True            # bad input is a change the user has not applied
        return to_dict(trial) != to_dict(self.saved)

    def _page_selected(self, row: int) -> None:
        if row < 0 or row == self.stack.currentIndex():
            return
        if self.is_dirty():
            self._select_row_quietly(self.stack.currentIndex())
            self._ask_unapplied(lambda: self.page_list.setCurrentRow(row))
            return
        self.stack.setCurrentIndex(row)
        self.status.clear()
        self._update_buttons()

    def _select_row_quietly(self, row: int) -> None:
        self.page_list.blockSignals(True)
        self.page_list.setCurrentRow(row)
        self.page_list.blockSignals(False)

    def _update_buttons(self) -> None:
        dirty = self.is_dirty()
        self.apply_button.setEnabled(dirty)
        self.revert_button.setEnabled(dirty)
        self.apply_button.setVisible(self.current_page().editable)
        self.revert_button.setVisible(self.current_page().editable)

    # --- apply / revert ------------------------------------------------------------------

    def apply(self) -> bool:
        """Save the current page into the definition; False (with a message) on bad input."""
        page = self.current_page()
        try:
            fresh = library.load(self.name)     # someone else may have saved other parts
            page.store(fresh)
            fresh.validate(check_files=False)
            library.save(fresh)
        except UmlguiError as exc:
            show_error(self, f"{page.title}: cannot apply", exc)
            return False
        self._saved_now(fresh)
        note = " It takes effect at the next boot." if self.state.live and page.boot_note else ""
        self.status.setText(f"{page.title} saved.{note}")
        return True

    def revert(self) -> None:
        self.current_page().load(copy.deepcopy(self.saved))
        self.status.setText(f"{self.current_page().title}: changes reverted.")
        self._update_buttons()

    def _saved_now(self, machine: Machine) -> None:
        self.saved = machine
        self.machineChanged.emit(self.name)
        self.page("Overview").refresh_command_line(machine)
        self._update_buttons()

    # --- changes that act at once (add/remove devices) -----------------------------------

    def change_now(self, title: str, mutate: Callable[[Machine], None],
                   live_command: Callable[[Machine], str] | None = None,
                   on_done: Callable[[Machine], None] | None = None,
                   on_failed: Callable[[], None] | None = None) -> None:
        """Change the saved definition now; on a running machine send `live_command` first.

        `mutate(machine)` edits a copy of the definition (and may raise UmlguiError). The
        copy is saved only after the running kernel accepted the command, so the definition
        never claims a device the machine refused. `on_failed` runs after the error was
        shown (e.g. to remove a file made for the change).
        """
        def failed(exc: BaseException) -> None:
            show_error(self, title, exc)
            if on_failed:
                on_failed()

        try:
            machine = library.load(self.name)
            mutate(machine)
            machine.validate(check_files=False)
        except UmlguiError as exc:
            failed(exc)
            return
        if not (live_command and self.state.live):
            self._save_changed(title, machine, on_done)
            return
        command = live_command(machine)

        def work(progress) -> str:
            progress.step(f"sending `{command}`")
            return hotplug.check_reply(self.name, command, client.mconsole(self.name, command))

        self.run(title, work, lambda _text: self._save_changed(title, machine, on_done,
                                                                 f" (running machine: `{command}` OK)"),
                 on_error=failed)

    def _save_changed(self, title: str, machine: Machine, on_done, note: str = "") -> None:
        try:
            library.save(machine)
        except UmlguiError as exc:
            show_error(self, title, exc)
            return
        self._saved_now(machine)
        self.status.setText(f"{title}: done{note}.")
        if on_done:
            on_done(machine)

    def run(self, title: str, work, on_done=None, on_error=None, **options) -> AsyncJob:
        """run_job, remembered so tests and the close guard can see what is still running."""
        def error(exc) -> None:
            (on_error or (lambda e: show_error(self, title, e)))(exc)

        job = run_job(self, title, work, on_done=on_done, on_error=error, **options)
        self.jobs.add(job)
        job.finished.connect(lambda: self._job_finished(job))
        return job

    def _job_finished(self, job: AsyncJob) -> None:
        self.jobs.discard(job)
        if not self.jobs and self._delete_when_idle:
            self.deleteLater()

    def jobs_running(self) -> bool:
        return bool(self.jobs)

    # --- machine state -------------------------------------------------------------------

    def refresh_state(self, force: bool = False) -> None:
        state = client.machine_state(self.name)
        if not force and (state.state, state.kernel_pid, state.ready) == \
                (self.state.state, self.state.kernel_pid, self.state.ready):
            return
        self.state = state
        for page in self.pages:
            page.state_changed(state)
        self.stateChanged.emit(state)

    # --- leaving with unapplied changes --------------------------------------------------

    def _ask_unapplied(self, then: Callable[[], None]) -> None:
        page = self.current_page()
        box = QMessageBox(QMessageBox.Icon.Warning, "Unapplied changes",
                          f"There are unapplied changes on the {page.title} page.",
                          QMessageBox.StandardButton.Apply | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self)
        box.setInformativeText("Apply them before leaving the page?")
        box.setObjectName("unappliedBox")
        box.setWindowModality(Qt.WindowModality.WindowModal)

        def answered(button) -> None:
            role = box.standardButton(button)
            if role == QMessageBox.StandardButton.Apply and not self.apply():
                return
            if role == QMessageBox.StandardButton.Discard:
                page.load(copy.deepcopy(self.saved))
                self._update_buttons()
            if role != QMessageBox.StandardButton.Cancel:
                then()

        box.buttonClicked.connect(answered)
        box.open()

    def reject(self) -> None:
        """Close (Close button, Escape, the window's close box) — asking first if needed."""
        if self.is_dirty():
            self._ask_unapplied(super().reject)
            return
        super().reject()

    def done(self, result: int) -> None:
        self.state_timer.stop()
        if self.jobs and self.testAttribute(Qt.WidgetAttribute.WA_DeleteOnClose):
            # a job still running owns its progress dialog, a child of this one: delete later
            self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
            self._delete_when_idle = True
        super().done(result)

    def showEvent(self, event) -> None:
        self.state_timer.start(STATE_POLL_MS)
        super().showEvent(event)
