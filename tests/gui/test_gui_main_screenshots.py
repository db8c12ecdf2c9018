"""Screenshots for docs/screenshots/ (main window, wizard), taken from the real window.

Skipped unless UMLGUI_SCREENSHOTS names the output directory; run under Xvfb at 1280x800:

    Xvfb :99 -screen 0 1280x800x24 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb UMLGUI_SCREENSHOTS=docs/screenshots \\
        python3 -m pytest tests/gui/test_gui_main_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from gui_main_support import start_wizard, wait_for_state, window  # noqa: F401
from umlgui.model import library
from umlgui.worker import client

OUTPUT = os.environ.get("UMLGUI_SCREENSHOTS")
pytestmark = [pytest.mark.uml, pytest.mark.slow, pytest.mark.gui,
              pytest.mark.skipif(not OUTPUT, reason="set UMLGUI_SCREENSHOTS=DIR to take screenshots")]


def type_line(qtbot, session, text: str, wait_for: str) -> None:
    """Type a command and wait for its output and the next prompt (no typed-ahead echo)."""
    prompts = session.text().count(":/root#")
    qtbot.keyClicks(session.terminal, text)
    qtbot.keyClick(session.terminal, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: wait_for in session.text()
                    and session.text().count(":/root#") > prompts, timeout=30000)


def test_main_window_and_wizard_screenshots(qtbot, window):
    out = Path(OUTPUT)
    out.mkdir(parents=True, exist_ok=True)
    library.new_machine("web", memory="128M")
    library.new_machine("db", memory="96M")
    library.new_machine("router", memory="64M")
    client.start("db")
    window.showNormal()
    window.resize(1280, 800)
    window.boot("web")
    qtbot.waitUntil(lambda: window.consoles.session("web") is not None, timeout=30000)
    session = window.consoles.session("web")
    qtbot.waitUntil(lambda: "login:" in session.text(), timeout=60000)
    type_line(qtbot, session, "root", ":/root#")
    type_line(qtbot, session, "uname -a", "GNU/Linux")
    type_line(qtbot, session, "cat /proc/partitions", "ubda")
    type_line(qtbot, session, "free -m", "Mem:")
    wait_for_state(qtbot, window, "web", "running")
    wait_for_state(qtbot, window, "db", "running")
    window.machine_list.select_name("web")
    window.consoles.show_session(session)
    qtbot.wait(2500)                    # a few polls: CPU and memory columns filled in
    window.grab().save(str(out / "main-window.png"))

    wizard = start_wizard(window)
    wizard.resize(680, 560)
    qtbot.wait(300)
    wizard.grab().save(str(out / "wizard.png"))
    wizard.reject()
