"""mconsole: the running machine's management console, one button per command and a prompt.

Every command goes through the worker (client.mconsole) in a job; the log shows each command
and the kernel's raw reply (OK/ERR and its text). While the machine is paused (`stop`) only
STOP_SAFE_COMMANDS are offered: UML may wedge on anything else until `go` (§2.5).
"""

from __future__ import annotations

import errno

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QTextCursor
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QLabel, QLineEdit, QMenu,
                               QPlainTextEdit, QPushButton, QStyle, QToolButton, QWidget)

from umlgui.gui.jobs import error_text
from umlgui.host.mconsole import DANGEROUS_SYSRQ, STOP_SAFE_COMMANDS, SYSRQ_KEYS
from umlgui.widgets.settings.page import SettingsPage, alive, confirm, monospace
from umlgui.worker import client
from umlgui.worker.state import PAUSED, MachineState

# Commands that end or restart the machine at once: confirm before sending.
CONFIRM = {
    "halt": "The kernel stops at once, without syncing or unmounting the guest's disks. "
            "For a clean shutdown use Shut Down in the main window.",
    "reboot": "The kernel restarts at once, without syncing or unmounting the guest's disks.",
    "cad": "Sends Ctrl-Alt-Del: the guest's init decides (busybox reboots).",
}
HISTORY_LIMIT = 200


