"""The topology editor with pytest-qt: drop from the palette, draw links through the port menu,
undo/redo, delete, rename, zoom; refuse a lab too big for the host; boot a drawn lab.

Set UMLGUI_SCREENSHOT_DIR to keep the canvas screenshot of the booted lab.
"""

from __future__ import annotations

import os
import shutil

import pytest
from guest import GuestConsole
from PySide6.QtCore import QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import QContextMenuEvent, QDragEnterEvent, QDropEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QDialog, QInputDialog, QMenu, QMessageBox

from umlgui.model import lab as labs
from umlgui.net import client as switches
from umlgui.net import daemon as proto
from umlgui.widgets.topology import TopologyEditor
from umlgui.widgets.topology.items import LinkItem, NodeItem
from umlgui.worker import state as st

pytestmark = pytest.mark.gui


@pytest.fixture
def editor(home, qtbot):
    widget = TopologyEditor("drawn", poll_interval=0.3)
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(50)                      # the first fit-to-view
    widget.view.set_zoom(1.0)
    widget.view.centerOn(0, 0)
    yield widget
    widget.shutdown()
    for info in switches.list_switches():
        if info.running:
            switches.stop_switch(info.name)


def drop_from_palette(editor: TopologyEditor, kind: str, template: str, x: float, y: float) -> None:
    """What a drag from the palette delivers: the palette's own MIME data, dropped on the view."""
    mime = editor.palette.mimeData([editor.palette.entry(kind, template)])
    where = QPointF(editor.view.mapFromScene(QPointF(x, y)))
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(where.toPoint(), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(editor.view.viewport(), enter)
    assert enter.isAccepted()
    QApplication.sendEvent(editor.view.viewport(),
                           QDropEvent(where, Qt.DropAction.CopyAction, mime, buttons, modifiers))


class MenuAnswers:
    """Picks entries of the port menus as they pop up, the way a user clicks them."""

    def __init__(self, qtbot, choices: list[str]):
        self.pending = list(choices)
        self.seen: list[dict[str, bool]] = []      # each menu: choice -> enabled
        self.timer = QTimer()
        self.timer.timeout.connect(self._answer)
        self.timer.start(30)

    def _answer(self) -> None:
        menu = QApplication.activePopupWidget()
        if not isinstance(menu, QMenu) or not self.pending:
            return
        choices = {a.data(): a.isEnabled() for a in menu.actions() if a.data() is not None}
        self.seen.append(choices)
        wanted = self.pending.pop(0)
        action = next(a for a in menu.actions() if a.data() == wanted)
        menu.setActiveAction(action)
        from PySide6.QtTest import QTest
        QTest.keyClick(menu, Qt.Key.Key_Return)
        if not self.pending:
            self.timer.stop()


def draw_link(qtbot, editor: TopologyEditor, source: str, target: str, choices: list[str]) -> MenuAnswers:
    answers = MenuAnswers(qtbot, choices)
    view = editor.view
    start = view.mapFromScene(editor.node_items[source].pos())
    end = view.mapFromScene(editor.node_items[target].pos())
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, start)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, end)
    answers.timer.stop()
    return answers


def error_box(qtbot) -> QMessageBox:
    boxes = []

    def shown() -> bool:
        boxes[:] = [w for w in QApplication.topLevelWidgets()
                    if isinstance(w, QMessageBox) and w.objectName() == "errorBox" and w.isVisible()]
        return bool(boxes)

    qtbot.waitUntil(shown, timeout=10000)
    return boxes[0]


def right_click(editor: TopologyEditor, name: str) -> dict[str, bool]:
    """Right-click a node; return its context menu's entries (text -> enabled), then close it."""
    seen: dict[str, bool] = {}

    def read() -> None:
        menu = QApplication.activePopupWidget()
        if isinstance(menu, QMenu):
            seen.update({a.text(): a.isEnabled() for a in menu.actions() if a.text()})
            timer.stop()
            menu.close()

    timer = QTimer()
    timer.timeout.connect(read)
    timer.start(30)
    where = editor.view.mapFromScene(editor.node_items[name].pos())
    QApplication.sendEvent(editor.view.viewport(), QContextMenuEvent(
        QContextMenuEvent.Reason.Mouse, where, editor.view.viewport().mapToGlobal(where)))
    timer.stop()
    return seen


def selected_nodes(editor: TopologyEditor) -> set[str]:
    return {item.name for item in editor.scene.selectedItems() if isinstance(item, NodeItem)}


def saved() -> labs.Lab:
    return labs.load("drawn")


