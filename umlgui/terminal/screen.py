"""The terminal's screen model: a pyte `Screen` with the parts consoles need and speed.

Qt-free on purpose: the widget renders it, tests and benchmarks drive it directly.

What this adds to stock pyte (GUI-ANCHORS.md §6.2):
  * a cheap scrollback: lines that scroll off the top of the primary screen are moved,
    not copied, into a bounded deque;
  * the alternate screen (private modes 47, 1047, 1049), restoring the primary exactly;
  * a dim attribute (SGR 2), cursor shape and blink (DECSCUSR, mode 12), keypad mode,
    SU/SD/REP, and DEC line drawing honoured in UTF-8 mode (ncurses on a `linux`
    console uses it);
  * fast paths: printable ASCII runs are written with C-level dict updates from a
    per-attribute glyph cache, SGR results are memoised, scrolling shifts lines in C;
  * callbacks instead of no-op stubs for the bell, the title and replies to the host.

Coordinates: screen rows are 0..lines-1 as in pyte. Rows of the whole history are
*absolute line numbers*: 0 is the oldest line ever kept, counting lines that have since
fallen off the scrollback, so a selection keeps pointing at the same text while output
scrolls.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Callable, Iterator, NamedTuple

import pyte
from pyte import charsets, graphics, modes
from pyte.screens import Margins, Savepoint, StaticDefaultDict

# Private modes pyte does not implement; pyte stores them shifted (`mode << 5`).
DECCKM = 1 << 5             # application cursor keys
ATT610_BLINK = 12 << 5      # cursor blink
ALT_SCREEN_47 = 47 << 5
ALT_SCREEN_1047 = 1047 << 5
ALT_SCREEN_1049 = 1049 << 5
MOUSE_X10 = 9 << 5              # mouse reporting: presses only
MOUSE_NORMAL = 1000 << 5        # presses and releases
MOUSE_BUTTON_EVENT = 1002 << 5  # ... and motion while a button is held
MOUSE_ANY_EVENT = 1003 << 5     # ... and every motion
MOUSE_SGR = 1006 << 5           # reports as CSI < b;x;y M/m (see umlgui.terminal.mouse)
BRACKETED_PASTE = 2004 << 5

_ALT_MODES = (ALT_SCREEN_47, ALT_SCREEN_1047, ALT_SCREEN_1049)
_IDENTITY_CHARSET = charsets.LAT1_MAP

# DECSCUSR parameter -> (shape, blinking)
_CURSOR_STYLES = {
    0: ("block", True), 1: ("block", True), 2: ("block", False),
    3: ("underline", True), 4: ("underline", False),
    5: ("bar", True), 6: ("bar", False),
}


class TermChar(NamedTuple):
    """One styled cell: pyte's `Char` fields in the same order, plus `dim` (SGR 2)."""

    data: str
    fg: str = "default"
    bg: str = "default"
    bold: bool = False
    italics: bool = False
    underscore: bool = False
    strikethrough: bool = False
    reverse: bool = False
    blink: bool = False
    dim: bool = False


CHAR_FIELDS = pyte.screens.Char._fields


class _GlyphTable(dict):
    """Cells for one set of attributes, keyed by character, built on first use.

    Drawing a run then costs a dict lookup per character instead of a namedtuple
    construction.
    """

    __slots__ = ("attrs",)

    def __init__(self, attrs: TermChar):
        super().__init__()
        self.attrs = attrs

    def __missing__(self, char: str) -> TermChar:
        glyph = self.attrs._replace(data=char)
        self[char] = glyph
        return glyph


class LazyRow(StaticDefaultDict):
    """A row written in one go by a log flood, kept as text until a cell is read.

    Most flood lines scroll straight into the scrollback and are never looked at, so
    they cost one small object instead of a dict of cells. The first read of any cell
    (through `row[x]`, the only way the scrollback is read) fills in the cells; from then
    on it is an ordinary row. Rows that stay on screen are filled in at once, because
    pyte also iterates and pops rows.
    """

    __slots__ = ("text", "glyphs")

    def __init__(self, blank: TermChar, text: str, glyphs: "_GlyphTable"):
        self.default = blank
        self.text = text
        self.glyphs = glyphs

    def materialize(self) -> "LazyRow":
        text = self.text
        if text:
            self.text = None
            self.update(zip(range(len(text)), map(self.glyphs.__getitem__, text)))
        return self

    def __missing__(self, x):
        if self.text:
            self.materialize()
            if x in self:
                return dict.__getitem__(self, x)
        return self.default


