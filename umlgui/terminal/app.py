"""`umlgui terminal -- CMD`: the terminal widget on a local pty running CMD, on its own."""

from __future__ import annotations

import os
import sys

from ..errors import UmlguiError


def main(argv: list[str]) -> int:
    """Open a terminal window running `argv` (default: $SHELL) on a new pty.

    Returns the command's exit status once it ends and the window closes (or 0 if the
    window was closed first).
    """
    from PySide6.QtWidgets import QApplication, QMainWindow

    from .transport import PtyTransport
    from .widget import TerminalWidget

    command = list(argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        command = [os.environ.get("SHELL") or "/bin/sh"]

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = QMainWindow()
    terminal = TerminalWidget(window)
    window.setCentralWidget(terminal)
    base_title = "umlgui terminal — " + " ".join(command)
    window.setWindowTitle(base_title)
    terminal.title_changed.connect(
        lambda title: window.setWindowTitle(f"{title} — umlgui terminal" if title else base_title))
    try:
        transport = PtyTransport(command, columns=terminal.model.columns, lines=terminal.model.lines)
    except UmlguiError as error:
        print(f"umlgui terminal: {error}", file=sys.stderr)
        return 127
    terminal.set_transport(transport)
    transport.closed.connect(window.close)
    window.resize(terminal.sizeHint())
    window.show()
    terminal.setFocus()
    app.exec()
    if transport.is_open:
        transport.close()
    code = transport.exit_code
    return code if code is not None and code >= 0 else 0
