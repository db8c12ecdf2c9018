"""Network: cards eth0.. on a virtual switch, a host tap, slirp or multicast.

Adding and removing a card act at once (dialog.change_now): on a running machine with
`config ethN=...` (the card exactly as the boot command line has it) and `remove ethN`.
A MAC address change waits for Apply and the next boot.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog,
                               QDialogButtonBox, QFormLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QPushButton, QSpinBox,
                               QStackedWidget, QStyle, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from umlgui.errors import ConfigError, NotFoundError, StateError, UmlguiError
from umlgui.gui.jobs import show_error
from umlgui.host import tap as taps
from umlgui.jobs import Progress
from umlgui.model.machine import MAC_RE, SWITCH_TRANSPORT, Machine, NetCard
from umlgui.widgets.settings import hotplug
from umlgui.widgets.settings.page import SettingsPage, confirm

SWITCH, INTERNET, TAP, SLIRP, MCAST = "switch", "internet", "tuntap", "slirp", "mcast"
KIND_LABELS = {SWITCH: "Virtual switch", INTERNET: "Internet with DHCP, no root (slirpvde)",
               TAP: "Host tap device", SLIRP: "Internet without root (slirp, static address)",
               MCAST: "Multicast (machines on this host)"}
# Debian's plain /usr/bin/slirp exits right after its banner; slirp-fullbolt works
DEFAULT_SLIRP = "/usr/bin/slirp-fullbolt"
DEFAULT_MCAST = {"group": "239.192.168.1", "port": "1102", "ttl": "1"}
MAX_ETH = 64


def random_mac() -> str:
    """A locally administered unicast MAC in UML's fe:fd: range."""
    return "fe:fd:" + ":".join(f"{byte:02x}" for byte in secrets.token_bytes(4))


def check_mac(mac: str, device: str) -> str:
    mac = mac.strip().lower()
    if not MAC_RE.match(mac):
        raise ConfigError(f"{device}: {mac!r} is not a MAC address",
                          "write six hex pairs separated by colons, e.g. fe:fd:0a:00:00:01")
    if int(mac[:2], 16) & 1:
        raise ConfigError(f"{device}: {mac} is a multicast address",
                          "the first byte must be even, e.g. fe:fd:…")
    return mac


def describe(card: NetCard) -> tuple[str, str]:
    """(attached to, details) for the table."""
    options = card.options
    if card.transport == SWITCH_TRANSPORT:
        return f"switch {options.get('switch', '?')}", "daemon transport on the switch's socket"
    if card.transport == INTERNET:
        return "internet (DHCP)", "user-mode NAT with DHCP: vde_switch + slirpvde"
    if card.transport == TAP:
        return f"host tap {options.get('device', '?')}", "tuntap transport"
    if card.transport == SLIRP:
        return "internet (slirp)", f"user-mode NAT: {options.get('program', DEFAULT_SLIRP)}"
    if card.transport == MCAST:
        where = f"{options.get('group', '239.192.168.1')}:{options.get('port', '1102')}"
        return f"multicast {where}", f"ttl {options.get('ttl', '1')}"
    details = ", ".join(f"{key}={value}" for key, value in options.items())
    return card.transport, details


def switch_running(name: str) -> bool:
    """Served by a switch (ours or uml_switch): the same test the worker makes before a boot."""
    from umlgui.net.client import serving

    return serving(name)


@dataclass
class AddCardRequest:
    """A new card; `prepare` starts its switch or creates its tap (slow, so in a job)."""

    device: str
    kind: str
    mac: str
    options: dict[str, str] = field(default_factory=dict)
    start_switch: bool = True
    create_tap: bool = False

    def card(self) -> NetCard:
        return NetCard(self.kind, self.mac, dict(self.options))

    def prepare(self, progress: Progress, machine_live: bool) -> None:
        if self.kind == SWITCH:
            self._prepare_switch(progress, machine_live)
        elif self.kind == INTERNET:
            from umlgui.net.internet import ensure_internet

            progress.step("starting the internet service")
            ensure_internet()
        elif self.kind == TAP:
            self._prepare_tap(progress, machine_live)

    def _prepare_switch(self, progress: Progress, machine_live: bool) -> None:
        from umlgui.net.client import start_command, start_switch

        name = self.options["switch"]
        if switch_running(name):
            return
        if self.start_switch:
            progress.step(f"starting switch {name}")
            start_switch(name)
        elif machine_live:
            # UML accepts a daemon card on a dead socket and then has no device (§6.2)
            raise StateError(f"switch {name} is not running, so the card would not work",
                             f"start it first: {start_command(name)}")

    def _prepare_tap(self, progress: Progress, machine_live: bool) -> None:
        name = self.options["device"]
        if taps.tap_exists(name):
            return
        if self.create_tap:
            progress.step(f"creating tap {name}")
            taps.create_tap(name)
        elif machine_live:
            raise NotFoundError(f"tap device {name} does not exist",
                                f"create it: {taps.setup_command(name)}")


