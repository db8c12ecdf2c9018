"""The window's icons: small SVGs drawn for umlgui, in umlgui/resources/icons/.

SVG so they stay sharp at any device pixel ratio (HiDPI); QIcon renders each size on demand.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QIcon

ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"


def icon_path(name: str) -> Path:
    return ICON_DIR / f"{name}.svg"


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """The icon called `name` (e.g. "boot", "state-running"); an empty icon if there is none."""
    path = icon_path(name)
    return QIcon(str(path)) if path.is_file() else QIcon()


def state_icon(state: str) -> QIcon:
    return icon(f"state-{state}")


def app_icon() -> QIcon:
    return icon("umlgui")
