"""What mouse events send to a program that asks for them: xterm's mouse tracking.

A program turns reporting on with a private mode: 9 (X10: presses only), 1000 (presses and
releases), 1002 (and motion while a button is held), 1003 (and all motion); 1006 switches
the encoding to SGR (`CSI < b;x;y M` on press, `m` on release, no 223-cell limit). Without
1006 a report is `CSI M` and three bytes, each value + 32. htop, mc, vim (`set mouse=a`),
tmux and less --mouse use these. Shift keeps the mouse for the terminal's own selection, as
in xterm. The widget decides when to report; this module only encodes.
"""

from __future__ import annotations

LEFT, MIDDLE, RIGHT = 0, 1, 2
NO_BUTTON = 3            # motion with no button held (mode 1003); a release in the old encoding
WHEEL_UP, WHEEL_DOWN = 64, 65
SHIFT, ALT, CTRL = 4, 8, 16
MOTION = 32
_LEGACY_LIMIT = 255 - 32  # the old encoding stores each coordinate + 32 in one byte


def encode_mouse(button: int, column: int, row: int, *, pressed: bool = True,
                 motion: bool = False, modifiers: int = 0, sgr: bool = False) -> bytes:
    """The report for `button` at a 0-based cell; b"" when the old encoding cannot say it."""
    code = button | modifiers | (MOTION if motion else 0)
    if sgr:
        return f"\x1b[<{code};{column + 1};{row + 1}{'M' if pressed else 'm'}".encode()
    if not pressed:
        code = NO_BUTTON | modifiers | (MOTION if motion else 0)
    if column + 1 > _LEGACY_LIMIT or row + 1 > _LEGACY_LIMIT:
        return b""
    return b"\x1b[M" + bytes((32 + code, 33 + column, 33 + row))
