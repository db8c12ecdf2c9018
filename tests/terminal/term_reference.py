"""The reference the corpus tests compare against: stock pyte, plus plain, slow versions
of the few things our screen adds on purpose (each is what xterm does).

Stock pyte gets a *sanitised* copy of the stream: sequences it mis-parses (it runs
`CSI > 4;2 m` as SGR 4;2 and raises on `CSI ? 4 m`, draws the bodies of DCS strings,
cannot take colon sub-parameters) are dropped, titles (OSC, not cell content) are
dropped, and DEC line drawing selected by `ESC ( 0` is translated here, since pyte
ignores it in UTF-8 mode. Our screen gets the original bytes.
"""

from __future__ import annotations

import copy
import re

import pyte
from pyte import charsets

TOKEN = re.compile(
    rb"\x1b\[(?P<prefix>[?>=<]?)(?P<params>[0-9;:]*)(?P<inter>[ -/]*)(?P<final>[@-~])"
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    rb"|\x1b[P_^X][^\x07\x1b]*(?:\x07|\x1b\\)"
    rb"|\x1b\((?P<g0>.)"
    rb"|\x1b[^\[\]P_^X(]"
    rb"|(?P<text>[^\x1b]+)"
    rb"|\x1b"
)
_STRAY_CONTROLS = re.compile(rb"[\x00-\x06\x10-\x1a\x1c-\x1f\x7f]")
_GRAPHICS = {ord(c): charsets.VT100_MAP[ord(c)] for c in map(chr, range(0x5f, 0x7f))}


class Sanitiser:
    """Turns the original stream, token by token, into what stock pyte can take."""

    def __init__(self):
        self.line_drawing = False

    def tokens(self, data: bytes):
        """Yields (original token bytes, sanitised bytes)."""
        for match in TOKEN.finditer(data):
            yield match.group(), self._sanitise(match)

    def _sanitise(self, match) -> bytes:
        token = match.group()
        if match.group("final") is not None:
            prefix, params, inter, final = (match.group(n).decode() for n in
                                            ("prefix", "params", "inter", "final"))
            if inter or ":" in params or prefix in (">", "=", "<"):
                return b""
            if prefix == "?" and final not in "hlJK":
                return b""
            return token
        if match.group("g0") is not None:
            self.line_drawing = match.group("g0") == b"0"
            return b""
        if match.group("text") is not None:
            text = _STRAY_CONTROLS.sub(b"", token)
            if self.line_drawing:
                text = text.decode("utf-8", "replace").translate(_GRAPHICS).encode()
            return text
        if token.startswith((b"\x1b]", b"\x1bP", b"\x1b_", b"\x1b^", b"\x1bX")):
            return b""
        return token


class ReferenceScreen(pyte.Screen):
    """Stock pyte with the alternate screen, SU/SD/REP and back-colour erase, done simply."""

    def __init__(self, columns: int, lines: int):
        self._saved = None
        self._last = None
        super().__init__(columns, lines)

    def draw(self, data: str) -> None:
        super().draw(data)
        if data:
            self._last = data[-1]

    def set_mode(self, *modes, **kwargs):
        if kwargs.get("private") and self._saved is None:
            if 1049 in modes or 1047 in modes or 47 in modes:
                self._saved = (copy.deepcopy(self.buffer), copy.copy(self.cursor))
                self.buffer.clear()
        super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes, **kwargs):
        if kwargs.get("private") and self._saved is not None:
            if 1049 in modes or 1047 in modes or 47 in modes:
                buffer, cursor = self._saved
                self._saved = None
                self.buffer.clear()
                self.buffer.update(buffer)
                if 1049 in modes:
                    self.cursor = cursor
        super().reset_mode(*modes, **kwargs)

    def erase_in_display(self, how=0, *args, **kwargs):
        rows = {0: range(self.cursor.y + 1, self.lines), 1: range(self.cursor.y),
                2: range(self.lines), 3: range(self.lines)}.get(how, range(0))
        for y in rows:
            for x in range(self.columns):
                self.buffer[y][x] = self.cursor.attrs
        if how in (0, 1):
            self.erase_in_line(how)

    def scroll_up(self, count=None):
        saved = self.cursor.y
        self.cursor.y = (self.margins or pyte.screens.Margins(0, self.lines - 1)).bottom
        for _ in range(count or 1):
            self.index()
        self.cursor.y = saved

    def scroll_down(self, count=None):
        saved = self.cursor.y
        self.cursor.y = (self.margins or pyte.screens.Margins(0, self.lines - 1)).top
        for _ in range(count or 1):
            self.reverse_index()
        self.cursor.y = saved

    def repeat_last_character(self, count=None):
        if self._last:
            self.draw(self._last * (count or 1))


class ReferenceStream(pyte.ByteStream):
    csi = dict(pyte.ByteStream.csi, S="scroll_up", T="scroll_down", b="repeat_last_character")


def differences(ours, reference, limit: int = 5) -> list[str]:
    """Cells (text and pyte's attributes) and cursor state that differ, described."""
    found = []
    for y in range(reference.lines):
        for x in range(reference.columns):
            mine, theirs = ours.buffer[y][x], reference.buffer[y][x]
            if any(getattr(mine, f) != getattr(theirs, f) for f in pyte.screens.Char._fields):
                found.append(f"row {y} col {x}: ours {tuple(mine)[:9]} reference {tuple(theirs)}")
                if len(found) >= limit:
                    return found
    for attr in ("x", "y", "hidden"):
        if getattr(ours.cursor, attr) != getattr(reference.cursor, attr):
            found.append(f"cursor {attr}: ours {getattr(ours.cursor, attr)} "
                         f"reference {getattr(reference.cursor, attr)}")
    return found
