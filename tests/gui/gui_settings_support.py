"""Helpers for the Settings dialog tests: open it, wait for its jobs, read its message boxes."""

from __future__ import annotations

import contextlib
import ctypes
import warnings

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from umlgui.widgets.settings import MachineSettingsDialog


def open_settings(qtbot, name: str, page: str | None = None) -> MachineSettingsDialog:
    dialog = MachineSettingsDialog(name)
    qtbot.addWidget(dialog, before_close_func=lambda widget: wait_idle(qtbot, widget))
    dialog.show()
    if page:
        dialog.show_page(page)
    wait_idle(qtbot, dialog)
    return dialog


def wait_idle(qtbot, dialog, timeout: int = 60000) -> None:
    """Until every job the dialog started (inspection, hot-plug, merge) has finished."""
    qtbot.waitUntil(lambda: not dialog.jobs_running(), timeout=timeout)


def boxes(dialog, name: str) -> list[QMessageBox]:
    return [box for box in dialog.findChildren(QMessageBox, name) if box.isVisible()]


def error_texts(dialog) -> list[str]:
    return [f"{box.text()}\n{box.informativeText()}" for box in boxes(dialog, "errorBox")]


def take_error(qtbot, dialog) -> str:
    """Wait for an error box, close it and return its text (problem and fix)."""
    qtbot.waitUntil(lambda: bool(boxes(dialog, "errorBox")), timeout=30000)
    box = boxes(dialog, "errorBox")[0]
    text = f"{box.text()}\n{box.informativeText()}"
    box.button(QMessageBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: not box.isVisible())
    return text


def answer(qtbot, dialog, name: str, button_text: str) -> None:
    """Click the button labelled `button_text` on the visible message box `name`."""
    qtbot.waitUntil(lambda: bool(boxes(dialog, name)), timeout=10000)
    box = boxes(dialog, name)[0]
    for button in box.buttons():
        if button.text().replace("&", "") == button_text:
            button.click()
            return
    raise AssertionError(f"no button {button_text!r} on {name}: "
                         f"{[b.text() for b in box.buttons()]}")


def drop_files(widget, files) -> bool:
    """Drag files from a file manager (text/uri-list) onto `widget` and drop them there.

    Returns whether the widget accepted the drag."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in files])
    # Qt delivers a drop only to the widget that accepted the drag's enter event
    with warnings.catch_warnings():      # PySide marks the QPoint constructor deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return enter.isAccepted()


CAP_NET_ADMIN = 12
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


@contextlib.contextmanager
def without_capability(capability: int):
    """Run without `capability` in this thread's effective set (threads started meanwhile
    inherit that), as an ordinary user would; it stays permitted, so it comes back after."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    saved = data[0].effective
    data[0].effective &= ~(1 << capability)
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    try:
        yield
    finally:
        data[0].effective = saved
        libc.capset(ctypes.byref(header), data)
