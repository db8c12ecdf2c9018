"""`TerminalWidget`: the console widget, rendering a `TerminalModel` and driving a `Transport`.

Speed rules (GUI-ANCHORS.md §6.3): output is queued as it arrives and parsed once per
frame within a time budget, so a flood never freezes input; only rows that changed are
re-rendered into a cached pixmap; a flood pushes back on its producer (the transport
stops reading) instead of piling up.

Keyboard rule (virt-manager's): while the terminal has focus every key goes to the
guest, except the few in `keys.WIDGET_KEYS` (copy, paste, find, zoom, scrollback paging)
and `keys.WINDOW_KEYS` (full screen, tab switching) which the window keeps.
"""

from __future__ import annotations

import math
import time
from itertools import groupby
from operator import itemgetter

from PySide6.QtCore import QEvent, QPointF, QRectF, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (QAction, QColor, QFont, QFontDatabase, QFontMetricsF, QGuiApplication,
                           QKeySequence, QPainter, QPixmap)
from PySide6.QtWidgets import (QApplication, QCheckBox, QFileDialog, QHBoxLayout, QLineEdit,
                               QMenu, QScrollBar, QToolButton, QWidget)

from . import mouse
from .keys import WIDGET_KEYS, WINDOW_KEYS, combo_of, encode_key
from .model import DEFAULT_SCROLLBACK, Point, TerminalModel
from .schemes import DEFAULT_SCHEME, SCHEMES, color_for
from .transport import Transport


FRAME_MS = 8                  # gather output this long before parsing a frame's worth
FEED_BUDGET_S = 0.012         # parse at most this long per frame, then paint
FEED_SLICE = 64 * 1024
HIGH_WATER = 256 * 1024       # queued output above this: stop reading the transport
LOW_WATER = 64 * 1024
BLINK_MS = 530
BELL_FLASH_MS = 120
RESIZE_NOTIFY_MS = 40
DEFAULT_FONT_SIZE = 11
MIN_FONT_SIZE, MAX_FONT_SIZE = 6, 40

# SysRq keys offered in the "Send key" menu: (key, what it does)
SYSRQ_KEYS = [("s", "Sync disks"), ("u", "Remount read-only"), ("b", "Reboot now"),
              ("e", "Terminate all tasks"), ("i", "Kill all tasks"), ("t", "Show tasks"),
              ("m", "Show memory"), ("w", "Show blocked tasks"), ("h", "Help")]

_STYLE = itemgetter(slice(1, None))   # a cell's attributes without its text


class FindBar(QWidget):
    """The search row under the terminal: text, previous/next, case, close."""

    def __init__(self, terminal: "TerminalWidget"):
        super().__init__(terminal)
        self.terminal = terminal
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText("Find in scrollback")
        self.edit.returnPressed.connect(self._on_return)
        self.edit.textChanged.connect(lambda _: self.terminal.find(self.text, restart=True))
        self.case = QCheckBox("Match case", self)
        previous = QToolButton(self, text="▲", toolTip="Previous (older) match: Enter")
        previous.clicked.connect(lambda: self.terminal.find(self.text, backwards=True))
        following = QToolButton(self, text="▼", toolTip="Next (newer) match: Shift+Enter")
        following.clicked.connect(lambda: self.terminal.find(self.text, backwards=False))
        close = QToolButton(self, text="✕", toolTip="Close (Esc)")
        close.clicked.connect(self.terminal.hide_find_bar)
        for widget in (self.edit, previous, following, self.case, close):
            layout.addWidget(widget)

    @property
    def text(self) -> str:
        return self.edit.text()

    def _on_return(self) -> None:
        shift = bool(QGuiApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier)
        self.terminal.find(self.text, backwards=not shift)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.terminal.hide_find_bar()
            return
        super().keyPressEvent(event)


