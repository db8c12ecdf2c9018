"""The per-machine Settings window (virt-manager's "Details" view); see dialog.py."""

from umlgui.widgets.settings.dialog import MachineSettingsDialog

__all__ = ["MachineSettingsDialog"]
