"""The topology editor: labs drawn on a canvas (see editor.TopologyEditor, window.TopologyWindow)."""

from umlgui.widgets.topology.editor import TopologyEditor

__all__ = ["TopologyEditor"]
