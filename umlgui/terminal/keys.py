"""What each key sends to the guest: xterm's conventions (the widget's keyboard layer).

The widget keeps a few keys for itself and the window (see `WIDGET_KEYS`,
`WINDOW_KEYS`); everything else is encoded here and written to the transport.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

Key = Qt.Key
Mod = Qt.KeyboardModifier

# Cursor keys: final byte; SS3 (ESC O x) in application mode (DECCKM), CSI otherwise.
_CURSOR_KEYS = {Key.Key_Up: "A", Key.Key_Down: "B", Key.Key_Right: "C", Key.Key_Left: "D",
                Key.Key_Home: "H", Key.Key_End: "F"}
# Editing keys: CSI n ~
_TILDE_KEYS = {Key.Key_Insert: 2, Key.Key_Delete: 3, Key.Key_PageUp: 5, Key.Key_PageDown: 6,
               Key.Key_F5: 15, Key.Key_F6: 17, Key.Key_F7: 18, Key.Key_F8: 19,
               Key.Key_F9: 20, Key.Key_F10: 21, Key.Key_F11: 23, Key.Key_F12: 24}
# F1-F4: SS3 P..S, or CSI 1;m P..S with modifiers
_PF_KEYS = {Key.Key_F1: "P", Key.Key_F2: "Q", Key.Key_F3: "R", Key.Key_F4: "S"}

# Ctrl with a punctuation or digit key, as xterm maps them.
_CTRL_SYMBOLS = {
    Key.Key_Space: b"\x00", Key.Key_At: b"\x00", Key.Key_2: b"\x00",
    Key.Key_BracketLeft: b"\x1b", Key.Key_3: b"\x1b",
    Key.Key_Backslash: b"\x1c", Key.Key_4: b"\x1c",
    Key.Key_BracketRight: b"\x1d", Key.Key_5: b"\x1d",
    Key.Key_AsciiCircum: b"\x1e", Key.Key_6: b"\x1e",
    Key.Key_Underscore: b"\x1f", Key.Key_Slash: b"\x1f", Key.Key_7: b"\x1f",
    Key.Key_Question: b"\x7f", Key.Key_8: b"\x7f",
}


def _modifier_parameter(modifiers) -> int:
    """xterm's modifier code: 1 + Shift(1) + Alt(2) + Ctrl(4)."""
    code = 1
    if modifiers & Mod.ShiftModifier:
        code += 1
    if modifiers & Mod.AltModifier:
        code += 2
    if modifiers & Mod.ControlModifier:
        code += 4
    return code


def encode_key(key: int, modifiers, text: str, application_cursor: bool = False,
               application_keypad: bool = False, backspace_sends_delete: bool = True) -> bytes:
    """The bytes a key press sends, or b"" if it sends nothing."""
    key = Key(key) if not isinstance(key, Key) else key
    modifiers = modifiers & (Mod.ShiftModifier | Mod.ControlModifier | Mod.AltModifier
                             | Mod.KeypadModifier)
    mods = _modifier_parameter(modifiers)
    ctrl = bool(modifiers & Mod.ControlModifier)
    alt = bool(modifiers & Mod.AltModifier)

    if key in _CURSOR_KEYS:
        final = _CURSOR_KEYS[key]
        if mods > 1:
            return f"\x1b[1;{mods}{final}".encode()
        return (f"\x1bO{final}" if application_cursor else f"\x1b[{final}").encode()
    if key in _TILDE_KEYS:
        number = _TILDE_KEYS[key]
        return (f"\x1b[{number};{mods}~" if mods > 1 else f"\x1b[{number}~").encode()
    if key in _PF_KEYS:
        final = _PF_KEYS[key]
        return (f"\x1b[1;{mods}{final}" if mods > 1 else f"\x1bO{final}").encode()

    prefix = b"\x1b" if alt else b""
    if key == Key.Key_Backspace:
        erase = b"\x08" if ctrl else (b"\x7f" if backspace_sends_delete else b"\x08")
        return prefix + erase
    if key == Key.Key_Tab:
        return prefix + (b"\x1b[Z" if modifiers & Mod.ShiftModifier else b"\t")
    if key == Key.Key_Backtab:
        return prefix + b"\x1b[Z"
    if key in (Key.Key_Return, Key.Key_Enter):
        if key == Key.Key_Enter and application_keypad:
            return prefix + b"\x1bOM"
        return prefix + b"\r"
    if key == Key.Key_Escape:
        return prefix + b"\x1b"

    if ctrl:
        if Key.Key_A <= key <= Key.Key_Z:
            return prefix + bytes((key - Key.Key_A + 1,))
        if key in _CTRL_SYMBOLS:
            return prefix + _CTRL_SYMBOLS[key]
    if text and all(ch >= " " or ch == "\t" for ch in text) and text != "\x7f":
        return prefix + text.encode("utf-8")
    if ctrl and text and len(text) == 1 and ord(text) < 0x20:
        return prefix + text.encode()
    return b""


def _combo(key, modifiers=Mod.NoModifier) -> tuple[int, int]:
    return int(key), int(modifiers.value if hasattr(modifiers, "value") else modifiers)


_CTRL = Mod.ControlModifier
_CTRL_SHIFT = Mod.ControlModifier | Mod.ShiftModifier

# Keys the widget handles itself (never sent to the guest).
WIDGET_KEYS = {
    _combo(Key.Key_C, _CTRL_SHIFT): "copy",
    _combo(Key.Key_V, _CTRL_SHIFT): "paste",
    _combo(Key.Key_Insert, Mod.ShiftModifier): "paste",
    _combo(Key.Key_F, _CTRL_SHIFT): "find",
    _combo(Key.Key_Equal, _CTRL): "zoom_in",
    _combo(Key.Key_Plus, _CTRL): "zoom_in",
    _combo(Key.Key_Plus, _CTRL_SHIFT): "zoom_in",
    _combo(Key.Key_Minus, _CTRL): "zoom_out",
    _combo(Key.Key_0, _CTRL): "zoom_reset",
    _combo(Key.Key_PageUp, Mod.ShiftModifier): "page_up",
    _combo(Key.Key_PageDown, Mod.ShiftModifier): "page_down",
    _combo(Key.Key_Home, Mod.ShiftModifier): "scroll_top",
    _combo(Key.Key_End, Mod.ShiftModifier): "scroll_bottom",
}

# Keys left to the window's shortcuts even while the terminal has focus.
WINDOW_KEYS = {
    _combo(Key.Key_F11),                       # full screen
    _combo(Key.Key_PageUp, _CTRL),             # previous tab
    _combo(Key.Key_PageDown, _CTRL),           # next tab
}


def combo_of(key: int, modifiers) -> tuple[int, int]:
    """Normalise a key event's (key, modifiers) for the tables above."""
    relevant = modifiers & (Mod.ShiftModifier | Mod.ControlModifier | Mod.AltModifier
                            | Mod.MetaModifier)
    return _combo(key, relevant)
