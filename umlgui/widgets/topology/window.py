"""A lab in a window of its own: the topology editor above, machine consoles below.

    python3 -m umlgui.widgets.topology.window LAB
"""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMainWindow, QSplitter

from umlgui.gui.console_area import ConsoleArea
from umlgui.gui.controller import MachineController
from umlgui.widgets.topology.editor import TopologyEditor


class TopologyWindow(QMainWindow):
    def __init__(self, lab_name: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"{lab_name} — umlgui lab")
        self.resize(1280, 800)
        self.controller = MachineController(self)
        self.controller.dialog_parent = self
        self.editor = TopologyEditor(lab_name, self)
        self.consoles = ConsoleArea(self.controller, self)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.editor)
        splitter.addWidget(self.consoles)
        splitter.setSizes([520, 280])
        self.setCentralWidget(splitter)
        self.editor.console_requested.connect(self.consoles.open_console)
        self.editor.properties_requested.connect(self._machine_settings)
        self.controller.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.controller.start()

    def _machine_settings(self, machine: str) -> None:
        from umlgui.widgets.settings.dialog import MachineSettingsDialog

        dialog = MachineSettingsDialog(machine, self)
        dialog.show()

    def closeEvent(self, event) -> None:
        self.editor.shutdown()
        self.consoles.close_all()
        self.controller.stop()
        super().closeEvent(event)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m umlgui.widgets.topology.window LAB", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = TopologyWindow(argv[0])
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
