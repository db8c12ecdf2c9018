"""The terminal model the widget renders: screen, parser, selection and search. Qt-free."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .parser import TerminalStream
from .screen import TerminalScreen

DEFAULT_SCROLLBACK = 10_000

# What counts as a "word" for a double-click: path and URL characters included, so
# /etc/network/interfaces or eth0:1 select whole.
_WORD_CHARS = re.compile(r"[\w\-./~:@%+=,#?&]")


@dataclass(frozen=True, order=True)
class Point:
    """A cell in absolute coordinates: `line` counts from the first line ever kept."""

    line: int
    column: int


@dataclass(frozen=True)
class Match:
    """A find result: `length` cells from `start` on one line."""

    start: Point
    length: int


class TerminalModel:
    """A pyte-based terminal: `feed(bytes)` applies output, the rest reads the result.

    `reply` receives bytes the terminal must send back to the host (answers to device
    attribute and cursor position queries).
    """

    def __init__(self, columns: int = 80, lines: int = 24, scrollback: int = DEFAULT_SCROLLBACK,
                 reply: Callable[[bytes], None] | None = None):
        self.screen = TerminalScreen(columns, lines, scrollback)
        self.stream = TerminalStream(self.screen)
        self.reply = reply
        self.screen.on_reply = self._on_reply
        self.selection: tuple[Point, Point] | None = None

    # ---- output ------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Apply a chunk of output from the host (any size, may split sequences)."""
        self.stream.feed(data)

    def _on_reply(self, text: str) -> None:
        if self.reply:
            self.reply(text.encode())

    def resize(self, columns: int, lines: int) -> None:
        self.screen.resize(lines=lines, columns=columns)
        self.selection = None

    @property
    def columns(self) -> int:
        return self.screen.columns

    @property
    def lines(self) -> int:
        return self.screen.lines

    def display(self) -> list[str]:
        """The screen rows as text (like pyte's `display`, much faster)."""
        screen = self.screen
        return [screen.line_text(screen.buffer[y]) for y in range(screen.lines)]

    # ---- selection -----------------------------------------------------------------

    def select(self, start: Point, end: Point) -> None:
        """Select the cells between two points (in either order), inclusive."""
        self.selection = (min(start, end), max(start, end))

    def select_word(self, at: Point) -> None:
        text = self.line_text(at.line)
        if not text or at.column >= len(text) or not _WORD_CHARS.match(text[at.column]):
            self.selection = (at, at)
            return
        left = at.column
        while left > 0 and _WORD_CHARS.match(text[left - 1]):
            left -= 1
        right = at.column
        while right + 1 < len(text) and _WORD_CHARS.match(text[right + 1]):
            right += 1
        self.selection = (Point(at.line, left), Point(at.line, right))

    def select_line(self, at: Point) -> None:
        self.selection = (Point(at.line, 0), Point(at.line, self.screen.columns - 1))

    def select_all(self) -> None:
        screen = self.screen
        self.selection = (Point(screen.first_line, 0), Point(screen.end_line - 1, screen.columns - 1))

    def clear_selection(self) -> None:
        self.selection = None

    def is_selected(self, line: int, column: int) -> bool:
        if self.selection is None:
            return False
        start, end = self.selection
        return start <= Point(line, column) <= end

    def selected_text(self) -> str:
        """The selected text; trailing blanks of each line dropped, lines joined by newlines."""
        if self.selection is None:
            return ""
        start, end = self.selection
        screen = self.screen
        parts = []
        for line in range(max(start.line, screen.first_line), min(end.line + 1, screen.end_line)):
            first = start.column if line == start.line else 0
            last = end.column + 1 if line == end.line else screen.columns
            parts.append(screen.line_text(screen.history_line(line), first, last).rstrip())
        return "\n".join(parts).rstrip("\n") if len(parts) > 1 else "".join(parts)

    # ---- text ------------------------------------------------------------------------

    def line_text(self, line: int) -> str:
        return self.screen.line_text(self.screen.history_line(line))

    def all_text(self) -> str:
        """Scrollback and screen as plain text (for "Save output…"), trailing blank lines dropped."""
        return "\n".join(text for _, text in self.screen.text_lines()).rstrip("\n") + "\n"

    def find(self, needle: str, before: Point | None = None, backwards: bool = True,
             case_sensitive: bool = False) -> Match | None:
        """The next occurrence of `needle` before (or after) a point, searching the history.

        Searching backwards from the bottom is what a find bar does first: the newest match.
        """
        if not needle:
            return None
        screen = self.screen
        flags = 0 if case_sensitive else re.IGNORECASE
        pattern = re.compile(re.escape(needle), flags)
        if backwards:
            origin = before or Point(screen.end_line, 0)
            lines = range(min(origin.line, screen.end_line - 1), screen.first_line - 1, -1)
        else:
            origin = before or Point(screen.first_line - 1, screen.columns)
            lines = range(max(origin.line, screen.first_line), screen.end_line)
        for line in lines:
            text = screen.line_text(screen.history_line(line))
            hits = [m.start() for m in pattern.finditer(text)]
            if line == origin.line:
                hits = ([c for c in hits if c < origin.column] if backwards
                        else [c for c in hits if c > origin.column])
            if hits:
                column = hits[-1] if backwards else hits[0]
                return Match(Point(line, column), len(needle))
        return None