def test_draw_a_lab_with_palette_and_port_menus(editor, qtbot):
    drop_from_palette(editor, labs.MACHINE, "busybox", -200, -100)
    drop_from_palette(editor, labs.MACHINE, "busybox", 200, -100)
    drop_from_palette(editor, labs.SWITCH, "", 0, 100)
    assert sorted(editor.lab.nodes) == ["pc1", "pc2", "sw1"]
    assert (editor.lab.nodes["sw1"].x, editor.lab.nodes["sw1"].y) == (0.0, 100.0)
    assert sorted(saved().nodes) == ["pc1", "pc2", "sw1"]            # saved as you go

    draw_link(qtbot, editor, "pc1", "sw1", ["eth0", "1"])
    answers = draw_link(qtbot, editor, "sw1", "pc2", ["eth1", "2"])
    assert answers.seen[1]["1"] is False and answers.seen[1]["2"] is True   # used port greyed out
    assert {(l.machine, l.card, l.network, l.port) for l in saved().links} == {
        ("pc1", "eth0", "sw1", 1), ("pc2", "eth1", "sw1", 2)}
    assert len([i for i in editor.scene.items() if isinstance(i, LinkItem)]) == 2
    answers = draw_link(qtbot, editor, "pc1", "sw1", ["eth1", "3"])
    assert answers.seen[0]["eth0"] is False                          # pc1's eth0 is taken

    editor.actions_by_name["undo"].trigger()
    assert len(saved().links) == 2
    editor.actions_by_name["undo"].trigger()
    assert len(saved().links) == 1
    editor.actions_by_name["redo"].trigger()
    assert len(saved().links) == 2

    # Del removes the selected machine and its link; undo brings both back
    editor.scene.clearSelection()
    editor.node_items["pc2"].setSelected(True)
    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_Delete)
    assert "pc2" not in saved().nodes and len(saved().links) == 1
    assert "pc2" not in editor.node_items
    qtbot.keyClick(editor.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert "pc2" in saved().nodes and len(saved().links) == 2
    qtbot.keyClick(editor.view, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert "pc2" not in saved().nodes
    editor.undo_stack.undo()

    # rename follows into links; moving snaps to the grid and is one undoable edit
    assert editor.rename_node("pc1", "web")
    assert saved().link_on_card("web", "eth0").network == "sw1"
    editor.node_items["web"].setPos(-187, -93)
    editor._record_moves()
    assert (saved().nodes["web"].x, saved().nodes["web"].y) == (-180.0, -100.0)
    editor.undo_stack.undo()
    assert saved().nodes["web"].x == -200.0

    editor.actions_by_name["zoom_in"].trigger()
    assert editor.view.zoom() > 1.0
    editor.actions_by_name["zoom_reset"].trigger()
    assert editor.view.zoom() == 1.0


def test_menus_double_click_wheel_zoom_rubber_band_and_f2(editor, qtbot):
    editor.add_node(labs.MACHINE, "busybox", QPointF(-150, 0))
    editor.add_node(labs.SWITCH, "", QPointF(150, 0))
    draw_link(qtbot, editor, "pc1", "sw1", ["eth0", "1"])
    viewport = editor.view.viewport()

    machine_menu = right_click(editor, "pc1")
    assert machine_menu["Boot"] and not machine_menu["Halt"] and not machine_menu["Console"]
    assert machine_menu["Impair eth0…"] and not machine_menu["Capture eth0…"]  # nothing to capture yet
    assert machine_menu["Properties…"]
    assert "Capture pc1:eth0" in right_click(editor, "sw1")

    # double-click on a stopped machine: its properties (on a running one: its console)
    where = editor.view.mapFromScene(editor.node_items["pc1"].pos())
    qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=where)
    dialog = editor.findChild(QDialog, "topologyNodeDialog")
    assert dialog is not None and dialog.isVisible()
    dialog.reject()

    QApplication.sendEvent(viewport, QWheelEvent(
        QPointF(where), QPointF(viewport.mapToGlobal(where)), QPoint(), QPoint(0, 120),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase, False))
    assert editor.view.zoom() > 1.0                                   # Ctrl+wheel zooms
    editor.actions_by_name["fit"].trigger()
    editor.view.set_zoom(1.0)
    editor.view.centerOn(0, 0)

    editor.scene.clearSelection()
    corner, opposite = (editor.view.mapFromScene(QPointF(x, y)) for x, y in ((-260, -120), (260, 120)))
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=corner)
    qtbot.mouseMove(viewport, opposite)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=opposite)
    assert selected_nodes(editor) == {"pc1", "sw1"}                   # rubber band

    editor.scene.clearSelection()
    editor.node_items["sw1"].setSelected(True)

    def answer_rename() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QInputDialog):
            box.setTextValue("core")
            box.accept()

    QTimer.singleShot(200, answer_rename)
    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_F2)
    assert "core" in saved().nodes and saved().link_on_card("pc1", "eth0").network == "core"