class AddCardDialog(QDialog):
    def __init__(self, device: str, mac: str, switches: list[tuple[str, bool]], parent=None):
        super().__init__(parent)
        self.setObjectName("addCardDialog")
        self.setWindowTitle(f"Add network card {device}")
        self.device = device
        self.request: AddCardRequest | None = None
        self.kind = QComboBox()
        self.kind.setObjectName("cardKind")
        for kind, label in KIND_LABELS.items():
            self.kind.addItem(label, kind)
        self.forms = QStackedWidget()
        self.switch_name = QComboBox()
        self.switch_name.setEditable(True)
        for name, running in switches:
            self.switch_name.addItem(name)
            self.switch_name.setItemData(self.switch_name.count() - 1,
                                         "running" if running else "stopped", Qt.ItemDataRole.ToolTipRole)
        if not switches:
            self.switch_name.setEditText("lan0")
        self.start_switch = QCheckBox("Start the switch if it is not running")
        self.start_switch.setChecked(True)
        self.tap_name = QLineEdit("umltap0")
        self.create_tap = QCheckBox("Create the tap device now if it does not exist "
                                    "(needs CAP_NET_ADMIN)")
        self.create_tap.setChecked(True)
        self.slirp_program = QLineEdit(DEFAULT_SLIRP)
        self.mcast_group = QLineEdit(DEFAULT_MCAST["group"])
        self.mcast_port = QSpinBox()
        self.mcast_port.setRange(1, 65535)
        self.mcast_port.setValue(int(DEFAULT_MCAST["port"]))
        self.mcast_ttl = QSpinBox()
        self.mcast_ttl.setRange(0, 255)
        self.mcast_ttl.setValue(int(DEFAULT_MCAST["ttl"]))
        self.mac = QLineEdit(mac)
        self.mac.setObjectName("cardMac")
        self._build()
        self.kind.currentIndexChanged.connect(self.forms.setCurrentIndex)

    def _form(self, rows: list[tuple[str, QWidget]], note: str) -> QWidget:
        widget = QWidget()
        form = QFormLayout(widget)
        for label, field_widget in rows:
            form.addRow(label, field_widget)
        explanation = QLabel(note)
        explanation.setWordWrap(True)
        form.addRow(explanation)
        return widget

    def _build(self) -> None:
        self.forms.addWidget(self._form(
            [("Switch:", self.switch_name), ("", self.start_switch)],
            "Machines on the same switch see each other, like computers on one Ethernet switch."))
        self.forms.addWidget(self._form(
            [], "The guest gets an address by DHCP (10.0.2.15 and up, gateway 10.0.2.2, DNS "
            "10.0.2.3) and reaches the host's networks through NAT. No root needed; umlgui "
            "starts vde_switch and slirpvde (package vde2) when a machine needs them."))
        self.forms.addWidget(self._form(
            [("Tap device:", self.tap_name), ("", self.create_tap)],
            "The card is wired to a network interface on the host."))
        self.forms.addWidget(self._form(
            [("slirp program:", self.slirp_program)],
            "The guest reaches the internet through the host, with no root needed. UML's "
            "slirp link carries no DHCP: umlgui gives the guest 10.0.2.15/24, gateway 10.0.2.2."))
        self.forms.addWidget(self._form(
            [("Group:", self.mcast_group), ("Port:", self.mcast_port), ("TTL:", self.mcast_ttl)],
            "Every card on the same group and port hears the others; no switch process needed."))
        new_mac = QPushButton("New MAC")
        new_mac.clicked.connect(lambda: self.mac.setText(random_mac()))
        mac_row = QHBoxLayout()
        mac_row.addWidget(self.mac, 1)
        mac_row.addWidget(new_mac)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        top = QFormLayout()
        top.addRow("Card:", QLabel(f"<b>{self.device}</b>"))
        top.addRow("Attach to:", self.kind)
        top.addRow("MAC address:", mac_row)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.forms)
        layout.addWidget(buttons)

    def set_kind(self, kind: str) -> None:
        self.kind.setCurrentIndex(self.kind.findData(kind))

    def build_request(self) -> AddCardRequest:
        kind, device = self.kind.currentData(), self.device
        mac = check_mac(self.mac.text(), device)
        if kind == SWITCH:
            from umlgui.net.client import validate_switch_name

            name = validate_switch_name(self.switch_name.currentText().strip())
            return AddCardRequest(device, kind, mac, {"switch": name},
                                  start_switch=self.start_switch.isChecked())
        if kind == TAP:
            name = taps.validate_tap_name(self.tap_name.text().strip())
            return AddCardRequest(device, kind, mac, {"device": name},
                                  create_tap=self.create_tap.isChecked())
        if kind == SLIRP:
            return AddCardRequest(device, kind, mac, {"program": self._slirp_program()})
        if kind == INTERNET:
            return AddCardRequest(device, kind, mac, {})
        return AddCardRequest(device, kind, mac, self._mcast_options())

    def _slirp_program(self) -> str:
        program = self.slirp_program.text().strip() or DEFAULT_SLIRP
        found = program if os.sep in program else shutil.which(program)
        if not found or not (os.path.isfile(found) and os.access(found, os.X_OK)):
            raise NotFoundError(f"the slirp program {program} was not found",
                                "install it: sudo apt-get install slirp")
        if "," in found:
            raise ConfigError(f"the slirp path {found} contains ','", "UML splits options there")
        return found

    def _mcast_options(self) -> dict[str, str]:
        group = self.mcast_group.text().strip()
        try:
            address = ipaddress.IPv4Address(group)
        except ValueError:
            address = None
        if address is None or not address.is_multicast:
            raise ConfigError(f"{group!r} is not an IPv4 multicast group",
                              "use an address from 224.0.0.0 to 239.255.255.255, e.g. 239.192.168.1")
        return {"group": group, "port": str(self.mcast_port.value()),
                "ttl": str(self.mcast_ttl.value())}

    def accept(self) -> None:
        try:
            self.request = self.build_request()
        except UmlguiError as exc:
            show_error(self, "Add network card", exc)
            return
        super().accept()