class TerminalWidget(QWidget):
    """A terminal console: pyte model, fast rendering, xterm keyboard, scrollback, find.

    Signals:
      title_changed(str)        the guest set the window title (OSC 0/2)
      bell()                    BEL received (the widget flashes too)
      send_key_requested(str)   the user picked "Send key": "cad" or "sysrq:<key>"; the
                                machine window sends it through mconsole
      size_changed(int, int)    the grid is now (columns, lines)
    """

    title_changed = Signal(str)
    bell = Signal()
    send_key_requested = Signal(str)
    size_changed = Signal(int, int)

    def __init__(self, parent: QWidget | None = None, settings: QSettings | None = None):
        super().__init__(parent)
        self.settings = settings if settings is not None else QSettings("umlgui", "terminal")
        self.scheme_name = str(self.settings.value("scheme", DEFAULT_SCHEME))
        if self.scheme_name not in SCHEMES:
            self.scheme_name = DEFAULT_SCHEME
        self.font_size = _clamp(int(self.settings.value("font_size", DEFAULT_FONT_SIZE)),
                                MIN_FONT_SIZE, MAX_FONT_SIZE)
        scrollback = max(0, int(self.settings.value("scrollback", DEFAULT_SCROLLBACK)))

        self.model = TerminalModel(80, 24, scrollback, reply=self._write)
        self.model.screen.on_title = self._on_title
        self.model.screen.on_bell = self._on_bell
        self.title = ""
        self.bytes_fed = 0               # total output parsed (benchmarks watch it)
        self.frames_painted = 0
        self._transport: Transport | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._reading_paused = False
        self._scroll_offset = 0          # lines scrolled back from the bottom
        self._status_text: str | None = None
        self._flash = False
        self._cursor_visible_phase = True
        self._press_point: Point | None = None
        self._last_mouse_cell: tuple[int, int] | None = None
        self._last_double_click = 0.0
        self._redraw_all = True
        self._color_cache: dict[tuple[str, bool], QColor] = {}
        self._font_cache: dict[tuple, QFont] = {}
        self._canvas = QPixmap()

        self._frame_timer = QTimer(self, singleShot=True, interval=FRAME_MS)
        self._frame_timer.timeout.connect(self._process_pending)
        self._blink_timer = QTimer(self, interval=BLINK_MS)
        self._blink_timer.timeout.connect(self._blink)
        self._resize_timer = QTimer(self, singleShot=True, interval=RESIZE_NOTIFY_MS)
        self._resize_timer.timeout.connect(self._notify_transport_size)

        self._scrollbar = QScrollBar(Qt.Orientation.Vertical, self)
        self._scrollbar.setCursor(Qt.CursorShape.ArrowCursor)
        self._scrollbar.valueChanged.connect(self._on_scrollbar)
        self._find_bar = FindBar(self)
        self._find_bar.hide()
        self._last_match: Point | None = None

        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAttribute(Qt.WidgetAttribute.WA_InputMethodEnabled)
        self.setCursor(Qt.CursorShape.IBeamCursor)
        self.setMouseTracking(True)      # mode 1003 reports motion with no button held
        self._apply_font()
        self._update_scrollbar()

    # ---- public API ------------------------------------------------------------------

    @property
    def transport(self) -> Transport | None:
        return self._transport

    def set_transport(self, transport: Transport | None) -> None:
        """Drive this transport: its output is shown, keys are written to it."""
        if self._transport is not None:
            self._transport.data_received.disconnect(self.feed)
            self._transport.closed.disconnect(self._on_transport_closed)
        self._transport = transport
        self._reading_paused = False
        if transport is not None:
            transport.data_received.connect(self.feed)
            transport.closed.connect(self._on_transport_closed)
            transport.resize(self.model.columns, self.model.lines)

    def feed(self, data: bytes) -> None:
        """Queue output for display; it is parsed and painted at the next frame."""
        if not data:
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > HIGH_WATER and self._transport and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        if not self._frame_timer.isActive():
            self._frame_timer.start(FRAME_MS)

    def flush(self) -> None:
        """Parse everything queued now (tests and screenshots; the GUI uses frames)."""
        while self._pending:
            self._process_pending(budget=None)

    def send_text(self, text: str) -> None:
        """Type text into the guest as if from the keyboard."""
        self._send_input(text.encode("utf-8"))

    def paste_text(self, text: str) -> None:
        """Paste: newlines become CR; wrapped in ESC[200~ … ESC[201~ if the guest asked
        for bracketed paste (then an embedded end marker cannot end it early)."""
        if not text:
            return
        text = text.replace("\r\n", "\r").replace("\n", "\r")
        if self.model.screen.bracketed_paste:
            text = "\x1b[200~" + text.replace("\x1b[201~", "") + "\x1b[201~"
        self._send_input(text.encode("utf-8"))

    def show_status(self, text: str) -> None:
        """Show a status line over the bottom row, e.g. "[machine halted — reconnecting…]".

        It is an overlay: the terminal's contents are not touched and reappear when it
        is cleared."""
        self._status_text = text
        self.update()

    def clear_status(self) -> None:
        self._status_text = None
        self.update()

    @property
    def status_text(self) -> str | None:
        return self._status_text

    def copy(self) -> None:
        text = self.model.selected_text()
        if text:
            QGuiApplication.clipboard().setText(text)

    def paste(self) -> None:
        self.paste_text(QGuiApplication.clipboard().text())

    def paste_selection(self) -> None:
        """Paste the X primary selection (middle click), or the clipboard where there is none."""
        clipboard = QGuiApplication.clipboard()
        if clipboard.supportsSelection():
            self.paste_text(clipboard.text(clipboard.Mode.Selection))
        else:
            self.paste()

    def select_all(self) -> None:
        self.model.select_all()
        self._selection_changed()

    def clear_scrollback(self) -> None:
        self.model.screen.clear_scrollback()
        self._scroll_offset = 0
        self._redraw_all = True
        self._update_scrollbar()
        self.update()

    def reset_terminal(self) -> None:
        """xterm's Full Reset: modes (mouse reporting, alternate screen, keypad, charsets) back
        to their defaults and a clean screen, for when a program died leaving them set. The
        scrollback stays."""
        self.model.screen.reset()
        self._last_mouse_cell = None
        self._redraw_all = True
        self.update()

    def save_output(self, path: str) -> None:
        """Write the scrollback and screen as plain text."""
        with open(path, "w", encoding="utf-8") as out:
            out.write(self.model.all_text())

    def set_scheme(self, name: str) -> None:
        """Switch to a colour scheme ("dark" or "light"); remembered in the settings."""
        if name not in SCHEMES:
            raise ValueError(f"unknown colour scheme {name!r}: choose from {sorted(SCHEMES)}")
        self.scheme_name = name
        self.settings.setValue("scheme", name)
        self._color_cache.clear()
        self._redraw_all = True
        self.update()

    def set_font_size(self, size: int) -> None:
        """Zoom to a point size (remembered in the settings)."""
        self.font_size = _clamp(size, MIN_FONT_SIZE, MAX_FONT_SIZE)
        self.settings.setValue("font_size", self.font_size)
        self._apply_font()

    def zoom_in(self) -> None:
        self.set_font_size(self.font_size + 1)

    def zoom_out(self) -> None:
        self.set_font_size(self.font_size - 1)

    def zoom_reset(self) -> None:
        self.set_font_size(DEFAULT_FONT_SIZE)

    def set_scrollback_lines(self, lines: int) -> None:
        """How many lines of scrollback to keep (remembered in the settings)."""
        self.model.screen.set_scrollback_limit(lines)
        self.settings.setValue("scrollback", max(0, lines))
        self._scroll_offset = min(self._scroll_offset, len(self.model.screen.scrollback))
        self._update_scrollbar()
        self.update()

    def scroll_lines(self, delta: int) -> None:
        """Scroll the view: positive goes back into the scrollback."""
        history = len(self.model.screen.scrollback)
        offset = _clamp(self._scroll_offset + delta, 0, history)
        if offset != self._scroll_offset:
            self._scroll_offset = offset
            self._redraw_all = True
            self._update_scrollbar()
            self.update()

    def scroll_to_bottom(self) -> None:
        self.scroll_lines(-self._scroll_offset)

    @property
    def scroll_offset(self) -> int:
        return self._scroll_offset

    def show_find_bar(self) -> None:
        self._find_bar.show()
        self._layout_children()
        self._find_bar.edit.setFocus()
        self._find_bar.edit.selectAll()

    def hide_find_bar(self) -> None:
        self._find_bar.hide()
        self._last_match = None
        self._layout_children()
        self.setFocus()

    def find(self, text: str, backwards: bool = True, restart: bool = False) -> bool:
        """Select the next match of `text` (older if `backwards`) and scroll to it."""
        if restart:
            self._last_match = None
        match = self.model.find(text, self._last_match, backwards,
                                case_sensitive=self._find_bar.case.isChecked())
        if match is None:
            return False
        self._last_match = match.start
        end = Point(match.start.line, match.start.column + match.length - 1)
        self.model.select(match.start, end)
        self._reveal_line(match.start.line)
        self._selection_changed()
        return True

    # ---- output path -------------------------------------------------------------------

    def _process_pending(self, budget: float | None = FEED_BUDGET_S) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        deadline = None if budget is None else time.perf_counter() + budget
        offset = 0
        while offset < len(data):
            piece = data[offset:offset + FEED_SLICE]
            self.model.feed(piece)
            offset += len(piece)
            if deadline is not None and time.perf_counter() > deadline:
                break
        self.bytes_fed += offset
        if offset < len(data):
            self._pending.append(data[offset:])
        self._pending_size = len(data) - offset
        if self._reading_paused and self._pending_size < LOW_WATER and self._transport:
            self._reading_paused = False
            self._transport.resume_reading()
        self._after_output()
        if self._pending and not self._frame_timer.isActive():
            self._frame_timer.start(1)   # let this frame paint, then continue

    def _after_output(self) -> None:
        screen = self.model.screen
        scrolled, screen.scrolled_lines = screen.scrolled_lines, 0
        if self._scroll_offset:
            self._scroll_offset = min(self._scroll_offset + scrolled, len(screen.scrollback))
            self._redraw_all = True
        self._update_scrollbar()
        self._cursor_visible_phase = True
        self.update()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and self._transport.is_open:
            self._transport.write(data)

    def _send_input(self, data: bytes) -> None:
        if not data:
            return
        if self._scroll_offset:
            self.scroll_to_bottom()
        self._write(data)

    def _on_transport_closed(self) -> None:
        self.flush()

    def _on_title(self, title: str) -> None:
        if title != self.title:
            self.title = title
            self.title_changed.emit(title)

    def _on_bell(self) -> None:
        self.bell.emit()
        if not self._flash:
            self._flash = True
            QTimer.singleShot(BELL_FLASH_MS, self._end_flash)
            self.update()

    def _end_flash(self) -> None:
        self._flash = False
        self.update()

    # ---- geometry --------------------------------------------------------------------

    def _apply_font(self) -> None:
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        family = self.settings.value("font_family")
        if family:
            font.setFamily(str(family))
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setFixedPitch(True)
        font.setPointSize(self.font_size)
        font.setKerning(False)
        self._font = font
        self._font_cache.clear()
        metrics = QFontMetricsF(font)
        self.cell_width = metrics.horizontalAdvance("M")
        self.cell_height = math.ceil(metrics.height())
        self._ascent = metrics.ascent() + (self.cell_height - metrics.height()) / 2
        self._redraw_all = True
        self._update_grid_size()
        self.updateGeometry()

    def sizeHint(self) -> QSize:
        width = math.ceil(80 * self.cell_width) + self._scrollbar.sizeHint().width()
        return QSize(width, 24 * self.cell_height)

    def resizeEvent(self, event) -> None:
        self._layout_children()
        super().resizeEvent(event)

    def _terminal_area(self) -> QRectF:
        bar = self._scrollbar.sizeHint().width()
        find_height = self._find_bar.sizeHint().height() if self._find_bar.isVisible() else 0
        return QRectF(0, 0, max(0, self.width() - bar), max(0, self.height() - find_height))

    def _layout_children(self) -> None:
        area = self._terminal_area()
        bar = self._scrollbar.sizeHint().width()
        self._scrollbar.setGeometry(int(area.width()), 0, bar, int(area.height()))
        if self._find_bar.isVisible():
            self._find_bar.setGeometry(0, int(area.height()), self.width(),
                                       self.height() - int(area.height()))
        self._update_grid_size()

    def _update_grid_size(self) -> None:
        area = self._terminal_area()
        columns = max(2, int(area.width() // self.cell_width))
        lines = max(1, int(area.height() // self.cell_height))
        if self.width() <= 1 or self.height() <= 1:
            return
        if (columns, lines) != (self.model.columns, self.model.lines):
            self.model.resize(columns, lines)
            self._scroll_offset = min(self._scroll_offset, len(self.model.screen.scrollback))
            self._redraw_all = True
            self._update_scrollbar()
            self._resize_timer.start()
            self.size_changed.emit(columns, lines)
        self.update()

    def _notify_transport_size(self) -> None:
        if self._transport is not None and self._transport.is_open:
            self._transport.resize(self.model.columns, self.model.lines)

    def _update_scrollbar(self) -> None:
        history = len(self.model.screen.scrollback)
        bar = self._scrollbar
        bar.blockSignals(True)
        bar.setRange(0, history)
        bar.setPageStep(self.model.lines)
        bar.setValue(history - self._scroll_offset)
        bar.blockSignals(False)

    def _on_scrollbar(self, value: int) -> None:
        history = len(self.model.screen.scrollback)
        self._scroll_offset = _clamp(history - value, 0, history)
        self._redraw_all = True
        self.update()

    def _view_top(self) -> int:
        """Absolute line shown in the view's first row."""
        return self.model.screen.screen_top_line - self._scroll_offset

    def _reveal_line(self, line: int) -> None:
        top = self._view_top()
        if top <= line < top + self.model.lines:
            return
        screen = self.model.screen
        offset = screen.screen_top_line - line + self.model.lines // 2
        self._scroll_offset = _clamp(offset, 0, len(screen.scrollback))
        self._redraw_all = True
        self._update_scrollbar()

    def point_at(self, x: float, y: float) -> Point:
        """The cell under a widget position, in absolute coordinates."""
        column = _clamp(int(x // self.cell_width), 0, self.model.columns - 1)
        row = _clamp(int(y // self.cell_height), 0, self.model.lines - 1)
        return Point(self._view_top() + row, column)

    # ---- painting ----------------------------------------------------------------------

    def _scheme(self) -> dict:
        return SCHEMES[self.scheme_name]

    def _color(self, name: str, foreground: bool) -> QColor:
        key = (name, foreground)
        color = self._color_cache.get(key)
        if color is None:
            color = self._color_cache[key] = QColor(color_for(self._scheme(), name, foreground))
        return color

    def _font_for(self, bold: bool, italic: bool, underline: bool, strike: bool) -> QFont:
        key = (bold, italic, underline, strike)
        font = self._font_cache.get(key)
        if font is None:
            font = QFont(self._font)
            font.setBold(bold)
            font.setItalic(italic)
            font.setUnderline(underline)
            font.setStrikeOut(strike)
            self._font_cache[key] = font
        return font

    def paintEvent(self, event) -> None:
        self._render_canvas()
        painter = QPainter(self)
        area = self._terminal_area()
        painter.fillRect(area, self._color("default", False))
        painter.drawPixmap(0, 0, self._canvas)
        self._paint_cursor(painter)
        if self._status_text:
            self._paint_status(painter, area)
        if self._flash:
            flash = QColor(self._color("default", True))
            flash.setAlpha(70)
            painter.fillRect(area, flash)
        painter.end()
        self.frames_painted += 1

    def _render_canvas(self) -> None:
        screen = self.model.screen
        columns, lines = screen.columns, screen.lines
        width = math.ceil(columns * self.cell_width)
        height = lines * self.cell_height
        if self._canvas.width() != width or self._canvas.height() != height:
            self._canvas = QPixmap(max(1, width), max(1, height))
            self._redraw_all = True
        if self._redraw_all or self._scroll_offset:
            rows = range(lines)
        else:
            rows = sorted(y for y in screen.dirty if 0 <= y < lines)
        screen.dirty.clear()
        self._redraw_all = False
        if not rows:
            return
        painter = QPainter(self._canvas)
        top = self._view_top()
        for row in rows:
            self._paint_row(painter, row, top + row, screen.history_line(top + row))
        painter.end()

    def _selection_span(self, line: int) -> tuple[int, int] | None:
        selection = self.model.selection
        if selection is None:
            return None
        start, end = selection
        if not start.line <= line <= end.line:
            return None
        first = start.column if line == start.line else 0
        last = end.column if line == end.line else self.model.columns - 1
        return first, last

    def _paint_row(self, painter: QPainter, row: int, line_number: int, line) -> None:
        cell_width, y = self.cell_width, row * self.cell_height
        background = self._color("default", False)
        painter.fillRect(QRectF(0, y, self._canvas.width(), self.cell_height), background)
        if line is None:
            return
        columns = self.model.columns
        cells = [line[x] for x in range(columns)]
        selected = self._selection_span(line_number)
        x = 0
        for style, group in groupby(cells, key=_STYLE):
            count = len(list(group))
            pieces = [(x, count, False)]
            if selected and selected[0] < x + count and selected[1] >= x:
                first, last = max(x, selected[0]), min(x + count - 1, selected[1])
                pieces = [(x, first - x, False), (first, last - first + 1, True),
                          (last + 1, x + count - 1 - last, False)]
            for start, length, is_selected in pieces:
                if length > 0:
                    self._paint_run(painter, y, start, cells[start:start + length], style,
                                    is_selected)
            x += count

    def _paint_run(self, painter: QPainter, y: float, x: int, cells: list, style: tuple,
                   is_selected: bool) -> None:
        fg_name, bg_name, bold, italics, underscore, strike, reverse = style[:7]
        dim = style[8] if len(style) > 8 else False
        foreground = self._color(fg_name, True)
        background = self._color(bg_name, False)
        if reverse:
            foreground, background = background, foreground
        if is_selected:
            scheme = self._scheme()
            foreground, background = QColor(scheme["selection_text"]), QColor(scheme["selection"])
        cell_width = self.cell_width
        left = round(x * cell_width)
        right = round((x + len(cells)) * cell_width)
        if background != self._color("default", False) or is_selected:
            painter.fillRect(left, int(y), right - left, self.cell_height, background)
        text = "".join(cell.data for cell in cells)
        if not text.strip() and not underscore and not strike:
            return
        if dim:
            foreground = _blend(foreground, background)
        painter.setPen(foreground)
        painter.setFont(self._font_for(bold, italics, underscore, strike))
        baseline = y + self._ascent
        if text.isascii() and len(text) == len(cells):
            painter.drawText(QPointF(x * cell_width, baseline), text)
            return
        for offset, cell in enumerate(cells):   # wide or non-ASCII: place each on its cell
            if cell.data and cell.data != " ":
                painter.drawText(QPointF((x + offset) * cell_width, baseline), cell.data)

    def _paint_cursor(self, painter: QPainter) -> None:
        screen = self.model.screen
        if screen.cursor.hidden:
            return
        row = screen.cursor.y + self._scroll_offset
        if row >= screen.lines:
            return
        focused = self.hasFocus()
        if focused and screen.cursor_blink and not self._cursor_visible_phase:
            return
        column = min(screen.cursor.x, screen.columns - 1)
        left, top = column * self.cell_width, row * self.cell_height
        color = QColor(self._scheme()["cursor"])
        cell = QRectF(left, top, self.cell_width, self.cell_height)
        if not focused:
            painter.setPen(color)
            painter.drawRect(cell.adjusted(0.5, 0.5, -0.5, -0.5))
        elif screen.cursor_shape == "underline":
            painter.fillRect(QRectF(left, top + self.cell_height - 2, self.cell_width, 2), color)
        elif screen.cursor_shape == "bar":
            painter.fillRect(QRectF(left, top, 2, self.cell_height), color)
        else:
            painter.fillRect(cell, color)
            char = screen.buffer[screen.cursor.y][column]
            if char.data.strip():
                painter.setPen(self._color("default", False))
                painter.setFont(self._font_for(char.bold, char.italics, False, False))
                painter.drawText(QPointF(left, top + self._ascent), char.data)

    def _paint_status(self, painter: QPainter, area: QRectF) -> None:
        height = self.cell_height + 6
        band = QRectF(0, area.height() - height, area.width(), height)
        background = QColor(self._color("default", True))
        background.setAlpha(230)
        painter.fillRect(band, background)
        painter.setPen(self._color("default", False))
        painter.setFont(self._font_for(True, False, False, False))
        painter.drawText(band, Qt.AlignmentFlag.AlignCenter, self._status_text)

    def _blink(self) -> None:
        self._cursor_visible_phase = not self._cursor_visible_phase
        self.update()

    def focusInEvent(self, event) -> None:
        self._blink_timer.start()
        self._cursor_visible_phase = True
        self.update()
        super().focusInEvent(event)

    def focusOutEvent(self, event) -> None:
        self._blink_timer.stop()
        self.update()
        super().focusOutEvent(event)

    # ---- keyboard ------------------------------------------------------------------------

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride:
            # Claim every key except the window's few, so window shortcuts (Ctrl+B, Ctrl+Q,
            # Alt+F menus…) do not fire while typing in the guest.
            if combo_of(event.key(), event.modifiers()) not in WINDOW_KEYS:
                event.accept()
                return True
        return super().event(event)

    def focusNextPrevChild(self, next_child: bool) -> bool:
        return False    # Tab and Shift+Tab belong to the guest

    def keyPressEvent(self, event) -> None:
        combo = combo_of(event.key(), event.modifiers())
        action = WIDGET_KEYS.get(combo)
        if action is not None:
            self._run_action(action)
            return
        if combo in WINDOW_KEYS:
            event.ignore()
            return
        screen = self.model.screen
        data = encode_key(event.key(), event.modifiers(), event.text(),
                          application_cursor=screen.cursor_keys_application,
                          application_keypad=screen.keypad_application)
        if data:
            self._send_input(data)
        event.accept()

    def _run_action(self, action: str) -> None:
        lines = self.model.lines
        {
            "copy": self.copy,
            "paste": self.paste,
            "find": self.show_find_bar,
            "zoom_in": self.zoom_in,
            "zoom_out": self.zoom_out,
            "zoom_reset": self.zoom_reset,
            "page_up": lambda: self.scroll_lines(lines - 1),
            "page_down": lambda: self.scroll_lines(-(lines - 1)),
            "scroll_top": lambda: self.scroll_lines(len(self.model.screen.scrollback)),
            "scroll_bottom": self.scroll_to_bottom,
        }[action]()

    def inputMethodEvent(self, event) -> None:
        if event.commitString():
            self.send_text(event.commitString())
        event.accept()

    # ---- mouse -----------------------------------------------------------------------

    def _mouse_is_the_programs(self, event) -> bool:
        """Whether a program asked for the mouse (xterm mouse tracking). Shift, or a view
        scrolled back into history, keeps it for selection, paste and the menu, as in xterm."""
        return (self.model.screen.mouse_tracking is not None and not self._scroll_offset
                and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier)

    def _report_mouse(self, event, button: int, *, pressed: bool = True, motion: bool = False) -> None:
        """Send the program a report of `event` in the encoding and detail it asked for."""
        screen = self.model.screen
        tracking = screen.mouse_tracking
        position = event.position()
        cell = (_clamp(int(position.x() // self.cell_width), 0, self.model.columns - 1),
                _clamp(int(position.y() // self.cell_height), 0, self.model.lines - 1))
        if motion and (tracking not in ("drag", "any") or cell == self._last_mouse_cell
                       or (tracking == "drag" and button == mouse.NO_BUTTON)):
            return
        if not pressed and tracking == "press":
            return
        self._last_mouse_cell = cell
        modifiers = 0 if tracking == "press" else _mouse_modifiers(event.modifiers())
        self._write(mouse.encode_mouse(button, *cell, pressed=pressed, motion=motion,
                                       modifiers=modifiers, sgr=screen.mouse_sgr))

    def mousePressEvent(self, event) -> None:
        button = _MOUSE_BUTTONS.get(event.button())
        if button is not None and self._mouse_is_the_programs(event):
            self._report_mouse(event, button)
            event.accept()
            return
        position = event.position()
        if event.button() == Qt.MouseButton.LeftButton:
            point = self.point_at(position.x(), position.y())
            interval = QApplication.doubleClickInterval() / 1000
            if time.monotonic() - self._last_double_click < interval:
                self.model.select_line(point)          # triple click
                self._press_point = None
            else:
                self.model.clear_selection()
                self._press_point = point
            self._selection_changed()
        elif event.button() == Qt.MouseButton.MiddleButton:
            self.paste_selection()
        event.accept()

    def mouseDoubleClickEvent(self, event) -> None:
        if self._mouse_is_the_programs(event):
            self.mousePressEvent(event)    # a program sees a second press, as from xterm
            return
        if event.button() == Qt.MouseButton.LeftButton:
            position = event.position()
            self.model.select_word(self.point_at(position.x(), position.y()))
            self._last_double_click = time.monotonic()
            self._press_point = None
            self._selection_changed()
            self._publish_selection()
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        # a selection begun with Shift goes on when Shift is let go, as in xterm
        if self._press_point is None and self._mouse_is_the_programs(event):
            held = next((code for qt_button, code in _MOUSE_BUTTONS.items()
                         if event.buttons() & qt_button), mouse.NO_BUTTON)
            self._report_mouse(event, held, motion=True)
            event.accept()
            return
        if self._press_point is not None and event.buttons() & Qt.MouseButton.LeftButton:
            position = event.position()
            if position.y() < 0:
                self.scroll_lines(1)
            elif position.y() > self._terminal_area().height():
                self.scroll_lines(-1)
            self.model.select(self._press_point, self.point_at(position.x(), position.y()))
            self._selection_changed()
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        button = _MOUSE_BUTTONS.get(event.button())
        if button is not None and self._press_point is None and self._mouse_is_the_programs(event):
            self._report_mouse(event, button, pressed=False)
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self._press_point = None
            self._publish_selection()
        event.accept()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120
        if not steps:
            return
        screen = self.model.screen
        if self._mouse_is_the_programs(event):
            wheel = mouse.WHEEL_UP if steps > 0 else mouse.WHEEL_DOWN
            for _ in range(max(1, int(abs(steps)))):
                self._report_mouse(event, wheel)
        elif screen.alt_screen_active and not self._scroll_offset:
            # Full-screen programs (less, vim, man) scroll with the wheel: send arrows (xterm).
            key = Qt.Key.Key_Up if steps > 0 else Qt.Key.Key_Down
            arrow = encode_key(key, Qt.KeyboardModifier.NoModifier, "",
                               application_cursor=screen.cursor_keys_application)
            self._write(arrow * (3 * int(abs(steps)) or 3))
        else:
            self.scroll_lines(int(round(steps * 3)))
        event.accept()

    def _selection_changed(self) -> None:
        self._redraw_all = True
        self.update()

    def _publish_selection(self) -> None:
        text = self.model.selected_text()
        clipboard = QGuiApplication.clipboard()
        if text and clipboard.supportsSelection():
            clipboard.setText(text, clipboard.Mode.Selection)

    # ---- context menu ------------------------------------------------------------------

    def build_context_menu(self) -> QMenu:
        """The right-click menu (also used by tests to check what it offers)."""
        menu = QMenu(self)
        copy = menu.addAction("Copy", self.copy)
        copy.setShortcut(QKeySequence("Ctrl+Shift+C"))
        copy.setEnabled(bool(self.model.selected_text()))
        menu.addAction("Paste", self.paste).setShortcut(QKeySequence("Ctrl+Shift+V"))
        menu.addAction("Select all", self.select_all)
        menu.addSeparator()
        menu.addAction("Clear scrollback", self.clear_scrollback)
        menu.addAction("Reset terminal", self.reset_terminal)
        menu.addAction("Find…", self.show_find_bar).setShortcut(QKeySequence("Ctrl+Shift+F"))
        menu.addAction("Save output…", self._save_output_dialog)
        menu.addSeparator()
        send = menu.addMenu("Send key")
        send.addAction("Ctrl+Alt+Del", lambda: self.send_key_requested.emit("cad"))
        sysrq = send.addMenu("SysRq")
        for key, description in SYSRQ_KEYS:
            sysrq.addAction(f"{key.upper()} — {description}",
                            lambda key=key: self.send_key_requested.emit(f"sysrq:{key}"))
        view = menu.addMenu("View")
        view.addAction("Zoom in", self.zoom_in).setShortcut(QKeySequence("Ctrl+="))
        view.addAction("Zoom out", self.zoom_out).setShortcut(QKeySequence("Ctrl+-"))
        view.addAction("Normal size", self.zoom_reset).setShortcut(QKeySequence("Ctrl+0"))
        for name in SCHEMES:
            action = QAction(f"{name.capitalize()} colours", view, checkable=True)
            action.setChecked(name == self.scheme_name)
            action.triggered.connect(lambda _=False, name=name: self.set_scheme(name))
            view.addAction(action)
        return menu

    def contextMenuEvent(self, event) -> None:
        if event.reason() == event.Reason.Mouse and self._mouse_is_the_programs(event):
            event.accept()                 # the right button went to the program
            return
        menu = self.build_context_menu()
        menu.exec(event.globalPos())
        menu.deleteLater()

    def _save_output_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save console output", "console.txt",
                                              "Text files (*.txt);;All files (*)")
        if path:
            self.save_output(path)


_MOUSE_BUTTONS = {Qt.MouseButton.LeftButton: mouse.LEFT, Qt.MouseButton.MiddleButton: mouse.MIDDLE,
                  Qt.MouseButton.RightButton: mouse.RIGHT}


def _mouse_modifiers(modifiers) -> int:
    code = 0
    if modifiers & Qt.KeyboardModifier.AltModifier:
        code |= mouse.ALT
    if modifiers & Qt.KeyboardModifier.ControlModifier:
        code |= mouse.CTRL
    return code


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _blend(color: QColor, toward: QColor) -> QColor:
    """Halfway between two colours: how dim (SGR 2) text is drawn."""
    return QColor((color.red() + toward.red()) // 2, (color.green() + toward.green()) // 2,
                  (color.blue() + toward.blue()) // 2)
