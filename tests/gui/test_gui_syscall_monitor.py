"""The tt syscall monitor panel on a real tt machine: live rows, filter, pause, save."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QEventLoop

from guest import GuestConsole
from umlgui.cli import main
from umlgui.model import library
from umlgui.worker import client
from gui_main_support import window  # noqa: F401  (fixture)

pytestmark = [pytest.mark.uml, pytest.mark.gui]


def test_monitor_panel_follows_filters_pauses_and_saves(home, qtbot, tmp_path, capsys):
    from umlgui.widgets.syscall_monitor import SyscallMonitorPanel

    assert main(["create", "spy", "--engine", "tt", "--monitor"]) == 0
    client.start("spy")
    try:
        client.wait_until_ready("spy", timeout=30)
        panel = SyscallMonitorPanel("spy")
        qtbot.addWidget(panel)
        console = GuestConsole("spy")
        console.login()
        console.run("cat /etc/hostname")
        qtbot.waitUntil(lambda: any(e.name == "openat" and "/etc/hostname" in e.args_text()
                                    for e in panel.model.events), timeout=5000)
        panel.filter_edit.setText("openat hostname")
        assert panel.model.events and all(e.name == "openat" for e in panel.model.events)
        panel.pause_box.setChecked(True)
        frozen = len(panel.all_events)
        console.run("ls /")
        QEventLoop().processEvents()
        qtbot.wait(600)
        assert len(panel.all_events) == frozen
        panel.pause_box.setChecked(False)
        qtbot.waitUntil(lambda: len(panel.all_events) > frozen, timeout=5000)
        saved = tmp_path / "calls.jsonl"
        panel.save(saved)
        rows = [json.loads(line) for line in saved.read_text().splitlines()]
        assert rows and all(r["name"] == "openat" for r in rows)
        assert main(["monitor", "spy", "--filter", "execve"]) == 0
        assert "execve('/sbin/init'" in capsys.readouterr().out
    finally:
        client.kill("spy")


def test_monitor_needs_the_tt_engine(home, capsys):
    assert main(["create", "lin"]) == 0
    machine = library.load("lin")
    assert main(["monitor", "lin", "--on"]) == 1
    assert "needs the tt engine" in capsys.readouterr().err
    assert library.load("lin") == machine


def test_main_window_opens_labs_and_the_monitor(window, qtbot, monkeypatch):
    from umlgui.model import lab as labs
    from umlgui.widgets.syscall_monitor import SyscallMonitorPanel
    from umlgui.widgets.topology.window import TopologyWindow

    assert main(["create", "ttbox", "--engine", "tt"]) == 0
    labs.create("class1")
    window.controller.refresh()
    qtbot.waitUntil(lambda: window.controller.row("ttbox") is not None, timeout=5000)
    window.open_lab("class1")
    assert any(isinstance(w, TopologyWindow) for w in window._side_windows)
    monkeypatch.setattr(window, "selected", lambda: "ttbox")
    window.update_actions()
    assert window.monitor_action.isEnabled()
    window.syscall_monitor_selected()
    assert any(isinstance(w, SyscallMonitorPanel) for w in window._side_windows)
    for side in list(window._side_windows):
        side.close()
