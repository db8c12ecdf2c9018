"""Console tabs: one per console of each machine, detachable, following the machine's life.

A `ConsoleSession` is one console (vm1:con0) shown in a `TerminalWidget`. It attaches
through the worker (`client.attach`, replaying the boot log from the start), reconnects
by itself when the machine comes back (a reboot keeps the worker and its pty, so the
socket stays; a halt and a new boot bring a new worker, so it attaches again), and on a
halt keeps the text and says "[machine halted]". Attaching runs off the GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QLabel, QMainWindow, QMenu, QMessageBox, QStackedWidget,
                               QTabWidget, QToolBar, QToolButton, QWidget)

from umlgui.gui.controller import MachineController
from umlgui.gui.icons import app_icon, icon, icon_path
from umlgui.gui.jobs import error_text, run_job
from umlgui.host.mconsole import DANGEROUS_SYSRQ
from umlgui.terminal.transport import SocketTransport
from umlgui.terminal.widget import TerminalWidget
from umlgui.worker import client
from umlgui.worker import state as st

RETRY_MS = 1500
MAX_RETRIES = 5
END_NOTES = {st.HALTED: "[machine halted]", st.KILLED: "[machine killed]",
             st.STOPPED: "[machine stopped]"}


def served_consoles(controller: MachineController, name: str) -> list[str]:
    """Consoles the worker serves for the machine (pty channels), con0 first."""
    row = controller.row(name)
    if row is None or row.machine is None:
        return ["con0"]
    machine = row.machine
    return [console for console in machine.console_names()
            if machine.consoles[console].channel == "pty"] or ["con0"]


class ConsoleSession(QObject):
    """One machine console in a terminal, attached through the machine's worker."""

    title_changed = Signal()

    def __init__(self, controller: MachineController, machine: str, console: str = "con0"):
        super().__init__()
        self.controller = controller
        self.machine = machine
        self.console = console
        self.terminal = TerminalWidget()
        self.terminal.setObjectName(f"terminal:{machine}:{console}")
        self.transport: SocketTransport | None = None
        self.worker_pid: int | None = None
        self.connecting = False
        self.closed = False
        self.retries = 0
        self.ended_note_shown = False
        self._retry_timer = QTimer(self, singleShot=True, interval=RETRY_MS)
        self._retry_timer.timeout.connect(lambda: self.connect_console(replay=False))
        self.terminal.title_changed.connect(lambda _title: self.title_changed.emit())
        self.terminal.send_key_requested.connect(self._send_key)
        controller.state_changed.connect(self._on_state_changed)

    @property
    def label(self) -> str:
        return f"{self.machine}:{self.console}"

    @property
    def title(self) -> str:
        """The guest's window title when it set one, else machine:console."""
        return self.terminal.title or self.label

    @property
    def connected(self) -> bool:
        return self.transport is not None and self.transport.is_open

    def text(self) -> str:
        """Everything the console showed, as plain text (scrollback and screen)."""
        self.terminal.flush()
        return self.terminal.model.all_text()

    # --- connecting -------------------------------------------------------------------

    def connect_console(self, replay: bool = True) -> None:
        if self.closed or self.connecting or self.connected:
            return
        row = self.controller.row(self.machine)
        if row is not None and not row.live:
            self.terminal.show_status(f"{self.machine} is not running: boot it (Ctrl+B) to connect")
            return
        self.connecting = True
        self.terminal.show_status(f"connecting to {self.label}…")
        columns, lines = self.terminal.model.columns, self.terminal.model.lines
        name, console = self.machine, self.console

        def attach(progress):
            worker = client.status(name).worker_pid
            return client.attach(name, console, replay=replay, cols=columns, rows=lines), worker

        run_job(self._job_parent(), f"Connecting to {self.label}", attach, on_done=self._attached,
                on_error=self._attach_failed, show_after_ms=5000, cancellable=False)

    def _job_parent(self) -> QWidget | None:
        # not the terminal: a closed tab deletes it, and a job must outlive its parent
        return self.controller.dialog_parent

    def _attached(self, result) -> None:
        sock, worker_pid = result
        self.connecting = False
        if self.closed:
            sock.close()
            return
        self.retries = 0
        self.worker_pid = worker_pid
        self.ended_note_shown = False
        self.transport = SocketTransport(sock, resize_callback=self._resize, parent=self)
        self.transport.closed.connect(self._on_transport_closed)
        self.terminal.clear_status()
        self.terminal.set_transport(self.transport)

    def _attach_failed(self, exc: BaseException) -> None:
        self.connecting = False
        if self.closed:
            return
        problem, fix = error_text(exc)
        live = self.controller.state_of(self.machine) in st.LIVE_STATES
        if live and self.retries < MAX_RETRIES:
            self.retries += 1
            self.terminal.show_status(f"cannot connect to {self.label} yet ({problem}); retrying…")
            self._retry_timer.start()
        else:
            self.terminal.show_status(f"cannot connect to {self.label}: {problem}"
                                      + (f" — {fix}" if fix else ""))

    def _resize(self, columns: int, lines: int) -> None:
        if not self.connected:
            return
        name, console = self.machine, self.console
        # the worker sets the pty size; a lost race with a halt is harmless, so errors are dropped
        run_job(self._job_parent(), "Resizing the console",
                lambda progress: client.resize(name, console, columns, lines),
                on_error=lambda exc: None, show_after_ms=60_000, cancellable=False)

    def _on_transport_closed(self) -> None:
        self.transport = None
        if self.closed:
            return
        # the worker ended (halt, crash, kill) or dropped us: the next poll tells which
        self.controller.refresh()
        QTimer.singleShot(700, self._after_disconnect)

    def _after_disconnect(self) -> None:
        if self.closed or self.connected or self.connecting:
            return
        state = self.controller.state_of(self.machine)
        if state in st.LIVE_STATES:
            if client.machine_state(self.machine).worker_pid == self.worker_pid:
                self._retry_timer.start()          # same worker: it only dropped the connection
            else:
                self.connect_console(replay=True)  # a new boot already: show it from the start
        else:
            self._show_end_note(state)

    def _show_end_note(self, state: str) -> None:
        if self.ended_note_shown:
            return
        self.ended_note_shown = True
        row = self.controller.row(self.machine)
        note = END_NOTES.get(state, f"[machine {state}]")
        if state == st.CRASHED and row and row.state.exit_code is not None:
            note = f"[machine crashed: exit status {row.state.exit_code}]"
        self.terminal.feed(f"\r\n\x1b[1;7m{note}\x1b[0m\r\n".encode())
        self.terminal.flush()
        self.terminal.show_status(f"{note[1:-1]} — boot it again (Ctrl+B) to reconnect")

    def _on_state_changed(self, name: str, old: str, new: str) -> None:
        if name != self.machine or self.closed:
            return
        if new in st.LIVE_STATES and old not in st.LIVE_STATES and not self.connected:
            self.connect_console(replay=True)     # a new boot: a new worker, a new log
        elif new not in st.LIVE_STATES and not self.connected and not self.connecting:
            self._show_end_note(new)

    # --- keys that go to the kernel, not the guest's tty ----------------------------------

    def _send_key(self, request: str) -> None:
        if request == "cad":
            self.controller.ctrl_alt_del(self.machine)
        elif request.startswith("sysrq:"):
            key = request.split(":", 1)[1]
            if key in DANGEROUS_SYSRQ and not confirm_dangerous_sysrq(self.terminal, self.machine, key):
                return
            self.controller.sysrq(self.machine, key)

    def close(self) -> None:
        self.closed = True
        self._retry_timer.stop()
        try:
            self.controller.state_changed.disconnect(self._on_state_changed)
        except (RuntimeError, TypeError):
            pass
        if self.transport is not None:
            transport, self.transport = self.transport, None
            transport.close()