class HistoryLineEdit(QLineEdit):
    """A command line that recalls earlier commands with Up and Down, as a shell does."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.history: list[str] = []
        self.position = 0
        self.draft = ""

    def remember(self, command: str) -> None:
        if command and (not self.history or self.history[-1] != command):
            self.history = (self.history + [command])[-HISTORY_LIMIT:]
        self.position = len(self.history)
        self.draft = ""

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Up and self.history:
            if self.position == len(self.history):
                self.draft = self.text()
            self.position = max(0, self.position - 1)
            self.setText(self.history[self.position])
        elif event.key() == Qt.Key.Key_Down and self.position < len(self.history):
            self.position += 1
            self.setText(self.history[self.position] if self.position < len(self.history)
                         else self.draft)
        else:
            super().keyPressEvent(event)


def reply_lines(reply: dict) -> str:
    """The raw reply as uml_mconsole prints it: OK or ERR, then the text."""
    err = int(reply.get("err", 0))
    text = str(reply.get("text", "")).rstrip("\n")
    if err == 0:
        return f"OK {text}" if text else "OK"
    name = errno.errorcode.get(-err)
    return f"ERR ({name or err}) {text}".rstrip()


class MconsolePage(SettingsPage):
    title = "mconsole"
    icon = QStyle.StandardPixmap.SP_MessageBoxInformation
    boot_note = None
    editable = False

    def __init__(self, dialog):
        super().__init__(dialog)
        self.busy = False
        self.state_note = QLabel()
        self.state_note.setObjectName("mconsoleNote")
        self.state_note.setWordWrap(True)
        self.buttons: dict[str, QPushButton] = {}
        actions = QHBoxLayout()
        for command, label, tip in (
                ("version", "Version", "Kernel version; a quick 'are you alive?'"),
                ("stop", "Pause (stop)", "Freeze the guest until Go"),
                ("go", "Resume (go)", "Thaw a paused guest"),
                ("cad", "Ctrl-Alt-Del", "Let the guest's init decide (usually reboot)"),
                ("reboot", "Reboot", "Restart the kernel at once"),
                ("halt", "Halt", "Stop the kernel at once")):
            button = QPushButton(label)
            button.setObjectName(f"mc_{command}")
            button.setToolTip(tip)
            button.clicked.connect(lambda _c=False, command=command: self.send(command))
            actions.addWidget(button)
            self.buttons[command] = button
        self.sysrq_button = QToolButton()
        self.sysrq_button.setObjectName("mc_sysrq")
        self.sysrq_button.setText("SysRq")
        self.sysrq_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.sysrq_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.sysrq_menu = self._sysrq_menu()
        self.sysrq_button.setMenu(self.sysrq_menu)
        actions.addWidget(self.sysrq_button)
        actions.addStretch(1)
        self.log_text = QLineEdit()
        self.log_text.setObjectName("mc_log_text")
        self.log_text.setPlaceholderText("a message for the guest's kernel log")
        self.proc_path = QLineEdit()
        self.proc_path.setObjectName("mc_proc_path")
        self.proc_path.setPlaceholderText("meminfo, uptime, partitions…")
        self.device = QLineEdit()
        self.device.setObjectName("mc_device")
        self.device.setPlaceholderText("ubd1, con1, eth0… or ubd1=/path/disk.img")
        self.prompt = HistoryLineEdit()
        self.prompt.setObjectName("mconsoleCommand")
        self.prompt.setPlaceholderText("any mconsole command, e.g. proc uptime — Up/Down for history")
        self.prompt.setFont(monospace())
        self.prompt.returnPressed.connect(self._prompt_entered)
        self.output = QPlainTextEdit()
        self.output.setObjectName("mconsoleLog")
        self.output.setReadOnly(True)
        self.output.setFont(monospace())
        self.output.setMaximumBlockCount(5000)
        self.output.setPlaceholderText("Commands and the machine's raw replies appear here.")
        self.controls = QWidget()
        controls = QGridLayout(self.controls)
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addLayout(actions, 0, 0, 1, 4)
        self._row(controls, 1, "Log message:", self.log_text, [("Log", self._log_message)])
        self._row(controls, 2, "Read /proc/", self.proc_path, [("Read", self._read_proc)])
        self._row(controls, 3, "Device:", self.device,
                  [("Query config", self._config_device), ("Remove", self._remove_device)])
        self.body.addWidget(self.state_note)
        self.body.addWidget(self.controls)
        self.body.addWidget(self.output, 1)
        prompt_row = QHBoxLayout()
        prompt_row.addWidget(QLabel("(mconsole)"))
        prompt_row.addWidget(self.prompt, 1)
        self.body.addLayout(prompt_row)

    def _row(self, grid: QGridLayout, row: int, label: str, edit: QLineEdit, actions) -> None:
        grid.addWidget(QLabel(label), row, 0)
        grid.addWidget(edit, row, 1)
        for column, (text, slot) in enumerate(actions, start=2):
            button = QPushButton(text)
            button.setObjectName(f"mc_{text.split()[0].lower()}_button")
            button.clicked.connect(slot)
            grid.addWidget(button, row, column)
        edit.returnPressed.connect(actions[0][1])

    def _sysrq_menu(self) -> QMenu:
        menu = QMenu(self)
        for key, meaning in SYSRQ_KEYS.items():
            danger = "  ⚠" if key in DANGEROUS_SYSRQ else ""
            action = QAction(f"{key} — {meaning}{danger}", menu)
            action.setData(key)
            if key in DANGEROUS_SYSRQ:
                action.setToolTip(DANGEROUS_SYSRQ[key])
            action.triggered.connect(lambda _c=False, key=key: self.send(f"sysrq {key}"))
            menu.addAction(action)
        menu.setToolTipsVisible(True)
        return menu

    def load(self, machine) -> None:
        """Nothing to edit: the page acts on the running machine."""

    # --- sending -------------------------------------------------------------------------

    def _log_message(self) -> None:
        if self.log_text.text().strip():
            self.send(f"log {self.log_text.text()}")

    def _read_proc(self) -> None:
        if self.proc_path.text().strip():
            self.send(f"proc {self.proc_path.text().strip().removeprefix('/proc/')}")

    def _config_device(self) -> None:
        if self.device.text().strip():
            self.send(f"config {self.device.text().strip()}")

    def _remove_device(self) -> None:
        if self.device.text().strip():
            self.send(f"remove {self.device.text().strip()}")

    def _prompt_entered(self) -> None:
        command = self.prompt.text().strip()
        if command:
            self.prompt.remember(command)
            self.prompt.clear()
            self.send(command)

    def send(self, command: str) -> None:
        """Send `command` (asking first when it ends the machine); the reply goes to the log."""
        word, _, arg = command.partition(" ")
        if word in CONFIRM:
            confirm(self, "mconsole", f"Send '{command}' to {self.name}?",
                    lambda: self.send_now(command), CONFIRM[word], yes_text=word.capitalize())
        elif word == "sysrq" and arg.strip() in DANGEROUS_SYSRQ:
            confirm(self, "Dangerous SysRq", f"Send SysRq '{arg.strip()}' to {self.name}?",
                    lambda: self.send_now(command), DANGEROUS_SYSRQ[arg.strip()],
                    yes_text="Send")
        else:
            self.send_now(command)

    def send_now(self, command: str) -> None:
        problem = self._refusal(command)
        if problem:
            self._append(f"> {command}\n{problem}")
            return
        self._append(f"> {command}")
        self._set_busy(True)
        self.dialog.run(f"mconsole {command.split(' ', 1)[0]}",
                        lambda progress: client.mconsole(self.name, command),
                        lambda reply: self._replied(command, reply),
                        lambda exc: self._failed(exc), show_after_ms=3000, cancellable=False)

    def _refusal(self, command: str) -> str | None:
        state = self.dialog.state
        if not state.live:
            return f"not sent: {self.name} is not running ({state.state})"
        if state.state == PAUSED and not command.startswith(STOP_SAFE_COMMANDS):
            return (f"not sent: {self.name} is paused, and only {', '.join(STOP_SAFE_COMMANDS)} "
                    "are safe until Resume (go)")
        return None

    def _replied(self, command: str, reply: dict) -> None:
        if not alive(self):
            return
        self._set_busy(False)
        self._append(reply_lines(reply))
        if command.split(" ", 1)[0] in ("stop", "go", "halt", "reboot", "cad"):
            self.dialog.refresh_state()

    def _failed(self, exc: BaseException) -> None:
        if not alive(self):
            return
        self._set_busy(False)
        problem, fix = error_text(exc)
        self._append(f"ERROR {problem}" + (f"\n  fix: {fix}" if fix else ""))

    def _append(self, text: str) -> None:
        self.output.appendPlainText(text)
        self.output.moveCursor(QTextCursor.MoveOperation.End)

    # --- enabling ------------------------------------------------------------------------

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.state_changed(self.dialog.state)

    def state_changed(self, state: MachineState) -> None:
        super().state_changed(state)
        live, paused = state.live, state.state == PAUSED
        if not live:
            self.state_note.setText(f"<b>{self.name} is not running ({state.state}).</b> Start it "
                                    "to use its management console.")
        elif paused:
            self.state_note.setText(f"<b>{self.name} is paused.</b> Only "
                                    f"{', '.join(STOP_SAFE_COMMANDS)} are safe until you resume "
                                    "it (UML can lock up on other commands while stopped).")
        else:
            self.state_note.setText(f"{self.name} is {state.state}. Commands go to its kernel "
                                    "through the worker; replies are shown as the kernel sent them.")
        usable = live and not self.busy
        for command, button in self.buttons.items():
            allowed = not paused or command.startswith(STOP_SAFE_COMMANDS)
            button.setEnabled(usable and allowed)
        self.buttons["stop"].setEnabled(usable and not paused)
        self.buttons["go"].setEnabled(usable and paused)
        self.sysrq_button.setEnabled(usable)
        for widget in self.controls.findChildren(QPushButton):
            if widget.objectName().endswith("_button"):
                widget.setEnabled(usable and not paused)
        for edit in (self.log_text, self.proc_path, self.device):
            edit.setEnabled(live and not paused)
        self.prompt.setEnabled(usable)

