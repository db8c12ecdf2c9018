"""The tt engine's syscall monitor as a panel: live list, filter, pause, save.

It tails `logs/NAME/syscalls.jsonl` (written by the engine when the machine's monitor is on)
a few times a second, keeps the newest rows, and never blocks on the machine.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QTableView,
    QVBoxLayout, QWidget,
)

from umlgui.kernel.tt_engine import monitor_log
from umlgui.model.syscalls import SyscallEvent, SyscallLogReader

MAX_ROWS = 20000
POLL_MS = 250
COLUMNS = ("Time", "PID", "Command", "Syscall", "Arguments", "Result")


class SyscallTableModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.events: list[SyscallEvent] = []

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.events)

    def columnCount(self, parent=QModelIndex()) -> int:
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        event = self.events[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return (event.line()[:15], str(event.pid), event.comm, event.name,
                    event.args_text(), event.result_text())[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and event.err and index.column() == 5:
            return QColor("#c0392b")
        if role == Qt.ItemDataRole.ToolTipRole:
            return event.raw
        return None

    def replace(self, events: list[SyscallEvent]) -> None:
        self.beginResetModel()
        self.events = events
        self.endResetModel()

    def append(self, events: list[SyscallEvent]) -> None:
        if not events:
            return
        overflow = len(self.events) + len(events) - MAX_ROWS
        if overflow > 0:
            self.beginRemoveRows(QModelIndex(), 0, overflow - 1)
            del self.events[:overflow]
            self.endRemoveRows()
        first = len(self.events)
        self.beginInsertRows(QModelIndex(), first, first + len(events) - 1)
        self.events.extend(events)
        self.endInsertRows()


class SyscallMonitorPanel(QWidget):
    """Live syscalls of one tt machine. `counts_changed(shown, total)` for a status line."""

    counts_changed = Signal(int, int)

    def __init__(self, machine_name: str, parent=None, log_path: Path | None = None):
        super().__init__(parent)
        self.machine_name = machine_name
        self.reader = SyscallLogReader(log_path or monitor_log(machine_name))
        self.all_events: deque[SyscallEvent] = deque(maxlen=MAX_ROWS)
        self.model = SyscallTableModel(self)
        self._build()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.poll)
        self.timer.start(POLL_MS)
        self.poll()

    def _build(self) -> None:
        self.filter_edit = QLineEdit(placeholderText="Filter: syscall, pid, command or argument words")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.refilter)
        self.pause_box = QCheckBox("Pause")
        self.follow_box = QCheckBox("Follow")
        self.follow_box.setChecked(True)
        save = QPushButton("Save…")
        save.clicked.connect(self.ask_save)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear)
        self.status = QLabel()
        bar = QHBoxLayout()
        for widget in (self.filter_edit, self.pause_box, self.follow_box, save, clear):
            bar.addWidget(widget)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.verticalHeader().hide()
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.view)
        layout.addWidget(self.status)
        if not self.reader.path.exists():
            self.status.setText(f"No syscall log yet: turn the monitor on for {self.machine_name} "
                                f"(umlgui monitor {self.machine_name} --on) and boot it.")

    def poll(self) -> None:
        if self.pause_box.isChecked():
            return
        events = self.reader.read_new()
        if not events:
            return
        self.all_events.extend(events)
        text = self.filter_edit.text()
        self.model.append([e for e in events if e.matches(text)] if text else events)
        if self.follow_box.isChecked():
            self.view.scrollToBottom()
        self._show_counts()

    def refilter(self) -> None:
        text = self.filter_edit.text()
        self.model.replace([e for e in self.all_events if e.matches(text)])
        self._show_counts()

    def clear(self) -> None:
        self.all_events.clear()
        self.model.replace([])
        self._show_counts()

    def _show_counts(self) -> None:
        shown, total = len(self.model.events), len(self.all_events)
        self.status.setText(f"{shown} of {total} syscalls shown" + (" (paused)" if self.pause_box.isChecked() else ""))
        self.counts_changed.emit(shown, total)

    def ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save syscalls", f"{self.machine_name}-syscalls.jsonl",
                                              "JSON lines (*.jsonl);;Text (*.txt)")
        if path:
            self.save(Path(path))

    def save(self, path: Path) -> None:
        """The rows shown (filter applied): JSON lines, or readable lines for a .txt file."""
        as_text = path.suffix == ".txt"
        with open(path, "w") as f:
            for event in self.model.events:
                f.write((event.line() if as_text else event.raw) + "\n")
