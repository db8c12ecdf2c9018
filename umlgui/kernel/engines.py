"""The table of engines by name."""

from __future__ import annotations

from umlgui.errors import ConfigError
from umlgui.kernel.base import Engine


def get_engine(name: str) -> Engine:
    if name == "linux":
        from umlgui.kernel.linux import LinuxEngine
        return LinuxEngine()
    if name == "tt":
        from umlgui.kernel.tt_engine import TtEngine
        return TtEngine()
    raise ConfigError(f"unknown engine {name!r}", "use linux or tt")
