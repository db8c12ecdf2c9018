"""The topology editor: a lab drawn on a canvas, edited with undo, run from the canvas.

    editor = TopologyEditor("demo", parent)
    editor.console_requested.connect(open_console)        # library machine name
    editor.properties_requested.connect(open_settings)    # library machine name

Every edit works on a copy of the lab and is pushed on the undo stack as a before/after
pair, so undo and redo are exact and the scene is always redrawn from the model. The lab file
is saved after each change (save-as-you-go). When a change adds or removes a link of a
running machine, the card is hot-plugged or removed through mconsole.
"""

from __future__ import annotations

import copy
from typing import Callable

from PySide6.QtCore import QPoint, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPixmap, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (QHBoxLayout, QInputDialog, QLabel, QMenu, QMessageBox, QSplitter,
                               QToolBar, QVBoxLayout, QWidget)

from umlgui.errors import StateError, UmlguiError
from umlgui.gui.jobs import run_job, show_error
from umlgui.model import lab as labs
from umlgui.model import library
from umlgui.model.lab import Lab, Link, Node
from umlgui.net import lab_runner
from umlgui.widgets.topology.dialogs import ImpairDialog, NodeDialog
from umlgui.widgets.topology.items import LinkItem, NodeItem, snap
from umlgui.widgets.topology.poller import LabPoller, LabSnapshot
from umlgui.widgets.topology.view import Palette, TopologyScene, TopologyView
from umlgui.worker import state as st

NAME_STEMS = {labs.MACHINE: "pc", labs.SWITCH: "sw", labs.HUB: "hub", labs.HOST: "host",
              labs.INTERNET: "net"}


class LabEdit(QUndoCommand):
    """One edit as the lab before and after it; optional side effects run with it."""

    def __init__(self, editor: "TopologyEditor", text: str, before: Lab, after: Lab,
                 on_redo: Callable[[], None] | None = None, on_undo: Callable[[], None] | None = None):
        super().__init__(text)
        self.editor, self.before, self.after = editor, before, after
        self.on_redo, self.on_undo = on_redo, on_undo

    def redo(self) -> None:
        if self.on_redo:
            self.on_redo()
        self.editor.show_lab(copy.deepcopy(self.after))

    def undo(self) -> None:
        if self.on_undo:
            self.on_undo()
        self.editor.show_lab(copy.deepcopy(self.before))


