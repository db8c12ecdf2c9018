"""The main window: the machine library on top, console tabs below, actions everywhere.

Actions act on the machine selected in the list (GNS3's object-first rule); menus,
toolbar, right-click menus and shortcuts all share the same `QAction`s, whose enabled
state follows the selected machine's state. Shortcuts follow GNS3 and GNOME Boxes
(GUI-ANCHORS.md §7.2): Ctrl+N new, Ctrl+B boot, Ctrl+E halt, Ctrl+J pause, F2 rename,
Del delete, F11 full screen, Ctrl+Q quit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QInputDialog, QLabel,
                               QMainWindow, QMenu, QMessageBox, QSplitter, QTableWidget,
                               QTableWidgetItem, QToolBar, QVBoxLayout)

from umlgui import __version__
from umlgui.gui.console_area import ConsoleArea, served_consoles
from umlgui.gui.controller import MachineController
from umlgui.errors import UmlguiError
from umlgui.gui.icons import app_icon, icon
from umlgui.gui.jobs import show_error
from umlgui.gui.machine_list import MachineListView
from umlgui.gui.wizard import NewMachineWizard
from umlgui.model.units import human_size
from umlgui.worker import state as st

WINDOW_TITLE = "umlgui — User-Mode Linux machines"


@dataclass(frozen=True)
class ActionSpec:
    key: str
    text: str
    icon: str
    shortcut: str = ""
    tip: str = ""


ACTIONS = (
    ActionSpec("new", "&New Machine…", "new", "Ctrl+N", "Create a machine from a template, an image or a command line"),
    ActionSpec("boot", "&Boot", "boot", "Ctrl+B", "Boot the selected machine"),
    ActionSpec("halt", "&Halt", "halt", "Ctrl+E", "Sync the disks and halt the machine"),
    ActionSpec("reboot", "&Reboot", "reboot", "Ctrl+R", "Sync the disks and reboot the machine"),
    ActionSpec("cad", "Send Ctrl+Alt+&Del", "cad", "", "Send Ctrl+Alt+Del (mconsole cad): init decides"),
    ActionSpec("pause", "&Pause", "pause", "Ctrl+J", "Freeze the machine (mconsole stop); again to resume"),
    ActionSpec("kill", "&Kill", "kill", "", "Kill the machine's processes at once (no sync)"),
    ActionSpec("console", "&Console", "console", "Ctrl+T", "Open the machine's console (con0)"),
    ActionSpec("attach", "Attach Disk &Image…", "disk", "", "Attach an image as the next free ubd (hot-plugged when running)"),
    ActionSpec("clone", "&Clone…", "clone", "Ctrl+D", "Copy the stopped machine, with its own disks"),
    ActionSpec("rename", "Re&name…", "rename", "F2", "Rename the stopped machine"),
    ActionSpec("delete", "&Delete…", "delete", "Del", "Delete the machine and its own disks"),
    ActionSpec("settings", "&Settings…", "settings", "Alt+Return", "Memory, disks, consoles, network"),
    ActionSpec("quit", "&Quit", "quit", "Ctrl+Q", "Quit; running machines may keep running"),
    ActionSpec("fullscreen", "&Full Screen", "fullscreen", "F11", "Full screen"),
    ActionSpec("detach", "&Detach Console", "detach", "Ctrl+Shift+D", "Move the console into a window of its own"),
    ActionSpec("close_console", "Close C&onsole", "", "Ctrl+W", "Close the current console tab"),
    ActionSpec("refresh", "&Refresh", "", "F5", "Read the machines' states now"),
    ActionSpec("shortcuts", "&Keyboard Shortcuts", "help", "Ctrl+?", "All shortcuts"),
    ActionSpec("about", "&About umlgui", "", "", ""),
)

# What each action needs of the selected machine's state
NEEDS_STOPPED = {"boot", "clone", "rename", "delete"}
NEEDS_LIVE = {"console", "kill", "halt", "reboot"}   # the worker resumes a paused one first
NEEDS_RUNNING = {"cad"}                         # live and not paused (UML's stop/go hazard)
NEEDS_MACHINE = {"attach", "settings"}


def load_settings_dialog():
    """The per-machine settings dialog, if that part of umlgui is installed."""
    try:
        from umlgui.widgets.settings import MachineSettingsDialog
    except ImportError:
        return None
    return MachineSettingsDialog


class MainWindow(QMainWindow):
    def __init__(self, controller: MachineController | None = None, settings: QSettings | None = None):
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle(WINDOW_TITLE)
        self.setWindowIcon(app_icon())
        self.settings = settings if settings is not None else QSettings("umlgui", "window")
        self.controller = controller or MachineController(self)
        self.controller.dialog_parent = self
        self.wizard: NewMachineWizard | None = None
        self.settings_dialog = None
        self.quit_box: QMessageBox | None = None
        self.quitting = False
        self._select_when_listed = ""

        self.machine_list = MachineListView(self.controller, self)
        self.consoles = ConsoleArea(self.controller, self)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(self.machine_list)
        self.splitter.addWidget(self.consoles)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([220, 540])
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)

        self._side_windows: list = []
        self.actions = self._make_actions()
        self._make_menus()
        self._make_toolbar()
        self._make_status_bar()
        self._connect()
        self.update_actions()
        self.resize(1280, 800)
        self._restore_geometry()
        self.controller.start()

    # --- building ------------------------------------------------------------------------

    def _make_actions(self) -> dict[str, QAction]:
        slots = {
            "new": self.new_machine, "boot": self.boot_selected, "halt": self.halt_selected,
            "reboot": self.reboot_selected, "cad": self.ctrl_alt_del_selected,
            "pause": self.toggle_pause_selected, "kill": self.kill_selected,
            "console": self.console_selected, "attach": self.attach_image_selected,
            "clone": self.clone_selected, "rename": self.rename_selected,
            "delete": self.delete_selected, "settings": self.settings_selected,
            "quit": self.close, "fullscreen": self.toggle_full_screen,
            "detach": lambda: self.consoles.detach(self.consoles.current_session()),
            "close_console": self.close_current_console, "refresh": self.controller.refresh,
            "shortcuts": self.show_shortcuts, "about": self.show_about,
        }
        actions = {}
        for spec in ACTIONS:
            action = QAction(icon(spec.icon) if spec.icon else QIcon(), spec.text, self)
            action.setObjectName(f"action_{spec.key}")
            if spec.shortcut:
                action.setShortcut(QKeySequence(spec.shortcut))
            tip = spec.tip + (f" ({spec.shortcut})" if spec.shortcut else "")
            action.setToolTip(tip or spec.text.replace("&", "").rstrip("…"))
            action.setStatusTip(spec.tip)
            action.triggered.connect(slots[spec.key])
            self.addAction(action)          # shortcuts work with the menu bar hidden too
            actions[spec.key] = action
        actions["fullscreen"].setCheckable(True)
        return actions

    def _make_menus(self) -> None:
        bar = self.menuBar()
        a = self.actions
        machine = bar.addMenu("&Machine")
        for key in ("new", None, "boot", "halt", "reboot", "pause", "cad", "kill", None,
                    "console", "attach", "settings", None, "clone", "rename", "delete", None, "quit"):
            machine.addSeparator() if key is None else machine.addAction(a[key])
        console = bar.addMenu("&Console")
        self.open_console_menu = console.addMenu(icon("console"), "&Open Console")
        self.open_console_menu.aboutToShow.connect(self._fill_open_console_menu)
        console.addAction(a["detach"])
        console.addAction(a["close_console"])
        view = bar.addMenu("&View")
        self.toolbar_toggle = QAction("&Toolbar", self, checkable=True, checked=True)
        view.addAction(self.toolbar_toggle)
        view.addAction(a["fullscreen"])
        view.addAction(a["refresh"])
        labs = bar.addMenu("&Labs")
        labs.addAction("&New Lab…", self.new_lab)
        self.open_lab_menu = labs.addMenu("&Open Lab")
        self.open_lab_menu.aboutToShow.connect(self._fill_open_lab_menu)
        labs.addAction("&Import Netkit Lab…", self.import_netkit_lab)
        tools = bar.addMenu("&Tools")
        self.monitor_action = tools.addAction("&Syscall Monitor (tt engine)", self.syscall_monitor_selected)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(a["shortcuts"])
        help_menu.addAction(a["about"])

    def _make_toolbar(self) -> None:
        bar = QToolBar("Machine", self)
        bar.setObjectName("machineToolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        for key in ("new", None, "boot", "halt", "reboot", "pause", "kill", None, "console",
                    None, "clone", "delete", "settings"):
            bar.addSeparator() if key is None else bar.addAction(self.actions[key])
        self.addToolBar(bar)
        self.toolbar = bar
        self.toolbar_toggle.toggled.connect(bar.setVisible)

    def _make_status_bar(self) -> None:
        self.summary = QLabel(self)
        self.summary.setObjectName("statusSummary")
        self.statusBar().addPermanentWidget(self.summary)
        self.statusBar().showMessage("Ready", 3000)

    def _connect(self) -> None:
        c = self.controller
        c.machines_changed.connect(self._on_machines_changed)
        c.machine_updated.connect(self._on_machine_updated)
        c.state_changed.connect(self._on_state_changed)
        c.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        c.loaded.connect(self.reattach_consoles)
        lst = self.machine_list
        lst.current_machine_changed.connect(lambda _name: self.update_actions())
        lst.machine_activated.connect(self.activate_machine)
        lst.context_menu_requested.connect(self.show_context_menu)
        lst.files_dropped.connect(self.attach_files)
        self.consoles.tabs.currentChanged.connect(self._follow_console_tab)

    # --- state of the actions ---------------------------------------------------------------

    def selected(self) -> str:
        return self.machine_list.current_name()

    def update_actions(self) -> None:
        name = self.selected()
        row = self.controller.row(name) if name else None
        state = row.state.state if row else None
        live = state in st.LIVE_STATES
        stopped = row is not None and not live
        enabled = {
            **{key: stopped for key in NEEDS_STOPPED},
            **{key: live for key in NEEDS_LIVE},
            **{key: live and state != st.PAUSED for key in NEEDS_RUNNING},
            **{key: row is not None for key in NEEDS_MACHINE},
            "pause": state in (st.RUNNING, st.BOOTING, st.PAUSED),
            "detach": self.consoles.current_session() is not None,
            "close_console": self.consoles.current_session() is not None,
        }
        if state == st.CRASHED:
            enabled["kill"] = True        # a dead worker can leave its kernel running
        if row is not None and row.machine is None:
            enabled.update(boot=False, clone=False, rename=False, settings=False, attach=False)
        for key, value in enabled.items():
            self.actions[key].setEnabled(value)
        self.monitor_action.setEnabled(bool(row and row.machine and row.machine.engine == "tt"))
        pause = self.actions["pause"]
        paused = state == st.PAUSED
        pause.setText("&Resume" if paused else "&Pause")
        pause.setIcon(icon("resume" if paused else "pause"))
        pause.setToolTip(("Let the machine run again (mconsole go)" if paused
                          else "Freeze the machine (mconsole stop)") + " (Ctrl+J)")

    def _on_machine_updated(self, name: str) -> None:
        if name == self.selected():
            self.update_actions()
        self._update_summary()

    def _on_machines_changed(self) -> None:
        if self._select_when_listed and self._select_when_listed in self.controller.rows:
            self.machine_list.select_name(self._select_when_listed)
            self._select_when_listed = ""
        self.update_actions()
        self._update_summary()

    def _on_state_changed(self, name: str, old: str, new: str) -> None:
        row = self.controller.row(name)
        if new == st.CRASHED and row is not None:
            detail = row.state.message or f"exit status {row.state.exit_code}"
            self.statusBar().showMessage(f"{name} crashed: {detail}", 15000)
        else:
            self.statusBar().showMessage(f"{name} is {new}", 5000)
        self.update_actions()

    def _update_summary(self) -> None:
        rows = self.controller.rows.values()
        live = [row for row in rows if row.live]
        cpu = sum(row.cpu or 0 for row in live)
        rss = sum(row.rss or 0 for row in live)
        text = f"{len(live)} of {len(rows)} machines running"
        if live:
            text += f"  ·  host CPU {cpu:.0f} %  ·  {human_size(rss)}"
        self.summary.setText(text)

    def _follow_console_tab(self) -> None:
        session = self.consoles.current_session()
        if session is not None and session.machine != self.selected():
            self.machine_list.select_name(session.machine)
        self.update_actions()

    # --- actions on the selected machine ------------------------------------------------------

    def new_machine(self) -> NewMachineWizard:
        if self.wizard is not None and self.wizard.isVisible():
            self.wizard.raise_()
            return self.wizard
        self.wizard = NewMachineWizard(self)
        self.wizard.created.connect(self._machine_created)
        self.wizard.open()
        return self.wizard

    def _machine_created(self, name: str, boot_now: bool) -> None:
        self._select_when_listed = name
        self.controller.refresh()
        if boot_now:
            self.boot(name)

    def boot(self, name: str) -> None:
        self.controller.boot(name, on_done=lambda _state: self.consoles.open_console(name))

    def boot_selected(self) -> None:
        if self.selected():
            self.boot(self.selected())

    def halt_selected(self) -> None:
        if self.selected():
            self.controller.halt(self.selected())

    def reboot_selected(self) -> None:
        if self.selected():
            self.controller.reboot(self.selected())

    def ctrl_alt_del_selected(self) -> None:
        if self.selected():
            self.controller.ctrl_alt_del(self.selected())

    def toggle_pause_selected(self) -> None:
        name = self.selected()
        if not name:
            return
        if self.controller.state_of(name) == st.PAUSED:
            self.controller.resume(name)
        else:
            self.controller.pause(name)

    def kill_selected(self) -> None:
        name = self.selected()
        if name and self._confirm(f"Kill {name}?",
                                  f"{name}'s processes are killed at once: nothing is synced, "
                                  "and files the guest was writing may be damaged.", "Kill"):
            self.controller.kill(name)

    def console_selected(self) -> None:
        if self.selected():
            self.consoles.open_console(self.selected())

    def close_current_console(self) -> None:
        session = self.consoles.current_session()
        if session is not None:
            self.consoles.close_console(session.machine, session.console)

    def attach_image_selected(self) -> None:
        name = self.selected()
        if not name:
            return
        files, _ = QFileDialog.getOpenFileNames(self, f"Attach disk images to {name}", "",
                                                "Disk images (*.img *.ext4 *.raw *.cow);;All files (*)")
        if files:
            self.attach_files(name, files)

    def attach_files(self, name: str, files: list) -> None:
        self.controller.attach_images(name, [str(f) for f in files])

    def clone_selected(self) -> None:
        name = self.selected()
        if not name:
            return
        new_name, ok = QInputDialog.getText(self, f"Clone {name}", "Name of the copy:",
                                            text=self._free_name(f"{name}-copy"))
        if ok and new_name.strip():
            target = new_name.strip()
            self.controller.clone(name, target, on_done=lambda _m: self._select_later(target))

    def rename_selected(self) -> None:
        name = self.selected()
        if not name:
            return
        new_name, ok = QInputDialog.getText(self, f"Rename {name}", "New name:", text=name)
        if ok and new_name.strip() and new_name.strip() != name:
            target = new_name.strip()
            self.controller.rename(name, target, on_done=lambda _m: self._select_later(target))

    def delete_selected(self) -> None:
        name = self.selected()
        if name and self._confirm(f"Delete {name}?",
                                  f"{name}'s definition, its own disks (copy-on-write layers) and "
                                  "its logs are deleted. Template bases and images you attached "
                                  "from elsewhere are kept.", "Delete"):
            self.controller.delete(name)

    def settings_selected(self) -> None:
        if self.selected():
            self.open_settings(self.selected())

    def open_settings(self, name: str) -> None:
        dialog_class = load_settings_dialog()
        if dialog_class is None:
            box = QMessageBox(QMessageBox.Icon.Information, f"{name} settings",
                              "The settings dialog is not part of this build.",
                              QMessageBox.StandardButton.Ok, self)
            box.setInformativeText(f"See the machine with: umlgui show {name}")
            box.open()
            return
        if self.settings_dialog is not None and self.settings_dialog.isVisible() \
                and getattr(self.settings_dialog, "name", None) == name:
            self.settings_dialog.raise_()
            return
        try:
            self.settings_dialog = dialog_class(name, self)
        except UmlguiError as exc:
            show_error(self, f"{name} settings", exc)
            return
        if hasattr(self.settings_dialog, "machineChanged"):
            self.settings_dialog.machineChanged.connect(lambda _name: self.controller.refresh())
        self.settings_dialog.finished.connect(lambda _result: self.controller.refresh())
        self.settings_dialog.open()

    def activate_machine(self, name: str) -> None:
        """Double-click: the console of a running machine, the settings of a stopped one."""
        if self.controller.state_of(name) in st.LIVE_STATES:
            self.consoles.open_console(name)
        else:
            self.open_settings(name)

    def show_context_menu(self, name: str, position) -> None:
        menu = self.build_context_menu(name)
        menu.exec(position)
        menu.deleteLater()

    def build_context_menu(self, name: str) -> QMenu:
        menu = QMenu(self)
        a = self.actions
        if not name:
            menu.addAction(a["new"])
            return menu
        self.update_actions()
        live = self.controller.state_of(name) in st.LIVE_STATES
        keys = (["console", None, "pause", "reboot", "cad", "halt", "kill", None, "attach", "settings"]
                if live else
                ["boot", None, "settings", "attach", None, "clone", "rename", "delete"])
        if live:
            consoles = served_consoles(self.controller, name)
            if len(consoles) > 1:
                more = QMenu("Open Console", menu)
                for console in consoles:
                    more.addAction(console, lambda console=console: self.consoles.open_console(name, console))
                keys.insert(1, more)
        for key in keys:
            if key is None:
                menu.addSeparator()
            elif isinstance(key, QMenu):
                menu.addMenu(key)
            else:
                menu.addAction(a[key])
        return menu

    # --- labs and tools (each in its own window, so their shortcuts never clash with ours) ---

    def new_lab(self) -> None:
        from umlgui.model import lab as labs

        name, ok = QInputDialog.getText(self, "New Lab", "Lab name:")
        if ok and name.strip():
            try:
                labs.create(name.strip())
            except UmlguiError as exc:
                show_error(self, "New Lab", exc)
                return
            self.open_lab(name.strip())

    def _fill_open_lab_menu(self) -> None:
        from umlgui.model import lab as labs

        self.open_lab_menu.clear()
        names = labs.list_names()
        for name in names:
            self.open_lab_menu.addAction(name, lambda name=name: self.open_lab(name))
        if not names:
            self.open_lab_menu.addAction("(no labs yet)").setEnabled(False)

    def import_netkit_lab(self) -> None:
        from umlgui.net import netkit

        directory = QFileDialog.getExistingDirectory(self, "Import a Netkit or Kathará lab (the folder with lab.conf)")
        if not directory:
            return
        try:
            lab, warnings = netkit.import_lab(Path(directory))
        except UmlguiError as exc:
            show_error(self, "Import Netkit Lab", exc)
            return
        if warnings:
            self.statusBar().showMessage("; ".join(warnings), 10000)
        self.open_lab(lab.name)

    def open_lab(self, name: str) -> None:
        from umlgui.widgets.topology.window import TopologyWindow

        window = TopologyWindow(name)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._side_windows.append(window)
        window.destroyed.connect(lambda *_: self._forget_window(window))
        window.show()

    def syscall_monitor_selected(self) -> None:
        from umlgui.widgets.syscall_monitor import SyscallMonitorPanel

        name = self.selected()
        if not name:
            return
        panel = SyscallMonitorPanel(name)
        panel.setWindowTitle(f"{name} — syscall monitor")
        panel.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        panel.resize(1100, 600)
        self._side_windows.append(panel)
        panel.destroyed.connect(lambda *_: self._forget_window(panel))
        panel.show()

    def _forget_window(self, window) -> None:
        if window in self._side_windows:
            self._side_windows.remove(window)

    def _fill_open_console_menu(self) -> None:
        menu = self.open_console_menu
        menu.clear()
        live = self.controller.live_names()
        if not live:
            menu.addAction("No machine is running").setEnabled(False)
        for name in live:
            for console in served_consoles(self.controller, name):
                menu.addAction(f"{name}:{console}",
                               lambda name=name, console=console: self.consoles.open_console(name, console))

    def reattach_consoles(self) -> None:
        """On start: machines left running by an earlier session get their consoles back."""
        self._update_summary()
        for name in self.controller.live_names():
            self.consoles.open_console(name, focus=False)
        names = self.controller.names()
        if names and not self.selected():
            self.machine_list.select_name(names[0])
        live = self.controller.live_names()
        if live:
            self.statusBar().showMessage(f"Reattached to {', '.join(live)}", 6000)

    def _select_later(self, name: str) -> None:
        self._select_when_listed = name
        self.controller.refresh()

    def _free_name(self, stem: str) -> str:
        names = set(self.controller.names())
        if stem not in names:
            return stem
        number = 2
        while f"{stem}{number}" in names:
            number += 1
        return f"{stem}{number}"

    def _confirm(self, title: str, text: str, verb: str) -> bool:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("confirmBox")
        yes = box.addButton(verb, QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is yes

    # --- window ------------------------------------------------------------------------------

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()
        self.actions["fullscreen"].setChecked(self.isFullScreen())

    def show_shortcuts(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle("Keyboard shortcuts")
        table = QTableWidget(0, 2, dialog)
        table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        table.verticalHeader().hide()
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        rows = [(spec.text.replace("&", "").rstrip("…"), spec.shortcut) for spec in ACTIONS if spec.shortcut]
        rows += [("Next / previous console tab", "Ctrl+PgDown / Ctrl+PgUp"),
                 ("Copy / paste in a console", "Ctrl+Shift+C / Ctrl+Shift+V"),
                 ("Find in a console", "Ctrl+Shift+F"),
                 ("Open console or settings", "Double-click / Enter")]
        for action, keys in rows:
            row = table.rowCount()
            table.insertRow(row)
            table.setItem(row, 0, QTableWidgetItem(action))
            table.setItem(row, 1, QTableWidgetItem(keys))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, dialog)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(table)
        layout.addWidget(buttons)
        dialog.resize(460, 560)
        dialog.open()

    def show_about(self) -> None:
        QMessageBox.about(self, "About umlgui",
                          f"<b>umlgui {__version__}</b><p>A desktop manager for User-Mode Linux "
                          "virtual machines.</p><p>Machines keep running when the window closes; "
                          "reopen it to reattach.</p>")

    def _restore_geometry(self) -> None:
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = self.settings.value("splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def closeEvent(self, event) -> None:
        """Quitting asks whether running machines stay up (they outlive the window) or halt."""
        live = self.controller.live_names()
        if self.quitting or not live:
            self._shut_down()
            event.accept()
            return
        choice = self.ask_how_to_quit(live)
        if choice == "leave":
            self._shut_down()
            event.accept()
        elif choice == "halt":
            event.ignore()
            self.controller.halt_all(on_done=lambda _result: self._quit_now())
        else:
            event.ignore()

    def ask_how_to_quit(self, live: list[str]) -> str:
        """"leave", "halt" or "cancel"."""
        names = ", ".join(live)
        box = QMessageBox(QMessageBox.Icon.Question, "Quit umlgui",
                          f"{len(live)} machine{'s are' if len(live) > 1 else ' is'} still running: {names}.",
                          QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("quitBox")
        box.setInformativeText("Running machines keep running without the window; open umlgui "
                               "again to get their consoles back.")
        leave = box.addButton("Leave Running", QMessageBox.ButtonRole.AcceptRole)
        halt = box.addButton("Halt All", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(leave)
        self.quit_box = box
        box.exec()
        self.quit_box = None
        clicked = box.clickedButton()
        return "leave" if clicked is leave else "halt" if clicked is halt else "cancel"

    def _quit_now(self) -> None:
        self.quitting = True
        QTimer.singleShot(0, self.close)

    def _shut_down(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("splitter", self.splitter.saveState())
        self.consoles.close_all()
        self.controller.stop()