class NetworkPage(SettingsPage):
    title = "Network"
    icon = QStyle.StandardPixmap.SP_DriveNetIcon
    boot_note = ("Adding or removing a card plugs it into the running machine at once "
                 "(configure it in the guest afterwards). A new MAC address takes effect at "
                 "the next boot.")
    COLUMNS = ("Card", "Attached to", "MAC address", "Details")

    def __init__(self, dialog):
        super().__init__(dialog)
        self.cards: dict[str, NetCard] = {}
        self.machine_for_macs = dialog.saved      # default MACs derive from the machine's name
        self.macs: dict[str, str] = {}         # as typed, checked in store()
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("cardTable")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.add_button = QPushButton("Add…")
        self.add_button.setObjectName("addCard")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("removeCard")
        self.add_button.clicked.connect(self.open_add_dialog)
        self.remove_button.clicked.connect(self.ask_remove_selected)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        self.mac_edit = QLineEdit()
        self.mac_edit.setObjectName("macEdit")
        self.mac_edit.textEdited.connect(self._mac_edited)
        new_mac = QPushButton("New MAC")
        new_mac.clicked.connect(lambda: self._set_mac(random_mac()))
        self.details = QGroupBox("Selected card")
        row = QHBoxLayout(self.details)
        row.addWidget(QLabel("MAC address:"))
        row.addWidget(self.mac_edit, 1)
        row.addWidget(new_mac)
        self.body.addWidget(self.table, 1)
        self.body.addLayout(buttons)
        self.body.addWidget(self.details)
        self._selection_changed()

    # --- load / store --------------------------------------------------------------------

    def load(self, machine: Machine) -> None:
        self.machine_for_macs = machine
        self.cards = copy.deepcopy(machine.network)
        self.macs = {dev: card.mac or "" for dev, card in self.cards.items()}
        self._fill_table()

    def store(self, machine: Machine) -> None:
        cards = copy.deepcopy(self.cards)
        for device, text in self.macs.items():
            if device in cards:
                cards[device].mac = check_mac(text, device) if text.strip() else None
        machine.network = cards

    def selected_device(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).text() if rows else None

    def row_texts(self, device: str) -> list[str]:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).text() == device:
                return [self.table.item(row, col).text() for col in range(len(self.COLUMNS))]
        return []

    def _fill_table(self) -> None:
        keep = self.selected_device()
        self.table.setRowCount(0)
        for device in sorted(self.cards, key=_device_order):
            card = self.cards[device]
            attached, details = describe(card)
            mac = self.macs.get(device) or f"{self.machine_for_macs.default_mac(device)} (default)"
            row = self.table.rowCount()
            self.table.insertRow(row)
            for col, text in enumerate((device, attached, mac, details)):
                self.table.setItem(row, col, QTableWidgetItem(text))
        rows = [r for r in range(self.table.rowCount()) if self.table.item(r, 0).text() == keep]
        if rows:
            self.table.selectRow(rows[0])
        elif self.table.rowCount():
            self.table.selectRow(0)
        self._selection_changed()

    def _selection_changed(self) -> None:
        device = self.selected_device()
        self.details.setEnabled(device is not None)
        self.remove_button.setEnabled(device is not None)
        self.mac_edit.setText(self.macs.get(device, "") if device else "")
        if device:
            self.mac_edit.setPlaceholderText(self.machine_for_macs.default_mac(device))

    def _mac_edited(self, text: str) -> None:
        device = self.selected_device()
        if device:
            self.macs[device] = text
            self.changed.emit()

    def _set_mac(self, mac: str) -> None:
        self.mac_edit.setText(mac)
        self._mac_edited(mac)
        self._fill_table()

    # --- add -----------------------------------------------------------------------------

    def next_device(self) -> str:
        used = set(self.cards) | set(self.dialog.saved.network)
        for number in range(MAX_ETH):
            if f"eth{number}" not in used:
                return f"eth{number}"
        raise ConfigError(f"{self.name} already has {MAX_ETH} cards", "remove one first")

    def open_add_dialog(self) -> AddCardDialog | None:
        from umlgui.net.client import list_switches

        try:
            device = self.next_device()
            switches = [(info.name, info.running) for info in list_switches()]
        except UmlguiError as exc:
            show_error(self, "Add network card", exc)
            return None
        add = AddCardDialog(device, self.dialog.saved.default_mac(device), switches, self)
        add.accepted.connect(lambda: self.add_requested(add.request))
        add.open()
        return add

    def add_requested(self, request: AddCardRequest) -> None:
        live = self.dialog.state.live
        self.dialog.run(f"Preparing {request.device}",
                        lambda progress: request.prepare(progress, live),
                        lambda _none: self.add(request))

    def add(self, request: AddCardRequest) -> None:
        device = request.device

        def mutate(machine: Machine) -> None:
            if device in machine.network:
                raise ConfigError(f"{self.name} already has {device}", "add another card number")
            machine.network[device] = request.card()

        def added(machine: Machine) -> None:
            self.cards[device] = copy.deepcopy(machine.network[device])
            self.macs[device] = machine.network[device].mac or ""
            self._fill_table()

        self.dialog.change_now(f"Add {device}", mutate,
                               lambda machine: hotplug.add_card_command(machine, device), added)

    # --- remove --------------------------------------------------------------------------

    def ask_remove_selected(self) -> None:
        device = self.selected_device()
        if device is None:
            return
        detail = None
        if self.dialog.state.live:
            detail = (f"It is unplugged from the running machine now (remove {device}); "
                      f"take the interface down in the guest first (ip link set {device} down).")
        confirm(self, "Remove network card", f"Remove {device} ({describe(self.cards[device])[0]})?",
                lambda: self.remove(device), detail, yes_text="Remove")

    def remove(self, device: str) -> None:
        def mutate(machine: Machine) -> None:
            if device not in machine.network:
                raise NotFoundError(f"{device} is not in {self.name}'s definition any more",
                                    "close and reopen the settings to see the current cards")
            del machine.network[device]

        def removed(machine: Machine) -> None:
            self.cards.pop(device, None)
            self.macs.pop(device, None)
            self._fill_table()

        self.dialog.change_now(f"Remove {device}", mutate,
                               lambda machine: hotplug.remove_card_command(device), removed)


def _device_order(device: str) -> tuple[str, int]:
    match = re.match(r"^([a-z]+)(\d+)$", device)
    return (match.group(1), int(match.group(2))) if match else (device, 0)