class TopologyEditor(QWidget):
    console_requested = Signal(str)         # library machine name
    properties_requested = Signal(str)      # library machine name
    status_message = Signal(str)

    def __init__(self, lab_name: str, parent: QWidget | None = None, poll_interval: float = 1.0):
        super().__init__(parent)
        self.setObjectName("topologyEditor")
        self.lab = labs.load(lab_name) if labs.exists(lab_name) else labs.create(lab_name)
        self.states: dict[str, str] = {}
        self.node_items: dict[str, NodeItem] = {}
        self.link_items: dict[tuple[str, str], LinkItem] = {}
        self.undo_stack = QUndoStack(self)
        self.scene = TopologyScene(self)
        self.view = TopologyView(self.scene, self)
        self.view.setObjectName("topologyView")
        self.palette = Palette(_templates(), self)
        self.status = QLabel(self)
        self.status.setObjectName("topologyStatus")
        self._build_actions()
        self._build_layout()
        self._connect_view()
        self.show_lab(self.lab, save=False)
        self._reported_capture_failures: dict[str, str] = {}
        self.poller = LabPoller(self.lab, poll_interval)
        self.poller.polled.connect(self._on_polled)
        self.poller.start()
        QTimer.singleShot(0, self.view.fit_all)

    # --- layout and actions ---------------------------------------------------------------

    def _build_actions(self) -> None:
        self.actions_by_name: dict[str, QAction] = {}
        specs = [
            ("boot_all", "Boot all", "Ctrl+B", self.boot_all, "Boot every machine, switches first, in waves"),
            ("halt_all", "Halt all", "Ctrl+E", self.halt_all, "Halt every machine, then stop the switches"),
            ("link_mode", "Link", "Ctrl+L", None, "Draw links: drag from a machine to a switch (or hold Shift)"),
            ("undo", "Undo", QKeySequence.StandardKey.Undo, self.undo_stack.undo, "Undo the last edit"),
            ("redo", "Redo", "Ctrl+Shift+Z", self.undo_stack.redo, "Redo"),
            ("delete", "Delete", QKeySequence.StandardKey.Delete, self.delete_selected, "Delete the selection"),
            ("rename", "Rename", "F2", self.rename_selected, "Rename the selected node"),
            ("select_all", "Select all", "Ctrl+A", self._select_all, "Select every node and link"),
            ("zoom_in", "Zoom in", QKeySequence.StandardKey.ZoomIn, lambda: self.view.zoom_by(1.25), None),
            ("zoom_out", "Zoom out", QKeySequence.StandardKey.ZoomOut, lambda: self.view.zoom_by(0.8), None),
            ("zoom_reset", "100 %", "Ctrl+0", lambda: self.view.set_zoom(1.0), "Actual size"),
            ("fit", "Fit", "Ctrl+1", self.view.fit_all, "Fit the whole lab in the view"),
            ("snap", "Snap to grid", None, None, "Keep nodes on the grid"),
        ]
        for name, text, shortcut, slot, tip in specs:
            action = QAction(text, self)
            action.setObjectName(f"topology_{name}")
            if shortcut:
                action.setShortcut(QKeySequence(shortcut))
                # the editor may be a tab of the main window: its keys act only while it has focus
                action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            if tip:
                action.setToolTip(f"{tip} ({action.shortcut().toString()})" if shortcut else tip)
            if slot:
                action.triggered.connect(lambda checked=False, slot=slot: slot())
            self.addAction(action)
            self.actions_by_name[name] = action
        self.actions_by_name["redo"].setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        link = self.actions_by_name["link_mode"]
        link.setCheckable(True)
        link.toggled.connect(self._set_link_mode)
        snap_action = self.actions_by_name["snap"]
        snap_action.setCheckable(True)
        snap_action.setChecked(True)
        snap_action.toggled.connect(lambda on: setattr(self.scene, "snap_to_grid", on))
        self.undo_stack.canUndoChanged.connect(self.actions_by_name["undo"].setEnabled)
        self.undo_stack.canRedoChanged.connect(self.actions_by_name["redo"].setEnabled)
        self.actions_by_name["undo"].setEnabled(False)
        self.actions_by_name["redo"].setEnabled(False)

    def _build_layout(self) -> None:
        toolbar = QToolBar(self)
        toolbar.setObjectName("topologyToolbar")
        for group in (("boot_all", "halt_all"), ("link_mode",), ("undo", "redo", "delete"),
                      ("zoom_out", "zoom_reset", "zoom_in", "fit", "snap")):
            for name in group:
                toolbar.addAction(self.actions_by_name[name])
            toolbar.addSeparator()
        splitter = QSplitter(self)
        splitter.addWidget(self.palette)
        splitter.addWidget(self.view)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([150, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(toolbar)
        layout.addWidget(splitter, 1)
        bottom = QHBoxLayout()
        bottom.setContentsMargins(6, 2, 6, 2)
        bottom.addWidget(self.status, 1)
        self.zoom_label = QLabel("100 %", self)
        bottom.addWidget(self.zoom_label)
        layout.addLayout(bottom)

    def _connect_view(self) -> None:
        self.view.node_dropped.connect(lambda kind, template, pos: self.add_node(kind, template, pos))
        self.view.link_drawn.connect(self.choose_link)
        self.view.node_activated.connect(self.activate_node)
        self.view.context_requested.connect(self._context_menu)
        self.view.moves_finished.connect(self._record_moves)
        self.view.zoom_changed.connect(lambda zoom: self.zoom_label.setText(f"{zoom * 100:.0f} %"))
        self.palette.itemDoubleClicked.connect(self._add_from_palette)

    def _set_link_mode(self, on: bool) -> None:
        self.view.link_mode = on
        self.view.setDragMode(self.view.DragMode.NoDrag if on else self.view.DragMode.RubberBandDrag)
        self.say("Link tool: drag from a machine to a switch, hub, host or Internet node" if on else "")

    def _select_all(self) -> None:
        for item in self.scene.items():
            if item.flags() & item.GraphicsItemFlag.ItemIsSelectable:
                item.setSelected(True)

    def say(self, text: str) -> None:
        self.status.setText(text)
        if text:
            self.status_message.emit(text)

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop following the lab (the lab itself keeps running)."""
        if self.poller.isRunning():
            self.poller.stop()

    # --- model <-> scene -----------------------------------------------------------------------

    def show_lab(self, lab: Lab, save: bool = True) -> None:
        """Make `lab` current: redraw what changed, save it, plug or unplug changed links."""
        old = self.lab
        self.lab = lab
        self._sync_scene()
        if save:
            labs.save(lab)
            self.poller.set_lab(lab)
            self._apply_live_changes(old, lab)

    def _sync_scene(self) -> None:
        for key in [key for key in self.link_items if not self._has_link(key)]:
            item = self.link_items.pop(key)
            item.detach()
            self.scene.removeItem(item)
        for name in [name for name in self.node_items if name not in self.lab.nodes]:
            self.scene.removeItem(self.node_items.pop(name))
        for node in self.lab.nodes.values():
            item = self.node_items.get(node.name)
            if item is None or item.kind != node.kind:
                if item is not None:
                    self.scene.removeItem(item)
                item = NodeItem(node)
                self.scene.addItem(item)
                self.node_items[node.name] = item
            else:
                item.update_from(node)
            item.set_state(self.states.get(node.name, st.STOPPED))
        for link in self.lab.links:
            key = (link.machine, link.card)
            item = self.link_items.get(key)
            if item is not None and (item.network_item is not self.node_items[link.network]
                                     or item.machine_item is not self.node_items[link.machine]):
                item.detach()
                self.scene.removeItem(item)
                item = None
            if item is None:
                item = LinkItem(link, self.node_items[link.machine], self.node_items[link.network])
                self.scene.addItem(item)
                self.link_items[key] = item
            else:
                item.update_from(link)
                item.adjust()

    def _has_link(self, key: tuple[str, str]) -> bool:
        return any((link.machine, link.card) == key for link in self.lab.links)

    def edit(self, text: str, change: Callable[[Lab], object], on_redo=None, on_undo=None) -> bool:
        """Apply `change` to a copy of the lab; push it on the undo stack if it is valid."""
        before = copy.deepcopy(self.lab)
        after = copy.deepcopy(self.lab)
        try:
            change(after)
            after.validate()
        except UmlguiError as error:
            self.say(error.problem)
            show_error(self, text, error)
            return False
        self.undo_stack.push(LabEdit(self, text, before, after, on_redo, on_undo))
        return True

    # --- editing ---------------------------------------------------------------------------

    def add_node(self, kind: str, template: str = "", position: QPointF | None = None,
                 name: str | None = None) -> str | None:
        position = position or self.view.mapToScene(self.view.viewport().rect().center())
        name = name or self.lab.unique_name(NAME_STEMS.get(kind, "node"))
        node = Node(name, kind, x=snap(position.x()), y=snap(position.y()))
        if kind == labs.MACHINE:
            node.template = template or "busybox"
        added = self.edit(f"Add {kind} {name}", lambda lab: lab.add_node(node))
        return name if added else None

    def _add_from_palette(self, item) -> None:
        kind, _, template = item.data(Qt.ItemDataRole.UserRole).partition(":")
        self.add_node(kind, template)

    def add_link(self, machine: str, card: str, network: str, port: int | None) -> bool:
        link = Link(machine, card, network, port)
        return self.edit(f"Link {link.label()}", lambda lab: lab.add_link(link))

    def choose_link(self, first: str, second: str, where: QPoint | None = None) -> bool:
        """Ask which card and port a new link uses, with menus showing which are free."""
        try:
            machine, network = self._link_ends(first, second)
        except UmlguiError as error:
            self.say(error.problem)
            show_error(self, "Add link", error)
            return False
        where = where or self.view.mapToGlobal(self.view.rect().center())
        card = self._pick(f"{machine}: card", [(card, link is None, f"→ {link.network}" if link else "free")
                                               for card, link in self.lab.card_choices(machine)], where)
        if card is None:
            return False
        port = None
        if self.lab.nodes[network].has_ports:
            choices = [(str(port), link is None, f"{link.machine}:{link.card}" if link else "free")
                       for port, link in self.lab.port_choices(network)]
            picked = self._pick(f"{network}: port", choices, where)
            if picked is None:
                return False
            port = int(picked)
        return self.add_link(machine, card, network, port)

    def _link_ends(self, first: str, second: str) -> tuple[str, str]:
        a, b = self.lab.node(first), self.lab.node(second)
        if a.is_machine and not b.is_machine:
            return a.name, b.name
        if b.is_machine and not a.is_machine:
            return b.name, a.name
        if a.is_machine:
            raise StateError(f"{a.name} and {b.name} are both machines",
                             "UML cards meet through a switch or hub: add one and link both machines to it")
        raise StateError(f"{a.name} and {b.name} are both network nodes",
                         "link machines to them; switches are not cabled to each other")

    def _pick(self, title: str, choices: list[tuple[str, bool, str]], where: QPoint) -> str | None:
        """A menu of choices, used ones greyed out with what uses them; the chosen text or None."""
        menu = QMenu(self)
        menu.setObjectName("topologyPortMenu")
        header = menu.addAction(title)
        header.setEnabled(False)
        menu.addSeparator()
        for text, free, note in choices:
            action = menu.addAction(_led(free), f"{text}    {note}")
            action.setData(text)
            action.setEnabled(free)
        chosen = menu.exec(where)
        return chosen.data() if chosen is not None else None

    def delete_selected(self) -> bool:
        nodes = [item.name for item in self.scene.selectedItems() if isinstance(item, NodeItem)]
        links = [item.key for item in self.scene.selectedItems() if isinstance(item, LinkItem)]
        running = [name for name in nodes if self.lab.nodes[name].is_machine
                   and st.MachineState(name, self.states.get(name, st.STOPPED)).live]
        if running:
            error = StateError(f"{', '.join(running)} {'is' if len(running) == 1 else 'are'} running",
                               "halt it before deleting it from the lab")
            show_error(self, "Delete", error)
            return False
        if not nodes and not links:
            return False

        def change(lab: Lab) -> None:
            for machine, card in links:
                link = lab.link_on_card(machine, card)
                if link is not None:
                    lab.remove_link(link)
            for name in nodes:
                lab.remove_node(name)

        what = ", ".join(nodes + [f"{m}:{c}" for m, c in links])
        return self.edit(f"Delete {what}", change)

    def rename_selected(self) -> None:
        nodes = [item.name for item in self.scene.selectedItems() if isinstance(item, NodeItem)]
        if len(nodes) != 1:
            self.say("select one node to rename it")
            return
        new, ok = QInputDialog.getText(self, "Rename", f"New name for {nodes[0]}:", text=nodes[0])
        if ok and new.strip():
            self.rename_node(nodes[0], new.strip())

    def rename_node(self, old: str, new: str) -> bool:
        """Rename a node; a machine node's library machine (and disks) follow it."""
        node = self.lab.node(old)
        if node.is_machine and st.MachineState(old, self.states.get(old, st.STOPPED)).live:
            show_error(self, "Rename", StateError(f"{old} is running", "halt it before renaming it"))
            return False
        old_machine, new_machine = self.lab.machine_name(old), self.lab.machine_name(new)

        def move(source: str, target: str) -> None:
            if node.is_machine and library.exists(source) and not library.exists(target):
                from umlgui.gui.controller import rename_machine

                rename_machine(source, target)

        return self.edit(f"Rename {old} to {new}", lambda lab: lab.rename_node(old, new),
                         on_redo=lambda: move(old_machine, new_machine),
                         on_undo=lambda: move(new_machine, old_machine))

    def set_node_position(self, name: str, x: float, y: float) -> None:
        def change(lab: Lab) -> None:
            lab.nodes[name].x, lab.nodes[name].y = x, y
        self.edit(f"Move {name}", change)

    def _record_moves(self) -> None:
        moved = {name: (item.pos().x(), item.pos().y()) for name, item in self.node_items.items()
                 if name in self.lab.nodes and (item.pos().x(), item.pos().y())
                 != (self.lab.nodes[name].x, self.lab.nodes[name].y)}
        if not moved:
            return

        def change(lab: Lab) -> None:
            for name, (x, y) in moved.items():
                lab.nodes[name].x, lab.nodes[name].y = x, y
        self.edit(f"Move {', '.join(sorted(moved))}", change)

    def set_impairments(self, machine: str, card: str, values: dict[str, float]) -> bool:
        def change(lab: Lab) -> None:
            link = lab.link_on_card(machine, card)
            for key, value in values.items():
                setattr(link, key, float(value))
        return self.edit(f"Impair {machine}:{card}", change)

    # --- running -------------------------------------------------------------------------

    def boot_all(self):
        return self._run("Booting lab " + self.lab.name, lambda lab, progress: lab_runner.up(lab, progress))

    def halt_all(self):
        return self._run("Halting lab " + self.lab.name, lambda lab, progress: lab_runner.down(lab, progress))

    def boot_nodes(self, names: list[str]):
        return self._run(f"Booting {', '.join(names)}",
                         lambda lab, progress: lab_runner.up(lab, progress, only=names))

    def halt_nodes(self, names: list[str]):
        return self._run(f"Halting {', '.join(names)}",
                         lambda lab, progress: lab_runner.down(lab, progress, only=names))

    def _run(self, title: str, work, on_done=None):
        lab = copy.deepcopy(self.lab)

        def done(result) -> None:
            self.poller.poke()
            self.say(f"{title}: done")
            if on_done:
                on_done(result)

        def failed(error: BaseException) -> None:
            self.poller.poke()
            self.say(f"{title} failed")
            show_error(self, title, error)

        self.say(f"{title}…")
        return run_job(self, title, lambda progress: work(lab, progress), on_done=done, on_error=failed)

    def _apply_live_changes(self, old: Lab, new: Lab) -> None:
        """Hot-plug links added to running machines, remove those taken away."""
        def key(link: Link) -> tuple:
            return (link.machine, link.card, link.network, link.port)

        def live(lab: Lab, link: Link) -> bool:
            return link.machine in lab.nodes and \
                st.MachineState(link.machine, self.states.get(link.machine, st.STOPPED)).live

        old_links = {key(link): link for link in old.links}
        new_links = {key(link): link for link in new.links}
        removed = [link for k, link in old_links.items() if k not in new_links and live(old, link)]
        added = [link for k, link in new_links.items() if k not in old_links and live(new, link)]
        retuned = [link for k, link in new_links.items() if k in old_links and live(new, link)
                   and link.impairments() != old_links[k].impairments()]
        if not (removed or added or retuned):
            return

        def work(lab: Lab, progress) -> None:
            for link in removed:
                progress.step(f"removing {link.card} from {link.machine}")
                lab_runner.unplug(lab, link)
            for link in added:
                progress.step(f"plugging {link.card} of {link.machine} into {link.network}")
                lab_runner.plug(lab, link)
            for link in retuned:
                progress.step(f"impairing {link.label()}")
                lab_runner.apply_impairments(lab, link)

        self._run("Changing the running lab", work)

    # --- state -------------------------------------------------------------------------------

    def _on_polled(self, snapshot: LabSnapshot) -> None:
        any_live = any(st.MachineState("", state).live for name, state in snapshot.states.items()
                       if name in self.lab.nodes and self.lab.nodes[name].is_machine)
        self.states = dict(snapshot.states)
        for name, item in self.node_items.items():
            state = snapshot.states.get(name, st.STOPPED)
            if name in snapshot.problems or (any_live and state == st.STOPPED and item.kind in labs.SWITCHED_KINDS
                                             and self._has_live_users(name, snapshot)):
                # a switch that died under running machines: they are cut off
                state = st.CRASHED
                item.setToolTip(f"{name}: switch not running — restart it with Boot all (Ctrl+B); "
                                "machines plugged into it reconnect when rebooted")
            item.set_state(state)
        for key, item in self.link_items.items():
            item.set_traffic(snapshot.traffic.get(key, 0.0), key in snapshot.plugged)
        self._report_capture_failures(snapshot.capture_failures)
        running = sum(1 for node in self.lab.machines()
                      if st.MachineState("", snapshot.states.get(node.name, st.STOPPED)).live)
        if not self.status.text().endswith("…"):
            self.say(f"{self.lab.name}: {running} of {len(self.lab.machines())} machines running")

    def _report_capture_failures(self, failures: dict[str, dict]) -> None:
        """Say once why a capture ended by itself (a full disk): the switch keeps the reason."""
        for network, failure in failures.items():
            if self._reported_capture_failures.get(network) != failure["error"]:
                self._reported_capture_failures[network] = failure["error"]
                show_error(self, "Capture", UmlguiError(failure["error"], failure.get("fix")))

    def _has_live_users(self, network: str, snapshot: LabSnapshot) -> bool:
        return any(st.MachineState("", snapshot.states.get(link.machine, st.STOPPED)).live
                   for link in self.lab.links if link.network == network)

    def node_state(self, name: str) -> str:
        return self.states.get(name, st.STOPPED)

    # --- clicks and menus -------------------------------------------------------------------

    def activate_node(self, name: str) -> None:
        """Double-click: the console of a running machine, the properties otherwise (GNS3's rule)."""
        node = self.lab.nodes.get(name)
        if node is None:
            return
        if node.is_machine and self.node_state(name) in (st.RUNNING, st.BOOTING, st.PAUSED):
            self.console_requested.emit(self.lab.machine_name(name))
        else:
            self.edit_node_properties(name)

    def edit_node_properties(self, name: str) -> None:
        node = self.lab.node(name)
        machine = self.lab.machine_name(name)
        dialog = NodeDialog(self.lab, node, _templates(), st.MachineState("", self.node_state(name)).live,
                            node.is_machine and library.exists(machine), self)
        dialog.machine_settings_requested.connect(lambda: self.properties_requested.emit(machine))
        dialog.accepted.connect(lambda: self.edit(f"Properties of {name}",
                                                  lambda lab: dialog.apply_to(lab.nodes[name])))
        dialog.open()

    def _context_menu(self, item, where: QPoint) -> None:
        menu = QMenu(self)
        menu.setObjectName("topologyContextMenu")
        if isinstance(item, NodeItem):
            self._node_menu(menu, item.name)
        elif isinstance(item, LinkItem):
            self._link_menu(menu, item.key)
        else:
            for name in ("boot_all", "halt_all", "link_mode", "fit"):
                menu.addAction(self.actions_by_name[name])
        menu.exec(where)

    def _node_menu(self, menu: QMenu, name: str) -> None:
        node = self.lab.nodes[name]
        selected = [i.name for i in self.scene.selectedItems() if isinstance(i, NodeItem)
                    and self.lab.nodes[i.name].is_machine] or ([name] if node.is_machine else [])
        live = st.MachineState("", self.node_state(name)).live
        if node.is_machine:
            menu.addAction("Boot", lambda: self.boot_nodes(selected)).setEnabled(not live)
            menu.addAction("Halt", lambda: self.halt_nodes(selected)).setEnabled(live)
            menu.addAction("Console", lambda: self.console_requested.emit(self.lab.machine_name(name))) \
                .setEnabled(live)
            for link in self.lab.links_of(name):
                menu.addSeparator()
                self._add_link_actions(menu, link, f" {link.card}")
        else:
            for link in self.lab.links_of(name):
                menu.addAction(f"Capture {link.machine}:{link.card}",
                               lambda link=link: self.capture(link.machine, link.card)).setEnabled(
                    node.has_ports and self.node_state(name) == st.RUNNING)
        menu.addSeparator()
        menu.addAction("Properties…", lambda: self.edit_node_properties(name))
        menu.addAction(self.actions_by_name["rename"])
        menu.addAction(self.actions_by_name["delete"])

    def _link_menu(self, menu: QMenu, key: tuple[str, str]) -> None:
        self._add_link_actions(menu, self.lab.link_on_card(*key))
        menu.addSeparator()
        menu.addAction(self.actions_by_name["delete"])

    def _add_link_actions(self, menu: QMenu, link: Link, card: str = "") -> None:
        """Capture, Stop capture and Impair for one link (`card` names it in a machine's menu)."""
        key = (link.machine, link.card)
        item = self.link_items.get(key)
        plugged = item is not None and item.live
        menu.addAction(f"Capture{card}…", lambda: self.capture(*key)).setEnabled(plugged)
        menu.addAction(f"Stop capture{card}", lambda: self._stop_capture(link.network)).setEnabled(plugged)
        menu.addAction(f"Impair{card}…", lambda: self.impair(*key)).setEnabled(
            self.lab.nodes[link.network].has_ports)

    def impair(self, machine: str, card: str) -> None:
        link = self.lab.link_on_card(machine, card)
        dialog = ImpairDialog(link, self)
        dialog.accepted.connect(lambda: self.set_impairments(machine, card, dialog.values()))
        dialog.open()

    def capture(self, machine: str, card: str) -> None:
        link = copy.deepcopy(self.lab.link_on_card(machine, card))
        self._run(f"Capturing {machine}:{card}", lambda lab, progress: lab_runner.capture_link(lab, link),
                  on_done=lambda file: QMessageBox.information(
                      self, "Capture", f"Capturing {machine}:{card} into\n{file}\n\n"
                      "Open it with Wireshark or tcpdump -r; Stop capture closes it."))

    def _stop_capture(self, network: str) -> None:
        self._run(f"Stopping the capture on {network}",
                  lambda lab, progress: lab_runner.stop_capture(lab, network))


def _templates() -> list[str]:
    try:
        from umlgui.templates.base import catalogue

        return sorted(catalogue())
    except Exception:       # a broken template module must not take the canvas down
        return ["busybox"]


def _led(free: bool) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor("#2e9d4f" if free else "#d93025"))
    return QIcon(pixmap)