class Rows(list):
    """The screen's rows as a list, offering the dict interface pyte's `Screen` uses.

    pyte keeps rows in a dict, so scrolling one line moves every row key. A list lets
    scrolling be one C-level delete and append. Every row always exists; `pop` hands
    a row out and leaves a blank one in its place, as a missing dict key would read.
    """

    __slots__ = ("blank",)

    def __init__(self, count: int, blank: TermChar):
        super().__init__(StaticDefaultDict(blank) for _ in range(count))
        self.blank = blank

    def new_row(self) -> StaticDefaultDict:
        return StaticDefaultDict(self.blank)

    def pop(self, y: int, default=None):
        row = self[y]
        self[y] = StaticDefaultDict(self.blank)
        return row

    def __contains__(self, y) -> bool:
        return isinstance(y, int) and 0 <= y < len(self)

    def values(self) -> list:
        return list(self)

    def clear(self) -> None:
        self[:] = [StaticDefaultDict(self.blank) for _ in range(len(self))]

    def set_length(self, count: int) -> None:
        del self[count:]
        self.extend(StaticDefaultDict(self.blank) for _ in range(count - len(self)))


class TerminalScreen(pyte.Screen):
    """A pyte screen with scrollback, alternate screen and fast paths.

    Callbacks (all optional, set as attributes):
      on_bell()            BEL received
      on_title(str)        OSC 0/2 window title changed
      on_reply(str)        text the terminal must send back to the host (DA, DSR)
    """

    def __init__(self, columns: int, lines: int, scrollback: int = 10_000):
        self.scrollback: deque = deque(maxlen=max(0, scrollback))
        self.dropped_lines = 0      # lines that have fallen off the scrollback, ever
        self.scrolled_lines = 0     # lines pushed into the scrollback; the view reads and resets it
        self.on_bell: Callable[[], None] | None = None
        self.on_title: Callable[[str], None] | None = None
        self.on_reply: Callable[[str], None] | None = None
        self._glyph_tables: dict[TermChar, _GlyphTable] = {}
        self._sgr_cache: dict[tuple, TermChar] = {}
        self._last_glyph: TermChar | None = None
        self._alt_buffer = None      # the inactive buffer while the alternate screen is shown
        self._alt_saved: Savepoint | None = None
        self.alt_screen_active = False
        super().__init__(columns, lines)
        self.buffer = Rows(lines, self.default_char)

    # ---- state -------------------------------------------------------------------

    @property
    def default_char(self) -> TermChar:
        return TermChar(data=" ", reverse=modes.DECSCNM in self.mode)

    def reset(self) -> None:
        if getattr(self, "alt_screen_active", False):
            self._leave_alt_screen(restore_cursor=False)
        super().reset()
        if isinstance(self.buffer, Rows):
            self.buffer.blank = self.default_char
            self.buffer.clear()
        self.cursor.attrs = self.default_char
        self.cursor_shape = "block"
        self.cursor_blink = True
        self.keypad_application = False
        self._sgr_cache = {}
        self._last_glyph = None

    @property
    def cursor_keys_application(self) -> bool:
        """DECCKM: arrow keys send SS3 sequences (ESC O A) instead of CSI (ESC [ A)."""
        return DECCKM in self.mode

    @property
    def bracketed_paste(self) -> bool:
        return BRACKETED_PASTE in self.mode

    @property
    def mouse_tracking(self) -> str | None:
        """What the program asked to hear of the mouse: "any" motion, "drag" (motion with a
        button held), "click" (presses and releases), "press" (X10), or None."""
        mode = self.mode
        for flag, tracking in ((MOUSE_ANY_EVENT, "any"), (MOUSE_BUTTON_EVENT, "drag"),
                               (MOUSE_NORMAL, "click"), (MOUSE_X10, "press")):
            if flag in mode:
                return tracking
        return None

    @property
    def mouse_sgr(self) -> bool:
        return MOUSE_SGR in self.mode

    def set_scrollback_limit(self, lines: int) -> None:
        """Change how many lines the scrollback keeps, dropping the oldest if needed."""
        lines = max(0, lines)
        excess = max(0, len(self.scrollback) - lines)
        self.dropped_lines += excess
        self.scrollback = deque(list(self.scrollback)[excess:], maxlen=lines)

    def clear_scrollback(self) -> None:
        self.dropped_lines += len(self.scrollback)
        self.scrollback.clear()

    # ---- the whole history: scrollback then screen -----------------------------------

    @property
    def first_line(self) -> int:
        """Absolute number of the oldest line still kept."""
        return self.dropped_lines

    @property
    def end_line(self) -> int:
        """One past the absolute number of the screen's last row."""
        return self.dropped_lines + len(self.scrollback) + self.lines

    @property
    def screen_top_line(self) -> int:
        """Absolute number of the screen's row 0."""
        return self.dropped_lines + len(self.scrollback)

    def history_line(self, absolute: int):
        """The cells of an absolute line: a scrollback line or a screen row (or None)."""
        index = absolute - self.dropped_lines
        kept = len(self.scrollback)
        if index < 0:
            return None
        if index < kept:
            return self.scrollback[index]
        row = index - kept
        if row < self.lines:
            return self.buffer[row]
        return None

    def line_text(self, line, start: int = 0, end: int | None = None) -> str:
        """The text of a line's cells from column `start` up to `end` (wide-char stubs skipped)."""
        if line is None:
            return ""
        end = self.columns if end is None else min(end, self.columns)
        if type(line) is LazyRow and line.text is not None:
            return line.text.ljust(end)[start:end]
        return "".join([line[x].data for x in range(start, end)])

    def text_lines(self, first: int | None = None, end: int | None = None) -> Iterator[tuple[int, str]]:
        """(absolute line, text without trailing blanks) for every kept line in range."""
        first = self.first_line if first is None else max(first, self.first_line)
        end = self.end_line if end is None else min(end, self.end_line)
        for absolute in range(first, end):
            yield absolute, self.line_text(self.history_line(absolute)).rstrip()

    # ---- drawing ---------------------------------------------------------------------

    def _glyphs(self, attrs: TermChar) -> _GlyphTable:
        table = self._glyph_tables.get(attrs)
        if table is None:
            if len(self._glyph_tables) > 4096:   # many truecolor combinations: start over
                self._glyph_tables.clear()
            table = self._glyph_tables[attrs] = _GlyphTable(attrs)
        return table

    def _translate(self, text: str) -> str:
        table = self.g1_charset if self.charset else self.g0_charset
        return text if table is _IDENTITY_CHARSET else text.translate(table)

    def draw_ascii(self, text: str) -> None:
        """Draw printable ASCII (0x20-0x7e): every character is one cell wide.

        Equivalent to pyte's `draw`, with whole runs written per line at C speed.
        """
        mode = self.mode
        if modes.IRM in mode:
            super().draw(text)
            return
        text = self._translate(text)
        glyphs = self._glyphs(self.cursor.attrs)
        columns = self.columns
        cursor = self.cursor
        autowrap = modes.DECAWM in mode
        dirty = self.dirty
        pos, length = 0, len(text)
        while pos < length:
            x = cursor.x
            if x >= columns:
                if not autowrap:
                    # pyte keeps overwriting the last column with each further character.
                    self.buffer[cursor.y][columns - 1] = glyphs[text[-1]]
                    cursor.x = columns
                    dirty.add(cursor.y)
                    break
                dirty.add(cursor.y)
                cursor.x = 0
                self.linefeed()
                x = 0
            room = columns - x
            chunk = text[pos:pos + room] if (pos or length - pos > room) else text
            count = len(chunk)
            self.buffer[cursor.y].update(zip(range(x, x + count), map(glyphs.__getitem__, chunk)))
            cursor.x = x + count
            pos += count
            if not autowrap and pos < length:
                self.buffer[cursor.y][columns - 1] = glyphs[text[-1]]
                break
        self._last_glyph = glyphs[text[-1]]
        dirty.add(cursor.y)

    def draw(self, data: str) -> None:
        """Draw any text (pyte semantics), honouring DEC line drawing in UTF-8 mode too."""
        if data.isascii() and data.isprintable():
            self.draw_ascii(data)
            return
        super().draw(data)
        if data:
            line = self.buffer[self.cursor.y]
            x = min(self.cursor.x, self.columns) - 1
            if x >= 0 and x in line:
                self._last_glyph = line[x]

    def repeat_last_character(self, count: int | None = None) -> None:
        """REP (CSI n b): draw the last drawn character n more times (ncurses uses it)."""
        if self._last_glyph is not None and self._last_glyph.data:
            self.draw(self._last_glyph.data * max(1, count or 1))

    # ---- scrolling -----------------------------------------------------------------

    def index(self) -> None:
        """Move down a line, scrolling the region at its bottom; feed the scrollback."""
        if self.margins is None:
            if self.cursor.y == self.lines - 1:
                self._scroll_screen_once()
            else:
                self.cursor.y += 1
            return
        top, bottom = self.margins
        if self.cursor.y != bottom:
            self.cursor_down()
            return
        self._scroll_up(top, bottom, 1)

    def _scroll_screen_once(self) -> None:
        """The whole screen up one line: the common case of every flood, kept short."""
        rows = self.buffer
        gone = rows[0]
        del rows[0]
        rows.append(StaticDefaultDict(rows.blank))
        scrollback = self.scrollback
        if scrollback.maxlen and not self.alt_screen_active:
            if len(scrollback) == scrollback.maxlen:
                self.dropped_lines += 1
            scrollback.append(gone)
            self.scrolled_lines += 1
        if len(self.dirty) < self.lines:
            self.dirty.update(range(self.lines))

    def _scroll_up(self, top: int, bottom: int, count: int) -> None:
        rows = self.buffer
        count = min(count, bottom - top + 1)
        if count == 1:
            gone = (rows[top],)
            del rows[top]
            rows.insert(bottom, StaticDefaultDict(rows.blank))
        else:
            gone = rows[top:top + count]
            del rows[top:top + count]
            rows[bottom - count + 1:bottom - count + 1] = [rows.new_row() for _ in range(count)]
        if top == 0 and not self.alt_screen_active and self.scrollback.maxlen:
            for row in gone:
                self._push_scrollback(row)
        if len(self.dirty) < self.lines:
            self.dirty.update(range(top, bottom + 1))

    def _can_scroll_in(self, last_row: int) -> bool:
        cursor = self.cursor
        return (cursor.y == last_row and cursor.x == 0 and self.margins is None
                and not self.buffer[last_row])

    def _scroll_in(self, texts: list[str]) -> None:
        """Lines drawn at the bottom row, each ending in CR LF, with the cursor at column 0
        of a blank bottom row: the same result as drawing them one by one, in bulk."""
        columns = self.columns
        rows = self.buffer
        blank = rows.blank
        glyphs = self._glyphs(self.cursor.attrs)
        new_rows = []
        for text in texts:
            if len(text) <= columns:
                new_rows.append(LazyRow(blank, text, glyphs))
            else:   # autowrap: one row per `columns` characters
                new_rows.extend(LazyRow(blank, text[i:i + columns], glyphs)
                                for i in range(0, len(text), columns))
        sequence = rows[:-1] + new_rows
        sequence.append(rows.new_row())
        keep = sequence[-self.lines:]
        for row in keep:
            if type(row) is LazyRow:
                row.materialize()
        rows[:] = keep
        gone = sequence[:-self.lines]
        if not self.alt_screen_active and self.scrollback.maxlen:
            overflow = len(self.scrollback) + len(gone) - self.scrollback.maxlen
            self.dropped_lines += max(0, overflow)
            self.scrollback.extend(gone)
            self.scrolled_lines += len(gone)
        self.dirty.update(range(self.lines))
        if texts[-1]:
            self._last_glyph = glyphs[texts[-1][-1]]

    def _push_scrollback(self, row) -> None:
        if len(self.scrollback) == self.scrollback.maxlen:
            self.dropped_lines += 1
        self.scrollback.append(row)
        self.scrolled_lines += 1

    def _scroll_down(self, top: int, bottom: int, count: int) -> None:
        rows = self.buffer
        count = min(count, bottom - top + 1)
        del rows[bottom - count + 1:bottom + 1]
        for _ in range(count):
            rows.insert(top, rows.new_row())
        self.dirty.update(range(top, bottom + 1))

    def draw_lines(self, lines: list[str]) -> None:
        """Draw printable ASCII lines, each followed by CR LF: the log-flood fast path."""
        mode = self.mode
        if (modes.IRM in mode or modes.DECAWM not in mode or self.charset
                or self.g0_charset is not _IDENTITY_CHARSET):
            for text in lines:
                self.draw_ascii(text)
                self.carriage_return()
                self.linefeed()
            return
        glyph = self._glyphs(self.cursor.attrs).__getitem__
        cursor = self.cursor
        columns = self.columns
        last_row = self.lines - 1
        dirty = self.dirty
        index, count = 0, len(lines)
        while index < count:
            if count - index > self.lines + 1 and self._can_scroll_in(last_row):
                # Everything but the last screenful scrolls off: take it in bulk.
                end = count - self.lines
                self._scroll_in(lines[index:end])
                index = end
                continue
            text = lines[index]
            index += 1
            if text:
                x = cursor.x
                if x + len(text) <= columns:
                    self.buffer[cursor.y].update(zip(range(x, x + len(text)), map(glyph, text)))
                    dirty.add(cursor.y)
                else:
                    self.draw_ascii(text)
            cursor.x = 0
            self.linefeed()
        if lines and lines[-1]:
            self._last_glyph = glyph(lines[-1][-1])

    def scroll_up(self, count: int | None = None) -> None:
        """SU (CSI n S): scroll the region up n lines; the cursor stays."""
        top, bottom = self.margins or (0, self.lines - 1)
        self._scroll_up(top, bottom, count or 1)

    def scroll_down(self, count: int | None = None) -> None:
        """SD (CSI n T): scroll the region down n lines; the cursor stays."""
        top, bottom = self.margins or (0, self.lines - 1)
        self._scroll_down(top, bottom, count or 1)

    # ---- erasing: C-level fills instead of pyte's per-cell loops -------------------------

    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        """EL: erase part of the cursor's line with the cursor's attributes."""
        x = self.cursor.x
        if how == 0:
            first, end = x, self.columns
        elif how == 1:
            first, end = 0, x + 1
        elif how == 2:
            first, end = 0, self.columns
        else:
            return
        self.dirty.add(self.cursor.y)
        self.buffer[self.cursor.y].update(dict.fromkeys(range(first, end), self.cursor.attrs))

    def erase_characters(self, count: int | None = None) -> None:
        """ECH: erase `count` cells from the cursor on."""
        self.dirty.add(self.cursor.y)
        x = self.cursor.x
        end = min(x + (count or 1), self.columns)
        self.buffer[self.cursor.y].update(dict.fromkeys(range(x, end), self.cursor.attrs))

    def erase_in_display(self, how: int = 0, *args, **kwargs) -> None:
        """ED: erase part of the display; whole rows are filled with the cursor's
        attributes, background colour included (xterm's back-colour erase).
        `ED 3` (sent by `clear`) also erases the scrollback, as in xterm."""
        if how == 0:
            interval = range(self.cursor.y + 1, self.lines)
        elif how == 1:
            interval = range(self.cursor.y)
        elif how in (2, 3):
            interval = range(self.lines)
        else:
            return
        self.dirty.update(interval)
        rows = self.buffer
        attrs = self.cursor.attrs
        if attrs == rows.blank:
            for y in interval:
                rows[y] = rows.new_row()
        else:
            for y in interval:
                rows[y].update(dict.fromkeys(range(self.columns), attrs))
        if how in (0, 1):
            self.erase_in_line(how)
        if how == 3 and not self.alt_screen_active:
            self.clear_scrollback()

    # ---- resizing ------------------------------------------------------------------

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """Resize keeping the cursor's line on screen.

        Rows cut from the top go to the scrollback and come back when the screen grows
        again (as xterm and VTE do); lines are not re-wrapped.
        """
        lines = lines or self.lines
        columns = columns or self.columns
        if lines == self.lines and columns == self.columns:
            return
        if self.alt_screen_active:
            saved = self._alt_saved
            primary_row = saved.cursor.y if saved else self.lines - 1
            primary_row = self._resize_buffer(self._alt_buffer, lines, columns, True, primary_row)
            if saved:
                saved.cursor.y = min(max(primary_row, 0), lines - 1)
                saved.cursor.x = min(saved.cursor.x, columns - 1)
            self.cursor.y = self._resize_buffer(self.buffer, lines, columns, False, self.cursor.y)
        else:
            self.cursor.y = self._resize_buffer(self.buffer, lines, columns, True, self.cursor.y)
        if columns > self.columns:
            first_new_stop = (self.columns + 7) // 8 * 8
            self.tabstops |= set(range(max(8, first_new_stop), columns, 8))
        else:
            self.tabstops = {stop for stop in self.tabstops if stop < columns}
        self.lines, self.columns = lines, columns
        self.margins = None
        self.cursor.x = min(self.cursor.x, columns - 1)
        self.ensure_vbounds()
        self.dirty.update(range(lines))

    def _resize_buffer(self, rows: Rows, lines: int, columns: int, to_scrollback: bool,
                       cursor_row: int) -> int:
        """Resize one set of rows in place; returns the cursor row's new index."""
        old_lines = len(rows)
        if lines < old_lines:
            # Rows below the cursor go first (usually blank), then rows from the top.
            below = max(0, old_lines - 1 - cursor_row)
            del rows[old_lines - min(below, old_lines - lines):]
            from_top = len(rows) - lines
            if from_top > 0:
                if to_scrollback and self.scrollback.maxlen:
                    for row in rows[:from_top]:
                        self._push_scrollback(row)
                del rows[:from_top]
                cursor_row -= from_top
        elif lines > old_lines:
            pulled = min(lines - old_lines, len(self.scrollback)) if to_scrollback else 0
            for _ in range(pulled):
                row = self.scrollback.pop()
                rows.insert(0, row.materialize() if type(row) is LazyRow else row)
            self.scrolled_lines = max(0, self.scrolled_lines - pulled)
            cursor_row += pulled
            rows.set_length(lines)
        if columns < self.columns:
            for row in rows:
                for x in [x for x in row if x >= columns]:
                    del row[x]
        return cursor_row

    # ---- modes: alternate screen, cursor style -----------------------------------------

    def set_mode(self, *modes_: int, **kwargs) -> None:
        private = kwargs.get("private")
        if private:
            shifted = {mode << 5 for mode in modes_}
            if modes.DECSCNM in shifted:
                self._sgr_cache.clear()
            if ATT610_BLINK in shifted:
                self.cursor_blink = True
            for alt in _ALT_MODES:
                if alt in shifted and not self.alt_screen_active:
                    self._enter_alt_screen(alt)
        super().set_mode(*modes_, **kwargs)
        self.buffer.blank = self.default_char

    def reset_mode(self, *modes_: int, **kwargs) -> None:
        private = kwargs.get("private")
        if private:
            shifted = {mode << 5 for mode in modes_}
            if modes.DECSCNM in shifted:
                self._sgr_cache.clear()
            if ATT610_BLINK in shifted:
                self.cursor_blink = False
            for alt in _ALT_MODES:
                if alt in shifted and self.alt_screen_active:
                    self._leave_alt_screen(restore_cursor=alt == ALT_SCREEN_1049)
        super().reset_mode(*modes_, **kwargs)
        self.buffer.blank = self.default_char

    def _enter_alt_screen(self, mode: int) -> None:
        if mode == ALT_SCREEN_1049:
            self._alt_saved = Savepoint(copy.copy(self.cursor), self.g0_charset,
                                        self.g1_charset, self.charset,
                                        modes.DECOM in self.mode, modes.DECAWM in self.mode)
        # The alternate screen starts blank each time (xterm keeps it for mode 47; no
        # program relies on that).
        alternate = Rows(self.lines, self.default_char)
        self.buffer, self._alt_buffer = alternate, self.buffer
        self.alt_screen_active = True
        self.dirty.update(range(self.lines))

    def _leave_alt_screen(self, restore_cursor: bool) -> None:
        self.buffer, self._alt_buffer = self._alt_buffer, None
        self.buffer.blank = self.default_char
        self.alt_screen_active = False
        if restore_cursor and self._alt_saved is not None:
            saved, self._alt_saved = self._alt_saved, None
            self.g0_charset, self.g1_charset, self.charset = (
                saved.g0_charset, saved.g1_charset, saved.charset)
            self.cursor = saved.cursor
            self.ensure_hbounds()
            self.ensure_vbounds()
        self.dirty.update(range(self.lines))

    def set_cursor_style(self, style: int | None = None) -> None:
        """DECSCUSR (CSI n SP q): cursor shape and blink."""
        self.cursor_shape, self.cursor_blink = _CURSOR_STYLES.get(style or 0, ("block", True))
        self.dirty.add(self.cursor.y)

    # ---- character sets ----------------------------------------------------------------

    def shift_in(self) -> None:
        self.charset = 0

    def shift_out(self) -> None:
        self.charset = 1

    # ---- attributes ------------------------------------------------------------------

    def select_graphic_rendition(self, *attrs: int) -> None:
        """SGR, memoised: the same (attributes, parameters) always give the same result."""
        key = (self.cursor.attrs, attrs)
        result = self._sgr_cache.get(key)
        if result is None:
            result = self._compute_sgr(self.cursor.attrs, attrs)
            if len(self._sgr_cache) > 8192:
                self._sgr_cache.clear()
            self._sgr_cache[key] = result
        self.cursor.attrs = result

    def _compute_sgr(self, current: TermChar, attrs: tuple) -> TermChar:
        if not attrs or attrs == (0,):
            return self.default_char
        replace: dict = {}
        pending = list(reversed(attrs))
        while pending:
            attr = pending.pop()
            if isinstance(attr, tuple):          # colon sub-parameters, e.g. 4:3 or 38:2::r:g:b
                self._apply_subparams(attr, replace)
            elif attr == 0:
                replace.update(self.default_char._asdict())
            elif attr in graphics.FG_ANSI:
                replace["fg"] = graphics.FG_ANSI[attr]
            elif attr in graphics.BG_ANSI:
                replace["bg"] = graphics.BG_ANSI[attr]
            elif attr == 2:
                replace["dim"] = True
            elif attr == 22:
                replace["bold"] = replace["dim"] = False
            elif attr == 21:
                replace["underscore"] = True
            elif attr in graphics.TEXT:
                name = graphics.TEXT[attr]
                replace[name[1:]] = name.startswith("+")
            elif attr in graphics.FG_AIXTERM:
                replace["fg"] = graphics.FG_AIXTERM[attr]
            elif attr in graphics.BG_AIXTERM:
                replace["bg"] = graphics.BG_AIXTERM[attr]
            elif attr in (graphics.FG_256, graphics.BG_256):
                key = "fg" if attr == graphics.FG_256 else "bg"
                try:
                    kind = pending.pop()
                    if kind == 5:
                        replace[key] = graphics.FG_BG_256[pending.pop()]
                    elif kind == 2:
                        replace[key] = "{0:02x}{1:02x}{2:02x}".format(
                            pending.pop(), pending.pop(), pending.pop())
                except IndexError:
                    pass
        return current._replace(**replace)

    @staticmethod
    def _apply_subparams(parts: tuple, replace: dict) -> None:
        head = parts[0]
        if head == 4:
            replace["underscore"] = len(parts) < 2 or parts[1] != 0
        elif head in (38, 48) and len(parts) >= 2:
            key = "fg" if head == 38 else "bg"
            values = [p for p in parts[2:]]
            try:
                if parts[1] == 5:
                    replace[key] = graphics.FG_BG_256[values[0]]
                elif parts[1] == 2:
                    rgb = values[-3:] if len(values) >= 3 else None
                    if rgb:
                        replace[key] = "{0:02x}{1:02x}{2:02x}".format(*(min(v, 255) for v in rgb))
            except IndexError:
                pass

    # ---- notifications -----------------------------------------------------------------

    def bell(self, *args) -> None:
        if self.on_bell:
            self.on_bell()

    def set_title(self, param: str) -> None:
        self.title = param
        if self.on_title:
            self.on_title(param)

    def write_process_input(self, data: str) -> None:
        if self.on_reply:
            self.on_reply(data)

    def report_device_attributes(self, mode: int = 0, **kwargs) -> None:
        """Primary DA: answer as a VT220 with ANSI colour, which is what programs probe for."""
        if mode == 0 and not kwargs.get("private"):
            self.write_process_input("\x1b[?62;22c")


def cells_equal(ours, reference) -> bool:
    """Compare two cells on pyte's `Char` fields (text and attributes)."""
    return all(getattr(ours, f) == getattr(reference, f) for f in CHAR_FIELDS)


__all__ = [
    "TerminalScreen", "TermChar", "cells_equal", "Margins",
    "DECCKM", "BRACKETED_PASTE", "ALT_SCREEN_47", "ALT_SCREEN_1047", "ALT_SCREEN_1049",
]
