"""The main window against real booted busybox machines (linux.uml)."""

from __future__ import annotations

import os
import signal

import pytest
from PySide6.QtCore import QSettings, Qt, QTimer

from pytestqt.exceptions import TimeoutError

from gui_main_support import (drop_files, fill_machine_page, finish, start_wizard,  # noqa: F401
                              wait_for_state, window)
from umlgui.gui.main_window import MainWindow
from umlgui.model import library
from umlgui.worker import client

pytestmark = [pytest.mark.uml, pytest.mark.slow, pytest.mark.gui]


def type_line(qtbot, session, text: str) -> None:
    """Type on the console tab's terminal as a user would, then Enter."""
    qtbot.keyClicks(session.terminal, text)
    qtbot.keyClick(session.terminal, Qt.Key.Key_Return)


def wait_text(qtbot, session, needle: str, timeout: int = 30000, count: int = 1) -> None:
    try:
        qtbot.waitUntil(lambda: session.text().count(needle) >= count, timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"{needle!r} (x{count}) not on {session.label}; it ends with:\n"
                             + session.text()[-800:]) from None


def open_window(qtbot, tmp_path) -> MainWindow:
    settings = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    win.show()
    qtbot.waitUntil(lambda: win.controller.is_loaded, timeout=5000)
    return win


def answer_quit_question(win: MainWindow, button_text: str) -> None:
    """Click a button of the quit question once it shows (it runs its own event loop)."""
    def click() -> None:
        box = win.quit_box
        if box is None:
            QTimer.singleShot(50, click)
            return
        next(b for b in box.buttons() if b.text() == button_text).click()
    QTimer.singleShot(50, click)


def test_create_boot_login_pause_drop_and_halt(qtbot, window, tmp_path):
    wizard = start_wizard(window)
    wizard.next()
    fill_machine_page(wizard, name="vm1", boot=True)
    finish(qtbot, wizard)

    # Boot now: the con0 tab opens and shows the boot log from its first line
    qtbot.waitUntil(lambda: window.consoles.session("vm1") is not None, timeout=30000)
    session = window.consoles.session("vm1")
    tabs = window.consoles.tabs
    assert tabs.tabText(tabs.currentIndex()) == "vm1:con0"
    wait_text(qtbot, session, "login:", timeout=60000)
    assert session.text().startswith("Linux version")
    wait_for_state(qtbot, window, "vm1", "running")
    assert window.selected() == "vm1"
    qtbot.waitUntil(lambda: (window.controller.row("vm1").rss or 0) > 1 << 20, timeout=5000)
    assert "1 of 1 machines running" in window.summary.text()

    type_line(qtbot, session, "root")
    wait_text(qtbot, session, ":/root#")
    type_line(qtbot, session, "echo answer=$((6*7))")
    wait_text(qtbot, session, "answer=42")

    # The guest's tty has the terminal's size, and follows it (worker resize)
    model = session.terminal.model
    type_line(qtbot, session, "stty size")
    wait_text(qtbot, session, f"{model.lines} {model.columns}")
    before = (model.lines, model.columns)
    window.resize(window.width() - 200, window.height() - 120)
    qtbot.waitUntil(lambda: (model.lines, model.columns) != before, timeout=3000)
    qtbot.wait(300)                                       # the widget batches resizes
    type_line(qtbot, session, "stty size")
    wait_text(qtbot, session, f"{model.lines} {model.columns}")

    # The terminal's "Send key" menu goes to the kernel through mconsole
    session.terminal.send_key_requested.emit("sysrq:s")
    wait_text(qtbot, session, "Emergency Sync")

    # Pause and resume through mconsole stop / go
    window.actions["pause"].trigger()
    wait_for_state(qtbot, window, "vm1", "paused", timeout=15000)
    assert window.actions["pause"].text() == "&Resume"
    assert not window.actions["cad"].isEnabled()        # UML's stop/go hazard
    assert window.actions["halt"].isEnabled()           # the worker resumes it, then halts
    window.actions["pause"].trigger()
    wait_for_state(qtbot, window, "vm1", "running", timeout=15000)

    # Drop an image on the running machine: hot-plugged as the next free ubd
    image = tmp_path / "data.img"
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    drop_files(window.machine_list, "vm1", [image])
    qtbot.waitUntil(lambda: 1 in library.load("vm1").disks, timeout=15000)
    assert library.load("vm1").disks[1].file == str(image)
    type_line(qtbot, session, "grep ubd /proc/partitions")
    wait_text(qtbot, session, "ubdb")

    # The guest's window title names the tab
    type_line(qtbot, session, r"printf '\033]0;guest-says-hi\007'")
    qtbot.waitUntil(lambda: tabs.tabText(tabs.indexOf(session.terminal)) == "guest-says-hi", timeout=10000)

    # Other consoles open on demand, in tabs of their own
    second = window.consoles.open_console("vm1", "con1")
    qtbot.waitUntil(lambda: second.connected, timeout=10000)
    assert tabs.count() == 2 and tabs.currentWidget() is second.terminal
    window.consoles.close_console("vm1", "con1")
    assert tabs.count() == 1

    # Reboot: the worker keeps the console, so the tab stays connected through it
    window.actions["reboot"].trigger()
    wait_text(qtbot, session, "Linux version", count=2, timeout=30000)
    wait_text(qtbot, session, "login:", count=2, timeout=60000)
    assert session.connected

    # Halt: the tab stays, with its text and a note
    window.actions["halt"].trigger()
    wait_for_state(qtbot, window, "vm1", "halted")
    wait_text(qtbot, session, "[machine halted]", timeout=10000)
    assert "answer=42" in session.text()
    assert not session.connected

    # Boot again: the same tab reconnects by itself and shows the new boot from its start
    window.actions["boot"].trigger()
    wait_text(qtbot, session, "Linux version", count=3, timeout=30000)
    wait_text(qtbot, session, "login:", count=3, timeout=60000)
    assert session.connected and window.consoles.tabs.count() == 1
    window.actions["halt"].trigger()
    wait_for_state(qtbot, window, "vm1", "halted")


