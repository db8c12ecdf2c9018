"""Consoles: how many virtual consoles (conN) and serial lines (sslN), and where each goes.

Channels: the embedded terminal (`pty`: a pty the worker owns, shown in umlgui's terminal),
a telnet port (`port:N`), `null` (discarded) or `none` (the line does not exist).
"""

from __future__ import annotations

import os
import shutil

from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFormLayout, QHeaderView, QLabel,
                               QSpinBox, QStyle, QTableWidget, QTableWidgetItem)

from umlgui.errors import ConfigError
from umlgui.model.machine import CHANNEL_RE, MAX_CON, MAX_SSL, Console, Machine
from umlgui.widgets.settings.page import SettingsPage

CHANNELS = (("Embedded terminal (pty)", "pty"), ("Telnet port", "port"),
            ("Discard output (null)", "null"), ("Not present (none)", "none"))
FIRST_PORT = 9000


def telnetd_found() -> bool:
    """Whether UML can serve port channels: it runs in.telnetd from PATH or /usr/lib/uml."""
    return shutil.which("in.telnetd", path=os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/lib/uml"])) is not None


def line_names(consoles: int, serials: int) -> list[str]:
    return [f"con{n}" for n in range(consoles)] + [f"ssl{n}" for n in range(serials)]


def counts(machine: Machine) -> tuple[int, int]:
    """Lines shown: up to the highest conN (at least con0) and the highest sslN present."""
    highest = {"con": 0, "ssl": 0}
    for name in machine.consoles:
        kind, number = name[:3], int(name[3:])
        highest[kind] = max(highest[kind], number + 1)
    return max(highest["con"], 1), highest["ssl"]


class ConsolesPage(SettingsPage):
    title = "Consoles"
    icon = QStyle.StandardPixmap.SP_DesktopIcon
    boot_note = ("Console changes take effect at the next boot: the worker creates the embedded "
                 "terminals' ptys when the machine boots.")
    COLUMNS = ("Line", "Channel", "Port", "In the guest")

    def __init__(self, dialog):
        super().__init__(dialog)
        self.channels: dict[str, str] = {}
        self.console_count = QSpinBox()
        self.console_count.setObjectName("consoleCount")
        self.console_count.setRange(1, MAX_CON)
        self.serial_count = QSpinBox()
        self.serial_count.setObjectName("serialCount")
        self.serial_count.setRange(0, MAX_SSL)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        form.addRow("Virtual consoles (con):", self.console_count)
        form.addRow("Serial lines (ssl):", self.serial_count)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("consoleTable")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        explanation = QLabel("The embedded terminal shows the line in umlgui's console tabs. A "
                             "telnet port listens on every host interface. con0 is where umlgui "
                             "watches the boot and the login prompt.")
        explanation.setWordWrap(True)
        self.telnet_warning = QLabel(
            "⚠ A telnet port needs <tt>in.telnetd</tt> on the host, which UML runs for each "
            "connection; it was not found (Debian's telnetd lacks the -L option UML uses). "
            "Without it connections are dropped; the embedded terminal needs nothing.")
        self.telnet_warning.setObjectName("telnetWarning")
        self.telnet_warning.setWordWrap(True)
        self.telnet_warning.hide()
        self.body.addLayout(form)
        self.body.addWidget(self.table, 1)
        self.body.addWidget(self.telnet_warning)
        self.body.addWidget(explanation)
        self.console_count.valueChanged.connect(self._count_changed)
        self.serial_count.valueChanged.connect(self._count_changed)

    def load(self, machine: Machine) -> None:
        self.channels = {name: console.channel for name, console in machine.consoles.items()}
        consoles, serials = counts(machine)
        for spin, value in ((self.console_count, consoles), (self.serial_count, serials)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self._fill_table()

    def store(self, machine: Machine) -> None:
        consoles: dict[str, Console] = {}
        for name in line_names(self.console_count.value(), self.serial_count.value()):
            channel = self.channels.get(name, "none")
            if channel == "none" and name not in machine.consoles:
                continue        # an absent line is `none` already; don't write it out
            if not CHANNEL_RE.match(channel):
                raise ConfigError(f"{name}: {channel!r} is not a console channel",
                                  "choose the embedded terminal, a telnet port, null or none")
            consoles[name] = Console(channel)
        if consoles.get("con0", Console("none")).channel == "none":
            raise ConfigError("con0 must exist: umlgui watches the boot and the login prompt there",
                              "set con0 to the embedded terminal (pty), a telnet port or null")
        machine.consoles = consoles

    # --- table ---------------------------------------------------------------------------

    def _show_telnet_warning(self) -> None:
        uses_port = any(channel.startswith("port:") for name, channel in self.channels.items()
                        if name in line_names(self.console_count.value(), self.serial_count.value()))
        self.telnet_warning.setVisible(uses_port and not telnetd_found())

    def _count_changed(self, _value: int) -> None:
        for name in line_names(self.console_count.value(), self.serial_count.value()):
            self.channels.setdefault(name, "pty")
        self._fill_table()
        self.changed.emit()

    def _fill_table(self) -> None:
        names = line_names(self.console_count.value(), self.serial_count.value())
        self.table.setRowCount(len(names))
        for row, name in enumerate(names):
            channel = self.channels.get(name, "none")
            self.table.setItem(row, 0, QTableWidgetItem(name))
            self.table.setCellWidget(row, 1, self._channel_combo(name, channel))
            self.table.setCellWidget(row, 2, self._port_spin(name, row, channel))
            guest = f"/dev/tty{name[3:]}" if name.startswith("con") else f"/dev/ttyS{name[3:]}"
            if name == "con0":
                guest += " (the system console)"
            self.table.setItem(row, 3, QTableWidgetItem(guest))
        self._show_telnet_warning()

    def _channel_combo(self, name: str, channel: str) -> QComboBox:
        combo = QComboBox()
        combo.setObjectName(f"channel_{name}")
        for label, value in CHANNELS:
            combo.addItem(label, value)
        kind = "port" if channel.startswith("port:") else channel
        index = combo.findData(kind)
        if index < 0:           # xterm, tty:/dev/…: kept as they are
            combo.addItem(f"Other: {channel}", channel)
            index = combo.count() - 1
        combo.setCurrentIndex(index)
        combo.currentIndexChanged.connect(lambda _i, name=name, combo=combo:
                                          self._channel_chosen(name, combo.currentData()))
        return combo

    def _port_spin(self, name: str, row: int, channel: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setObjectName(f"port_{name}")
        spin.setRange(1, 65535)
        spin.setValue(int(channel[5:]) if channel.startswith("port:") else FIRST_PORT + row)
        spin.setEnabled(channel.startswith("port:"))
        spin.valueChanged.connect(lambda port, name=name: self._port_changed(name, port))
        return spin

    def _channel_chosen(self, name: str, value: str) -> None:
        row = line_names(self.console_count.value(), self.serial_count.value()).index(name)
        port = self.table.cellWidget(row, 2)
        port.setEnabled(value == "port")
        # the combo that sent this stays in place: rebuilding the table here would delete it
        self.channels[name] = f"port:{port.value()}" if value == "port" else value
        self._show_telnet_warning()
        self.changed.emit()

    def _port_changed(self, name: str, port: int) -> None:
        if self.channels.get(name, "").startswith("port:"):
            self.channels[name] = f"port:{port}"
            self.changed.emit()

    def set_channel(self, name: str, label_value: str, port: int | None = None) -> None:
        """Choose a channel as the user would: through the line's combo box (and port)."""
        names = line_names(self.console_count.value(), self.serial_count.value())
        row = names.index(name)
        combo: QComboBox = self.table.cellWidget(row, 1)
        combo.setCurrentIndex(combo.findData(label_value))
        if port is not None:
            self.table.cellWidget(row, 2).setValue(port)
