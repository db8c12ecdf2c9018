"""Overview: who the machine is, its state, the exact UML command line, a description."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QPlainTextEdit, QStyle

from umlgui.errors import UmlguiError
from umlgui.model.cmdline import to_shell
from umlgui.model.machine import Machine
from umlgui.widgets.settings.page import SettingsPage, monospace
from umlgui.worker.state import MachineState


def command_line(machine: Machine) -> str:
    """The machine's UML command line, with switches resolved to their control sockets."""
    from umlgui.net.client import control_path

    try:
        return to_shell(machine, control_path)
    except UmlguiError as exc:
        return f"(cannot build the command line: {exc.problem})"


class OverviewPage(SettingsPage):
    title = "Overview"
    icon = QStyle.StandardPixmap.SP_ComputerIcon
    boot_note = None        # the description is only ours; it never reaches the machine

    def __init__(self, dialog):
        super().__init__(dialog)
        form = QFormLayout()
        self.name_label = QLabel()
        self.engine_label = QLabel()
        self.state_label = QLabel()
        self.state_label.setObjectName("stateLabel")
        self.template_label = QLabel()
        for label in (self.name_label, self.engine_label, self.template_label):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.command = QPlainTextEdit()
        self.command.setObjectName("commandLine")
        self.command.setReadOnly(True)
        self.command.setFont(monospace())
        self.command.setMaximumHeight(110)
        self.command.setToolTip("What umlgui runs, apart from the worker's own console and "
                                "mconsole words (umid directory, notify socket, pty fds)")
        self.description = QPlainTextEdit()
        self.description.setObjectName("description")
        self.description.setPlaceholderText("Notes about this machine: what it is for, "
                                            "its addresses, passwords for the lab…")
        self.description.setMaximumHeight(180)
        self.description.textChanged.connect(self.emit_changed)
        form.addRow("Name:", self.name_label)
        form.addRow("Engine:", self.engine_label)
        form.addRow("State:", self.state_label)
        form.addRow("Template:", self.template_label)
        form.addRow("UML command line:", self.command)
        form.addRow("Description:", self.description)
        self.body.addLayout(form)
        self.body.addStretch(1)

    def load(self, machine: Machine) -> None:
        self.name_label.setText(machine.name)
        self.engine_label.setText({"linux": "linux — the UML kernel (linux.uml)",
                                   "tt": "tt — umlgui's ptrace engine"}.get(machine.engine,
                                                                            machine.engine))
        self.template_label.setText(machine.template or "none (own disks)")
        self.refresh_command_line(machine)
        self.description.setPlainText(machine.description)

    def refresh_command_line(self, machine: Machine) -> None:
        self.command.setPlainText(command_line(machine))

    def store(self, machine: Machine) -> None:
        machine.description = self.description.toPlainText().rstrip()

    def state_changed(self, state: MachineState) -> None:
        super().state_changed(state)
        text = state.state
        if state.exit_code is not None and not state.live:
            text += f" (exit status {state.exit_code})"
        if state.message:
            text += f" — {state.message}"
        self.state_label.setText(text)

