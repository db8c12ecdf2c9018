"""Small dialogs of the topology editor: a node's lab properties and a link's impairments."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout,
                               QLabel, QLineEdit, QPlainTextEdit, QPushButton, QSpinBox, QVBoxLayout)

from umlgui.model import lab as labs
from umlgui.widgets.size_edit import SizeEdit


class NodeDialog(QDialog):
    """What the lab says about a node: memory, template, kernel words, start order, ports.

    Disks, consoles and the rest of a machine live in its own settings (Machine settings…).
    """

    machine_settings_requested = Signal()

    def __init__(self, lab: labs.Lab, node: labs.Node, templates: list[str], running: bool,
                 has_machine: bool, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"{node.name} — {node.kind} properties")
        self.setObjectName("topologyNodeDialog")
        self.node = node
        form = QFormLayout()
        self.memory = SizeEdit(self, minimum=16 << 20, maximum=64 << 30)
        self.template = QComboBox(self)
        self.append = QLineEdit(" ".join(node.append), self)
        self.depends = QLineEdit(" ".join(node.depends), self)
        self.ports = QSpinBox(self)
        self.address = QLineEdit(node.address, self)
        self.notes = QPlainTextEdit(node.notes, self)
        self.notes.setMaximumHeight(80)
        if node.is_machine:
            self.memory.setValue(node.memory)
            self.template.addItems(sorted(set(templates) | {node.template}))
            self.template.setCurrentText(node.template)
            self.template.setEnabled(not has_machine)
            self.append.setPlaceholderText("ip_eth0=10.0.0.1/24 ...")
            self.depends.setPlaceholderText("machines that must be up first, e.g. r1")
            form.addRow("Memory", self.memory)
            form.addRow("Template", self.template)
            form.addRow("Kernel words", self.append)
            form.addRow("Boots after", self.depends)
        if node.has_ports:
            self.ports.setRange(max(1, max((l.port or 1) for l in lab.links_of(node.name)) if lab.links_of(node.name) else 1),
                                labs.MAX_PORTS)
            self.ports.setValue(node.ports)
            form.addRow("Ports", self.ports)
        if node.kind == labs.HOST:
            self.address.setPlaceholderText("host side address, e.g. 10.0.9.1/24")
            form.addRow("Host address", self.address)
        form.addRow("Notes", self.notes)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        if running:
            layout.addWidget(QLabel("Changes take effect at the next boot.", self))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        if node.is_machine:
            settings = QPushButton("Machine settings…", self)
            settings.setEnabled(has_machine)
            settings.setToolTip("Disks, consoles and everything else of the machine"
                                if has_machine else "The machine is created when it first boots")
            settings.clicked.connect(self._machine_settings)
            buttons.addButton(settings, QDialogButtonBox.ButtonRole.ResetRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _machine_settings(self) -> None:
        self.machine_settings_requested.emit()
        self.reject()

    def apply_to(self, node: labs.Node) -> None:
        """Copy the fields into `node` (a copy inside an edit, so the edit can be undone)."""
        if node.is_machine:
            node.memory = self.memory.value()
            node.template = self.template.currentText()
            node.append = self.append.text().split()
            node.depends = self.depends.text().split()
        if node.has_ports:
            node.ports = self.ports.value()
        if node.kind == labs.HOST:
            node.address = self.address.text().strip()
        node.notes = self.notes.toPlainText()


class ImpairDialog(QDialog):
    """Loss, delay, jitter and duplication on a link (the switch port towards the machine)."""

    def __init__(self, link: labs.Link, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Impair {link.label()}")
        self.setObjectName("topologyImpairDialog")
        form = QFormLayout()
        self.fields: dict[str, QDoubleSpinBox] = {}
        for key, label, suffix, high in (("loss", "Loss", " %", 100.0), ("delay_ms", "Delay", " ms", 60000.0),
                                         ("jitter_ms", "Jitter", " ms", 60000.0),
                                         ("duplicate", "Duplicate", " %", 100.0)):
            spin = QDoubleSpinBox(self)
            spin.setRange(0.0, high)
            spin.setDecimals(1)
            spin.setSuffix(suffix)
            spin.setValue(getattr(link, key))
            spin.setObjectName(f"impair_{key}")
            self.fields[key] = spin
            form.addRow(label, spin)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Applied to frames the switch sends towards the machine.", self))
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.Reset, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Reset).clicked.connect(
            lambda: [spin.setValue(0.0) for spin in self.fields.values()])
        layout.addWidget(buttons)

    def values(self) -> dict[str, float]:
        return {key: spin.value() for key, spin in self.fields.items()}
