"""`umlgui` with no arguments: the main window."""

from __future__ import annotations

import signal
import sys


def main(argv: list[str]) -> int:
    """Open the window; returns the exit status when it closes. Machines keep running."""
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from umlgui.gui.icons import app_icon
    from umlgui.gui.jobs import finish_jobs
    from umlgui.gui.main_window import MainWindow

    if QApplication.instance() is None:
        # fractional scale factors (1.25, 1.5) render crisply instead of being rounded
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "umlgui", *argv])
    app.setApplicationName("umlgui")
    app.setApplicationDisplayName("umlgui")
    app.setOrganizationName("umlgui")
    app.setDesktopFileName("umlgui")
    app.setWindowIcon(app_icon())
    window = MainWindow()
    app.aboutToQuit.connect(window.controller.stop)    # however the app ends, stop polling first
    app.aboutToQuit.connect(finish_jobs)
    window.show()
    # Ctrl+C in the launching terminal closes the window the normal way (asking about machines)
    signal.signal(signal.SIGINT, lambda *_: window.close())
    keep_python_responsive = QTimer(interval=250)
    keep_python_responsive.timeout.connect(lambda: None)
    keep_python_responsive.start()
    status = app.exec()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return status
