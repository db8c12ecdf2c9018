"""Memory: the guest's RAM size, against what the host has and what other machines use.

UML allocates guest memory lazily (a sparse file in TMPDIR), so `mem=` is a ceiling: the
host's real cost is the kernel process tree's resident memory, shown here as it changes.
"""

from __future__ import annotations

import psutil
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QSlider, QStyle, QWidget

from umlgui.errors import ConfigError, UmlguiError
from umlgui.model import library
from umlgui.model.machine import Machine
from umlgui.model.units import format_size, human_size
from umlgui.widgets.settings.page import SettingsPage
from umlgui.widgets.size_edit import SizeEdit
from umlgui.worker import client
from umlgui.worker.state import MachineState

MIB = 1 << 20
MIN_MEMORY = 16 * MIB          # what validate_machine accepts
REFRESH_MS = 2000


def running_machines_memory(excluding: str) -> tuple[int, list[str]]:
    """Sum of `memory` over live machines other than `excluding`, and their names."""
    total, names = 0, []
    for name in library.list_names():
        if name == excluding or not client.machine_state(name).live:
            continue
        try:
            total += library.load(name).memory
        except UmlguiError:
            continue          # a broken definition is the machine list's problem, not ours
        names.append(name)
    return total, names


def process_tree_memory(pid: int | None) -> int | None:
    """Bytes the kernel process tree really uses (PSS, so shared guest RAM counts once)."""
    if not pid:
        return None
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    # UML's helper threads are clone(CLONE_VM) processes sharing the kernel's address space,
    # which must count once. Their resident figures move between reads; the virtual size of
    # one address space is the same for all of them, and distinct ones practically never match.
    seen: set[int] = set()
    total = 0
    for process in processes:
        try:
            info = process.memory_full_info()
        except psutil.AccessDenied:
            info = process.memory_info()
        except psutil.Error:
            continue
        if info.vms in seen:
            continue
        seen.add(info.vms)
        total += getattr(info, "pss", info.rss)
    return total


class MemoryPage(SettingsPage):
    title = "Memory"
    icon = QStyle.StandardPixmap.SP_DriveFDIcon
    boot_note = ("A new memory size takes effect at the next boot (UML sets the guest's RAM "
                 "when it starts).")

    def __init__(self, dialog):
        super().__init__(dialog)
        host_total = psutil.virtual_memory().total
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("memorySlider")
        self.slider.setRange(MIN_MEMORY // MIB, max(host_total // MIB, 1024))
        self.slider.setPageStep(64)
        self.size = SizeEdit(minimum=MIN_MEMORY, maximum=max(host_total, 1 << 30) * 2)
        self.size.setObjectName("memorySize")
        self.size.setMaximumWidth(240)
        self.host_label = QLabel()
        self.others_label = QLabel()
        self.others_label.setWordWrap(True)
        self.rss_label = QLabel()
        self.rss_label.setObjectName("rssLabel")
        self.rss_label.setWordWrap(True)
        self.warning = QLabel()
        self.warning.setObjectName("memoryWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("QLabel { color: #8a4b00; background: #fff4d6; padding: 6px;"
                                   " border: 1px solid #e0b84c; border-radius: 3px; }")
        self.warning.hide()
        form = QFormLayout()
        form.addRow("Guest memory:", self.size)
        form.addRow("", self._slider_with_ends(host_total))
        form.addRow("Host memory:", self.host_label)
        form.addRow("Running machines:", self.others_label)
        form.addRow("This machine uses:", self.rss_label)
        self.body.addLayout(form)
        self.body.addWidget(self.warning)
        self.body.addStretch(1)
        self.slider.valueChanged.connect(self._slider_moved)
        self.size.valueChanged.connect(self._size_changed)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)

    def _slider_with_ends(self, host_total: int) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel(human_size(MIN_MEMORY)))
        layout.addWidget(self.slider, 1)
        layout.addWidget(QLabel(f"{human_size(self.slider.maximum() * MIB)} (host)"))
        return row

    def load(self, machine: Machine) -> None:
        self.size.setValue(machine.memory)
        self._sync_slider(machine.memory)
        self.refresh()

    def store(self, machine: Machine) -> None:
        size = self.size.value()
        if size < MIN_MEMORY:
            raise ConfigError(f"memory {format_size(size) if size else '0'} is too small",
                              "give the machine at least 16 MiB (64 MiB for busybox, "
                              "256 MiB for Debian)")
        machine.memory = size

    def _slider_moved(self, mib: int) -> None:
        self.size.setValue(mib * MIB)

    def _size_changed(self, size: int) -> None:
        self._sync_slider(size)
        self.refresh()
        self.changed.emit()

    def _sync_slider(self, size: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(min(size // MIB, self.slider.maximum()))
        self.slider.blockSignals(False)

    # --- host figures --------------------------------------------------------------------

    def refresh(self) -> None:
        host = psutil.virtual_memory()
        self.host_label.setText(f"{human_size(host.total)} total, "
                                f"<b>{human_size(host.available)}</b> available")
        others, names = running_machines_memory(self.name)
        self.others_label.setText(
            f"{human_size(others)} for {', '.join(names)}" if names else "none besides this one")
        self._show_usage()
        self._show_warning(others, host.available)

    def _show_usage(self) -> None:
        state = self.dialog.state
        used = process_tree_memory(state.kernel_pid) if state.live else None
        if used is None:
            self.rss_label.setText("— (not running). UML takes host memory lazily, as the "
                                   "guest touches it, up to the size set here.")
        else:
            self.rss_label.setText(f"<b>{human_size(used)}</b> on the host now (kernel process "
                                   f"tree); it grows as the guest touches its memory.")

    def _show_warning(self, others: int, available: int) -> None:
        wanted = others + self.size.value()
        if wanted > available:
            self.warning.setText(
                f"⚠ The running machines ({human_size(others)}) and this one "
                f"({human_size(self.size.value())}) could use {human_size(wanted)}, more than the "
                f"{human_size(available)} the host has available. If the guests fill their "
                f"memory the host will swap or kill them; give this machine less memory or halt "
                f"another one.")
            self.warning.show()
        else:
            self.warning.hide()

    def showEvent(self, event) -> None:
        self.refresh()
        self.timer.start(REFRESH_MS)
        super().showEvent(event)

    def hideEvent(self, event) -> None:
        self.timer.stop()
        super().hideEvent(event)

    def state_changed(self, state: MachineState) -> None:
        super().state_changed(state)
        self._show_usage()