def confirm_dangerous_sysrq(parent: QWidget, machine: str, key: str) -> bool:
    answer = QMessageBox.warning(
        parent, f"SysRq {key.upper()} on {machine}",
        f"SysRq {key.upper()} takes {machine} down: {DANGEROUS_SYSRQ[key]}\n\nSend it anyway?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Yes


class DetachedConsoleWindow(QMainWindow):
    """A console in a window of its own; "Dock" puts it back, closing it closes the console."""

    def __init__(self, area: "ConsoleArea", session: ConsoleSession):
        super().__init__(area.window())
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.area = area
        self.session = session
        self.docking = False
        self.setWindowIcon(app_icon())
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        bar = QToolBar("Console", self)
        bar.setMovable(False)
        bar.addAction(icon("detach"), "Dock into the main window", self.dock)
        bar.addAction(icon("cad"), "Send Ctrl+Alt+Del",
                      lambda: session.controller.ctrl_alt_del(session.machine))
        self.addToolBar(bar)
        self.setCentralWidget(session.terminal)
        session.title_changed.connect(self._retitle)
        self._retitle()
        self.resize(session.terminal.sizeHint().expandedTo(session.terminal.size()))

    def _retitle(self) -> None:
        self.setWindowTitle(f"{self.session.title} — umlgui")

    def dock(self) -> None:
        self.docking = True
        self.takeCentralWidget()
        self.area.dock(self.session)
        self.close()

    def closeEvent(self, event) -> None:
        if not self.docking:
            self.area.forget(self.session)
        super().closeEvent(event)


class ConsoleArea(QStackedWidget):
    """The console tabs, with a hint in their place while there are none."""

    def __init__(self, controller: MachineController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.sessions: dict[tuple[str, str], ConsoleSession] = {}
        self.windows: dict[tuple[str, str], DetachedConsoleWindow] = {}
        self.hint = QLabel("Consoles appear here.\n\nBoot a machine (Ctrl+B), or double-click a "
                           "running one, to see its console.", self)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setObjectName("consoleHint")
        self.hint.setEnabled(False)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("consoleTabs")
        self.tabs.setTabsClosable(True)
        self.tabs.setMovable(True)
        self.tabs.setDocumentMode(True)
        # the style's own close button is a red box on bare X11; ours matches the icon set
        self.tabs.setStyleSheet(
            f"QTabBar::close-button {{ image: url({icon_path('close').as_posix()}); }}"
            f"QTabBar::close-button:hover {{ image: url({icon_path('close-hover').as_posix()}); }}")
        self.tabs.tabCloseRequested.connect(lambda index: self.close_tab(index))
        self.tabs.tabBar().setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tabs.tabBar().customContextMenuRequested.connect(self._tab_menu)
        self.tabs.currentChanged.connect(lambda _index: self._update_page())
        self.tabs.setCornerWidget(self._corner_buttons(), Qt.Corner.TopRightCorner)
        self.addWidget(self.hint)
        self.addWidget(self.tabs)
        controller.machines_changed.connect(self._drop_deleted_machines)
        self._update_page()

    def _corner_buttons(self) -> QWidget:
        detach = QToolButton(self)
        detach.setIcon(icon("detach"))
        detach.setToolTip("Move this console into a window of its own")
        detach.setAutoRaise(True)
        detach.clicked.connect(lambda: self.detach(self.current_session()))
        return detach

    # --- opening and finding consoles -------------------------------------------------------

    def open_console(self, machine: str, console: str = "con0", focus: bool = True) -> ConsoleSession:
        """Show the console (creating its tab and connecting), or bring it forward."""
        key = (machine, console)
        session = self.sessions.get(key)
        if session is None:
            session = ConsoleSession(self.controller, machine, console)
            self.sessions[key] = session
            session.title_changed.connect(lambda session=session: self._retitle(session))
            self._add_tab(session)
            session.connect_console(replay=True)
        if focus:
            self.show_session(session)
        return session

    def session(self, machine: str, console: str = "con0") -> ConsoleSession | None:
        return self.sessions.get((machine, console))

    def current_session(self) -> ConsoleSession | None:
        widget = self.tabs.currentWidget()
        return next((s for s in self.sessions.values() if s.terminal is widget), None)

    def show_session(self, session: ConsoleSession) -> None:
        window = self.windows.get((session.machine, session.console))
        if window is not None:
            window.show()
            window.raise_()
            window.activateWindow()
        else:
            self.tabs.setCurrentWidget(session.terminal)
        session.terminal.setFocus()

    def _add_tab(self, session: ConsoleSession) -> None:
        index = self.tabs.addTab(session.terminal, icon("console"), session.title)
        self.tabs.setTabToolTip(index, f"{session.label} — right-click for more")
        self._update_page()

    def _retitle(self, session: ConsoleSession) -> None:
        index = self.tabs.indexOf(session.terminal)
        if index >= 0:
            self.tabs.setTabText(index, session.title)

    def _update_page(self) -> None:
        self.setCurrentWidget(self.tabs if self.tabs.count() else self.hint)

    # --- closing ------------------------------------------------------------------------

    def close_tab(self, index: int) -> None:
        widget = self.tabs.widget(index)
        session = next((s for s in self.sessions.values() if s.terminal is widget), None)
        self.tabs.removeTab(index)
        if session is not None:
            self.forget(session)
        self._update_page()

    def close_console(self, machine: str, console: str = "con0") -> None:
        session = self.sessions.get((machine, console))
        if session is None:
            return
        window = self.windows.get((machine, console))
        if window is not None:
            window.close()
        else:
            self.close_tab(self.tabs.indexOf(session.terminal))

    def forget(self, session: ConsoleSession) -> None:
        key = (session.machine, session.console)
        self.sessions.pop(key, None)
        self.windows.pop(key, None)
        session.close()
        session.terminal.deleteLater()
        session.deleteLater()

    def close_all(self) -> None:
        for machine, console in list(self.sessions):
            self.close_console(machine, console)

    def _drop_deleted_machines(self) -> None:
        known = set(self.controller.names())
        for machine, console in list(self.sessions):
            if machine not in known:
                self.close_console(machine, console)

    # --- detaching into windows ---------------------------------------------------------

    def detach(self, session: ConsoleSession | None) -> DetachedConsoleWindow | None:
        if session is None:
            return None
        key = (session.machine, session.console)
        if key in self.windows:
            return self.windows[key]
        self.tabs.removeTab(self.tabs.indexOf(session.terminal))
        self._update_page()
        window = DetachedConsoleWindow(self, session)
        self.windows[key] = window
        window.show()
        session.terminal.setFocus()
        return window

    def dock(self, session: ConsoleSession) -> None:
        self.windows.pop((session.machine, session.console), None)
        self._add_tab(session)
        self.show_session(session)

    # --- the tab's menu ---------------------------------------------------------------------

    def build_tab_menu(self, session: ConsoleSession) -> QMenu:
        menu = QMenu(self)
        menu.addAction(icon("detach"), "Detach into a window", lambda: self.detach(session))
        others = menu.addMenu(icon("console"), f"Open another console of {session.machine}")
        for console in served_consoles(self.controller, session.machine):
            action = others.addAction(console, lambda console=console:
                                      self.open_console(session.machine, console))
            action.setEnabled((session.machine, console) not in self.sessions)
        menu.addAction(icon("cad"), "Send Ctrl+Alt+Del",
                       lambda: self.controller.ctrl_alt_del(session.machine))
        menu.addSeparator()
        close = QAction("Close console", menu)
        close.setShortcut(QKeySequence("Ctrl+W"))
        close.triggered.connect(lambda: self.close_console(session.machine, session.console))
        menu.addAction(close)
        return menu

    def _tab_menu(self, position) -> None:
        index = self.tabs.tabBar().tabAt(position)
        widget = self.tabs.widget(index)
        session = next((s for s in self.sessions.values() if s.terminal is widget), None)
        if session is None:
            return
        menu = self.build_tab_menu(session)
        menu.exec(self.tabs.tabBar().mapToGlobal(position))
        menu.deleteLater()