def test_reopened_window_reattaches_and_quit_can_leave_or_halt(qtbot, home, tmp_path):
    library.new_machine("bg")
    client.start("bg")
    client.wait_until_ready("bg", timeout=60)

    win = open_window(qtbot, tmp_path)
    qtbot.waitUntil(lambda: win.consoles.session("bg") is not None
                    and win.consoles.session("bg").connected, timeout=15000)
    session = win.consoles.session("bg")
    wait_text(qtbot, session, "login:")                  # the replayed boot log
    assert session.text().startswith("Linux version")

    # A console detaches into its own window and docks back
    detached = win.consoles.detach(session)
    assert detached.isVisible() and win.consoles.tabs.count() == 0
    type_line(qtbot, session, "root")
    wait_text(qtbot, session, ":/root#")
    detached.dock()
    assert win.consoles.tabs.count() == 1 and session.connected

    # Quit, leaving the machine running
    answer_quit_question(win, "Leave Running")
    win.close()
    assert not win.isVisible()
    assert client.is_running("bg")

    # Reopen, quit again and halt everything
    again = open_window(qtbot, tmp_path)
    qtbot.waitUntil(lambda: again.consoles.session("bg") is not None, timeout=15000)
    answer_quit_question(again, "Halt All")
    again.close()
    qtbot.waitUntil(lambda: client.machine_state("bg").state == "halted", timeout=30000)
    qtbot.waitUntil(lambda: not again.isVisible(), timeout=10000)


def test_worker_death_shows_as_crashed_and_kill_cleans_up(qtbot, window):
    library.new_machine("fragile")
    window.boot("fragile")
    qtbot.waitUntil(lambda: window.consoles.session("fragile") is not None, timeout=30000)
    session = window.consoles.session("fragile")
    wait_text(qtbot, session, "login:", timeout=60000)
    os.kill(client.machine_state("fragile").worker_pid, signal.SIGKILL)

    wait_for_state(qtbot, window, "fragile", "crashed", timeout=10000)
    wait_text(qtbot, session, "[machine crashed", timeout=10000)
    row = window.controller.row("fragile")
    assert "worker process died" in row.state.message and "umlgui kill fragile" in row.state.message
    window.machine_list.select_name("fragile")
    assert window.actions["kill"].isEnabled()
    window.controller.kill("fragile")
    wait_for_state(qtbot, window, "fragile", "killed", timeout=15000)
