"""The machine library as a list: state, engine, memory, uptime and host CPU / memory, live.

`MachineTableModel` presents the controller's rows; `MachineListView` adds what the user
does with the mouse: double-click, right-click and dropping image files on a machine.
The view only reports those (signals); the main window decides what they mean.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPalette
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeView

from umlgui.gui.controller import MachineController, MachineRow
from umlgui.gui.icons import state_icon
from umlgui.model.units import format_size, human_size
from umlgui.worker import state as st

COLUMNS = ("Machine", "State", "Engine", "Memory", "Uptime", "CPU", "Host memory", "Details")
NAME, STATE, ENGINE, MEMORY, UPTIME, CPU, RSS, DETAILS = range(len(COLUMNS))
NAME_ROLE = Qt.ItemDataRole.UserRole + 1

STATE_LABELS = {
    st.STOPPED: "Stopped", st.BOOTING: "Booting", st.RUNNING: "Running", st.PAUSED: "Paused",
    st.REBOOTING: "Rebooting", st.HALTING: "Halting", st.HALTED: "Halted",
    st.CRASHED: "Crashed", st.KILLED: "Killed",
}


def format_uptime(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def state_label(row: MachineRow) -> str:
    state = row.state
    label = STATE_LABELS.get(state.state, state.state.capitalize())
    if state.state == st.BOOTING and state.boots:
        label = "Starting up"
    if state.state in (st.CRASHED, st.KILLED) and state.exit_code is not None:
        label += f" (exit {state.exit_code})"
    if row.problem:
        label = "Unreadable"
    return label


def details(row: MachineRow) -> str:
    """One line about what the machine is made of, or what went wrong with it."""
    if row.problem:
        return row.problem
    if row.state.state == st.CRASHED and row.state.message:
        return row.state.message
    machine = row.machine
    if machine is None:
        return ""
    parts = []
    if machine.template:
        parts.append(f"{machine.template} template")
    disks = len(machine.disks)
    parts.append(f"{disks} disk{'s' if disks != 1 else ''}")
    parts.append(", ".join(machine.console_names()))
    if machine.network:
        parts.append(", ".join(sorted(machine.network)))
    if machine.description:
        parts.append(machine.description)
    return "  ·  ".join(parts)


class MachineTableModel(QAbstractTableModel):
    def __init__(self, controller: MachineController, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.names: list[str] = controller.names()
        controller.machines_changed.connect(self._reload)
        controller.machine_updated.connect(self._row_changed)
        # uptime moves on even when nothing else about a (paused) machine does
        self._ticker = QTimer(self, interval=1000)
        self._ticker.timeout.connect(self._tick_uptime)
        self._ticker.start()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.names)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole and MEMORY <= section <= RSS:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def name_at(self, row: int) -> str | None:
        return self.names[row] if 0 <= row < len(self.names) else None

    def row_of(self, name: str) -> int:
        return self.names.index(name) if name in self.names else -1

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        name = self.names[index.row()]
        row = self.controller.row(name)
        if row is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column)
        if role == NAME_ROLE:
            return name
        if role == Qt.ItemDataRole.DecorationRole and column == NAME:
            return state_icon(row.state.state)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and MEMORY <= column <= RSS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and column == STATE:
            if row.state.state == st.CRASHED or row.problem:
                return QBrush(QColor("#c62828"))
        return None

    def _text(self, row: MachineRow, column: int) -> str:
        machine, state = row.machine, row.state
        if column == NAME:
            return row.name
        if column == STATE:
            return state_label(row)
        if column == ENGINE:
            return machine.engine if machine else ""
        if column == MEMORY:
            return format_size(machine.memory) if machine else ""
        if column == UPTIME:
            return format_uptime(state.uptime())
        if column == CPU:
            return f"{row.cpu:.0f} %" if row.cpu is not None and state.live else ""
        if column == RSS:
            return human_size(row.rss) if row.rss is not None and state.live else ""
        if column == DETAILS:
            return details(row)
        return ""

    def _tooltip(self, row: MachineRow) -> str:
        if row.problem:
            return f"{row.name}: {row.problem}"
        lines = [f"{row.name}: {state_label(row)}"]
        if row.state.message:
            lines.append(row.state.message)
        if row.machine and row.machine.description:
            lines.append(row.machine.description)
        if row.state.live:
            lines.append("Double-click for its console; drop a disk image here to attach it")
        else:
            lines.append("Double-click for its settings; drop a disk image here to attach it")
        return "\n".join(lines)

    def _reload(self) -> None:
        self.beginResetModel()
        self.names = self.controller.names()
        self.endResetModel()

    def _row_changed(self, name: str) -> None:
        row = self.row_of(name)
        if row >= 0:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def _tick_uptime(self) -> None:
        for row, name in enumerate(self.names):
            machine = self.controller.row(name)
            if machine is not None and machine.live:
                index = self.index(row, UPTIME)
                self.dataChanged.emit(index, index)


class MachineListView(QTreeView):
    """The list of machines. Reports double-clicks, context menus and file drops by name."""

    machine_activated = Signal(str)                 # double-click or Enter
    context_menu_requested = Signal(str, QPoint)    # name ("" on empty space), global position
    files_dropped = Signal(str, list)               # name, absolute file paths
    current_machine_changed = Signal(str)           # "" when nothing is selected

    def __init__(self, controller: MachineController, parent=None):
        super().__init__(parent)
        self.setObjectName("machineList")
        self.table = MachineTableModel(controller, self)
        self.setModel(self.table)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.DefaultContextMenu)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setStyleSheet("QTreeView::item { padding: 3px 6px; }")
        header = self.header()
        header.setStretchLastSection(True)
        for column, width in ((NAME, 200), (STATE, 120), (ENGINE, 64), (MEMORY, 76), (UPTIME, 76),
                              (CPU, 60), (RSS, 104)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        self.doubleClicked.connect(self._on_double_click)
        self.selectionModel().currentRowChanged.connect(self._on_current_changed)
        self.table.modelReset.connect(self._after_reset)
        self._selected_before_reset = ""

    # --- selection ---------------------------------------------------------------------

    def current_name(self) -> str:
        index = self.currentIndex()
        return self.table.name_at(index.row()) or "" if index.isValid() else ""

    def select_name(self, name: str) -> None:
        row = self.table.row_of(name)
        if row >= 0:
            self.setCurrentIndex(self.table.index(row, 0))

    def visual_center_of(self, name: str) -> QPoint:
        """Where the machine's row is, in viewport coordinates (tests drop files there)."""
        return self.visualRect(self.table.index(self.table.row_of(name), NAME)).center()

    def _on_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        self.current_machine_changed.emit(self.table.name_at(current.row()) or ""
                                          if current.isValid() else "")

    def _after_reset(self) -> None:
        # keep the user's selection across machines being added and removed
        name = self._selected_before_reset
        if name and self.table.row_of(name) >= 0:
            self.select_name(name)
        elif self.table.rowCount():
            self.select_name(self.table.names[0])
        else:
            self.current_machine_changed.emit("")

    def setModel(self, model) -> None:
        super().setModel(model)
        model.modelAboutToBeReset.connect(lambda: setattr(self, "_selected_before_reset",
                                                          self.current_name()))

    # --- mouse and keyboard -------------------------------------------------------------

    def _on_double_click(self, index: QModelIndex) -> None:
        name = self.table.name_at(index.row())
        if name:
            self.machine_activated.emit(name)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.current_name():
            self.machine_activated.emit(self.current_name())
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event) -> None:
        index = self.indexAt(event.pos())
        name = self.table.name_at(index.row()) if index.isValid() else ""
        if name:
            self.select_name(name)
        self.context_menu_requested.emit(name or "", event.globalPos())

    # --- dropping image files onto a machine ------------------------------------------------

    def _drop_target(self, event) -> str | None:
        if not event.mimeData().hasUrls():
            return None
        if not all(url.isLocalFile() for url in event.mimeData().urls()):
            return None
        index = self.indexAt(event.position().toPoint())
        return self.table.name_at(index.row()) if index.isValid() else None

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        name = self._drop_target(event)
        if name:
            self.select_name(name)
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        name = self._drop_target(event)
        if not name:
            event.ignore()
            return
        files = [url.toLocalFile() for url in event.mimeData().urls()]
        event.acceptProposedAction()
        self.files_dropped.emit(name, files)

    # --- an empty library says what to do -----------------------------------------------------

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.table.rowCount():
            return
        painter = QPainter(self.viewport())
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter,
                         "No machines yet.\nPress Ctrl+N to create one from a template.")
        painter.end()
