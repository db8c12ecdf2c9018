"""Shared helpers for the main window tests (test_gui_main_*.py)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox, QWizard

from umlgui.gui.main_window import MainWindow


@pytest.fixture
def window(qtbot, home, tmp_path):
    """The real main window on a fresh umlgui home, its settings in a scratch file."""
    settings = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    # not qtbot.addWidget: pytest-qt would close it first, and the quit question would wait
    win.show()
    qtbot.waitUntil(lambda: win.controller.is_loaded, timeout=5000)
    yield win
    win.quitting = True          # leave machines to the `home` fixture's clean-up
    win.close()
    win.deleteLater()


def visible_error_boxes(window) -> list[QMessageBox]:
    return [box for box in window.findChildren(QMessageBox, "errorBox") if box.isVisible()]


def wait_for_error(qtbot, window, timeout: int = 10000) -> QMessageBox:
    qtbot.waitUntil(lambda: bool(visible_error_boxes(window)), timeout=timeout)
    return visible_error_boxes(window)[-1]


def wait_for_state(qtbot, window, name: str, state: str, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: window.controller.state_of(name) == state, timeout=timeout)


def start_wizard(window, source: str = "template", image: str = "", command_line: str = ""):
    """Open the wizard and fill its first page; returns the wizard (on page one)."""
    wizard = window.new_machine()
    page = wizard.source_page
    if source == "template":
        page.from_template.setChecked(True)
    elif source == "image":
        page.from_image.setChecked(True)
        page.image_path.setText(image)
    else:
        page.from_command.setChecked(True)
        page.command_line.setPlainText(command_line)
    return wizard


def fill_machine_page(wizard, name: str | None = None, memory: str = "", boot: bool = False) -> None:
    page = wizard.machine_page
    if name is not None:
        page.name.setText(name)
        page.name_edited = True
    page.memory.setCurrentText(memory)
    page.boot_now.setChecked(boot)


def finish(qtbot, wizard, timeout: int = 60000) -> None:
    wizard.button(QWizard.WizardButton.FinishButton).click()
    qtbot.waitUntil(lambda: not wizard.isVisible(), timeout=timeout)


def wizard_error(wizard) -> str:
    """The current page's problem and fix, lower-cased (the label capitalises its first word)."""
    page = wizard.currentPage()
    return page.error.text().lower() if page.error.isVisible() else ""


def drop_files(view, name: str, paths: list) -> QDropEvent:
    """Drop files on a machine's row the way a file manager does (text/uri-list)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    position = QPointF(view.visual_center_of(name))
    event = QDropEvent(position, Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    # QApplication delivers drag events only while its own drag manager runs a drag, so the
    # event goes straight to the view's viewport handler: Qt's path from there on is the real one.
    view.viewportEvent(event)
    return event


def terminal_text(session) -> str:
    return session.text()