def test_machines_cannot_be_cabled_directly(editor, qtbot):
    editor.add_node(labs.MACHINE, "busybox", QPointF(0, 0))
    editor.add_node(labs.MACHINE, "busybox", QPointF(200, 0))
    draw_link(qtbot, editor, "pc1", "pc2", [])
    box = error_box(qtbot)
    assert "pc1 and pc2 are both machines" in box.text()
    assert "switch or hub" in box.informativeText()
    box.close()
    assert editor.lab.links == []


def test_boot_all_refuses_a_lab_bigger_than_host_memory(editor, qtbot):
    editor.add_node(labs.MACHINE, "busybox", QPointF(0, 0))
    editor.edit("huge", lambda lab: setattr(lab.nodes["pc1"], "memory", 8 << 40))
    editor.actions_by_name["boot_all"].trigger()
    box = error_box(qtbot)
    assert "needs 8.0 TiB" in box.text() and "Fix: halt other machines" in box.informativeText()
    box.close()


def test_a_capture_that_fills_the_disk_is_reported(editor, qtbot, small_disk):
    editor.add_node(labs.SWITCH, "", QPointF(0, 0))
    handle = switches.start_switch(editor.lab.switch_name("sw1"))
    first, second = (proto.DaemonPeer.connect(handle.control) for _ in range(2))
    handle.client().capture_start(str(small_disk / "sw1.pcap"))
    with first, second:
        for _ in range(100):
            first.send(proto.ethernet_frame(b"\xff" * 6, proto.parse_mac("fe:fd:00:00:00:01"), b"\x5a" * 1000))
            assert second.recv()
        box = error_box(qtbot)
    assert "the capture to" in box.text() and "No space left on device" in box.text()
    assert "free space" in box.informativeText()
    box.close()


@pytest.mark.uml
@pytest.mark.slow
def test_boot_a_drawn_lab_and_see_it_run(editor, qtbot, tmp_path):
    for number, x in ((1, -220), (2, 220)):
        drop_from_palette(editor, labs.MACHINE, "busybox", x, -120)
        editor.edit("address", lambda lab, n=number: setattr(
            lab.nodes[f"pc{n}"], "append", [f"ip_eth0=10.0.5.{n}/24"]))
        editor.edit("memory", lambda lab, n=number: setattr(lab.nodes[f"pc{n}"], "memory", 48 << 20))
    drop_from_palette(editor, labs.SWITCH, "", 0, 60)
    drop_from_palette(editor, labs.HUB, "", 0, 240)
    draw_link(qtbot, editor, "pc1", "sw1", ["eth0", "1"])
    draw_link(qtbot, editor, "pc2", "sw1", ["eth0", "2"])
    editor.set_impairments("pc2", "eth0", {"delay_ms": 5.0})

    editor.actions_by_name["boot_all"].trigger()
    qtbot.waitUntil(lambda: editor.node_items["pc1"].state == st.RUNNING
                    and editor.node_items["pc2"].state == st.RUNNING, timeout=90000)
    qtbot.waitUntil(lambda: editor.node_items["sw1"].state == st.RUNNING, timeout=5000)
    console = GuestConsole("drawn-pc1")
    console.login()
    console.send("ping -i 0.1 -c 100 10.0.5.2 >/dev/null &\n")
    qtbot.waitUntil(lambda: editor.link_items[("pc1", "eth0")].packets_per_second > 0, timeout=15000)
    assert editor.link_items[("pc2", "eth0")].impairment_text == "delay 5 ms"
    running_menu = right_click(editor, "pc1")
    assert not running_menu["Boot"] and running_menu["Halt"] and running_menu["Console"]
    assert running_menu["Capture eth0…"]
    with qtbot.waitSignal(editor.console_requested) as opened:        # double-click: the console
        qtbot.mouseDClick(editor.view.viewport(), Qt.MouseButton.LeftButton,
                          pos=editor.view.mapFromScene(editor.node_items["pc1"].pos()))
    assert opened.args == ["drawn-pc1"]

    # a link drawn on the running lab is hot-plugged into pc2
    draw_link(qtbot, editor, "pc2", "hub1", ["eth1", "1"])
    qtbot.waitUntil(lambda: "eth1" in _machine_cards("drawn-pc2"), timeout=15000)

    editor.view.fit_all()
    qtbot.wait(200)
    shot = tmp_path / "topology.png"
    assert editor.grab().save(str(shot))
    if os.environ.get("UMLGUI_SCREENSHOT_DIR"):
        shutil.copy(shot, os.path.join(os.environ["UMLGUI_SCREENSHOT_DIR"], "topology-running.png"))
    console.close()

    editor.actions_by_name["halt_all"].trigger()
    qtbot.waitUntil(lambda: all(editor.node_items[n].state in (st.HALTED, st.STOPPED, st.KILLED)
                                for n in ("pc1", "pc2")), timeout=60000)


def _machine_cards(name: str) -> set[str]:
    from umlgui.model import library

    return set(library.load(name).network)
