"""Colour schemes: the 16 ANSI colours plus default foreground, background, cursor and
selection, as #rrggbb strings (Qt-free; the widget turns them into QColors)."""

from __future__ import annotations

# pyte's colour names (its table has the typo "bfightmagenta" for SGR 105; we map it too).
ANSI_NAMES = ["black", "red", "green", "brown", "blue", "magenta", "cyan", "white",
              "brightblack", "brightred", "brightgreen", "brightbrown", "brightblue",
              "brightmagenta", "brightcyan", "brightwhite"]

SCHEMES: dict[str, dict[str, str]] = {
    # Tango-like dark: readable on a projector, the default.
    "dark": {
        "foreground": "#d3d7cf", "background": "#1e1e1e", "cursor": "#f0f0f0",
        "selection": "#3b5f8a", "selection_text": "#ffffff", "match": "#c4a000",
        "palette": ["#2e3436", "#cc0000", "#4e9a06", "#c4a000", "#3465a4", "#75507b",
                    "#06989a", "#d3d7cf", "#555753", "#ef2929", "#8ae234", "#fce94f",
                    "#729fcf", "#ad7fa8", "#34e2e2", "#eeeeec"],
    },
    # Light: dark text on paper white; yellow and white darkened so they stay legible.
    "light": {
        "foreground": "#1e1e1e", "background": "#fbfbf8", "cursor": "#202020",
        "selection": "#b5d5ff", "selection_text": "#000000", "match": "#f5d76e",
        "palette": ["#000000", "#c01c28", "#26a269", "#a2734c", "#12488b", "#a347ba",
                    "#2aa1b3", "#9a9a9a", "#5e5c64", "#f66151", "#33d17a", "#b58900",
                    "#2a7bde", "#c061cb", "#33c7de", "#6b6b6b"],
    },
}

DEFAULT_SCHEME = "dark"


def color_for(scheme: dict, name: str, foreground: bool) -> str:
    """#rrggbb for a pyte colour: a name, "default", or a 6-digit hex (256 colours, truecolor)."""
    if name == "default":
        return scheme["foreground" if foreground else "background"]
    if name == "bfightmagenta":
        name = "brightmagenta"
    try:
        return scheme["palette"][ANSI_NAMES.index(name)]
    except ValueError:
        pass
    if len(name) == 6:
        return "#" + name
    return scheme["foreground" if foreground else "background"]
