"""What every settings page has: a title, load/store against a Machine, a boot-time note.

A page edits a working copy of part of the machine. `load(machine)` fills the widgets,
`store(machine)` writes them back into a Machine (raising UmlguiError for bad input), and
`changed` fires on every edit so the dialog can tell whether the page has unapplied changes
(it compares a stored copy with the saved definition, so editing back to the old value is
not a change).
"""

from __future__ import annotations

from typing import Callable

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (QLabel, QMessageBox, QStyle, QVBoxLayout, QWidget)

from umlgui.model.machine import Machine
from umlgui.worker.state import MachineState


class SettingsPage(QWidget):
    title = ""
    icon = QStyle.StandardPixmap.SP_FileIcon
    # Shown while the machine runs; None when everything on the page applies at once.
    boot_note: str | None = "Changes on this page take effect at the next boot."
    # Pages without Apply/Revert (the mconsole page acts at once).
    editable = True

    changed = Signal()

    def __init__(self, dialog):
        super().__init__()
        self.dialog = dialog
        self.setObjectName(f"page{self.title.replace(' ', '')}")
        self.outer = QVBoxLayout(self)
        self.heading = QLabel(f"<h2>{self.title}</h2>")
        self.outer.addWidget(self.heading)
        self.note = QLabel()
        self.note.setObjectName("bootNote")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("QLabel { background: palette(alternate-base); padding: 6px;"
                                " border: 1px solid palette(mid); border-radius: 3px; }")
        self.note.hide()
        self.outer.addWidget(self.note)
        self.body = QVBoxLayout()
        self.outer.addLayout(self.body, 1)

    @property
    def name(self) -> str:
        return self.dialog.name

    def load(self, machine: Machine) -> None:
        raise NotImplementedError

    def store(self, machine: Machine) -> None:
        """Write the page's values into `machine`; raise UmlguiError for bad input."""

    def state_changed(self, state: MachineState) -> None:
        """The machine started, stopped or paused; pages enable what fits."""
        if self.boot_note and state.live:
            self.note.setText(f"<b>{self.dialog.name} is {state.state}.</b> {self.boot_note}")
            self.note.show()
        else:
            self.note.hide()

    def emit_changed(self, *_args) -> None:
        self.changed.emit()


def alive(widget: QWidget) -> bool:
    """False once Qt deleted the widget (a job may finish after its dialog went away)."""
    return shiboken6.isValid(widget)


def monospace() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


def confirm(parent: QWidget, title: str, text: str, on_yes: Callable[[], None],
            detail: str | None = None, yes_text: str = "Yes") -> QMessageBox:
    """Ask without blocking (the box is window-modal); `on_yes` runs if the user agrees."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName("confirmBox")
    yes = box.addButton(yes_text, QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    if detail:
        box.setInformativeText(detail)
    box.setWindowModality(Qt.WindowModality.WindowModal)

    def answered(button) -> None:
        if button is yes:
            on_yes()

    box.buttonClicked.connect(answered)
    box.open()
    return box
