"""TerminalWidget with pytest-qt: keys to bytes on a real socket, paste, mouse, find, menu,
settings, status line and flow of output."""

import socket
import sys
import time

import pytest
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QAction, QContextMenuEvent, QGuiApplication, QKeySequence, QWheelEvent
from PySide6.QtWidgets import QApplication, QMainWindow

from umlgui.terminal.transport import PtyTransport, SocketTransport
from umlgui.terminal.widget import TerminalWidget

K = Qt.Key
M = Qt.KeyboardModifier


class Peer:
    """The far end of a socketpair: what the guest would read."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        sock.setblocking(False)

    def read(self, qtbot, expected: int = 1, timeout: float = 2.0) -> bytes:
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data += self.sock.recv(65536)
            except BlockingIOError:
                pass
            if len(data) >= expected:
                qtbot.wait(20)
                try:
                    data += self.sock.recv(65536)
                except BlockingIOError:
                    pass
                return data
            qtbot.wait(10)
        return data


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "terminal.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def terminal(qtbot, settings):
    widget = TerminalWidget(settings=settings)
    qtbot.addWidget(widget)
    widget.resize(widget.sizeHint())
    widget.show()
    qtbot.waitExposed(widget)
    widget.setFocus()
    return widget


@pytest.fixture
def wired(terminal):
    ours, theirs = socket.socketpair()
    sizes = []
    transport = SocketTransport(ours, resize_callback=lambda c, r: sizes.append((c, r)))
    terminal.set_transport(transport)
    yield terminal, Peer(theirs), sizes
    transport.close()
    theirs.close()


KEYS = [
    (K.Key_Up, M.NoModifier, b"\x1b[A"), (K.Key_Down, M.NoModifier, b"\x1b[B"),
    (K.Key_Right, M.NoModifier, b"\x1b[C"), (K.Key_Left, M.NoModifier, b"\x1b[D"),
    (K.Key_Home, M.NoModifier, b"\x1b[H"), (K.Key_End, M.NoModifier, b"\x1b[F"),
    (K.Key_PageUp, M.NoModifier, b"\x1b[5~"), (K.Key_PageDown, M.NoModifier, b"\x1b[6~"),
    (K.Key_Insert, M.NoModifier, b"\x1b[2~"), (K.Key_Delete, M.NoModifier, b"\x1b[3~"),
    (K.Key_F1, M.NoModifier, b"\x1bOP"), (K.Key_F4, M.NoModifier, b"\x1bOS"),
    (K.Key_F5, M.NoModifier, b"\x1b[15~"), (K.Key_F10, M.NoModifier, b"\x1b[21~"),
    (K.Key_F12, M.NoModifier, b"\x1b[24~"), (K.Key_Tab, M.NoModifier, b"\t"),
    (K.Key_Backtab, M.ShiftModifier, b"\x1b[Z"), (K.Key_Backspace, M.NoModifier, b"\x7f"),
    (K.Key_Backspace, M.ControlModifier, b"\x08"), (K.Key_Return, M.NoModifier, b"\r"),
    (K.Key_Escape, M.NoModifier, b"\x1b"), (K.Key_C, M.ControlModifier, b"\x03"),
    (K.Key_D, M.ControlModifier, b"\x04"), (K.Key_BracketLeft, M.ControlModifier, b"\x1b"),
    (K.Key_Space, M.ControlModifier, b"\x00"), (K.Key_X, M.AltModifier, b"\x1bx"),
    (K.Key_Up, M.ControlModifier, b"\x1b[1;5A"), (K.Key_Right, M.ShiftModifier, b"\x1b[1;2C"),
    (K.Key_Delete, M.ControlModifier, b"\x1b[3;5~"), (K.Key_F2, M.AltModifier, b"\x1b[1;3Q"),
]


@pytest.mark.parametrize("key,modifiers,expected", KEYS)
def test_keys_send_xterm_sequences(qtbot, wired, key, modifiers, expected):
    terminal, peer, _ = wired
    qtbot.keyClick(terminal, key, modifiers)
    assert peer.read(qtbot, len(expected)) == expected


def test_typed_text_and_unicode(qtbot, wired):
    terminal, peer, _ = wired
    qtbot.keyClicks(terminal, "ls -l")
    assert peer.read(qtbot, 5) == b"ls -l"
    qtbot.keyClick(terminal, K.Key_Eacute, M.NoModifier)   # text comes from the event
    terminal.send_text("é")
    assert "é".encode() in peer.read(qtbot, 2)


def test_application_cursor_keys(qtbot, wired):
    terminal, peer, _ = wired
    terminal.feed(b"\x1b[?1h")
    terminal.flush()
    qtbot.keyClick(terminal, K.Key_Up)
    qtbot.keyClick(terminal, K.Key_Home)
    assert peer.read(qtbot, 6) == b"\x1bOA\x1bOH"


def test_window_shortcuts_do_not_steal_keys_but_f11_stays(qtbot, settings):
    window = QMainWindow()
    qtbot.addWidget(window)
    terminal = TerminalWidget(window, settings=settings)
    window.setCentralWidget(terminal)
    fired = []
    for sequence in ("Ctrl+B", "Ctrl+Q", "F11"):
        action = QAction(sequence, window)
        action.setShortcut(QKeySequence(sequence))
        action.triggered.connect(lambda _=False, s=sequence: fired.append(s))
        window.addAction(action)
    ours, theirs = socket.socketpair()
    terminal.set_transport(SocketTransport(ours))
    window.show()
    qtbot.waitExposed(window)
    terminal.setFocus()
    peer = Peer(theirs)
    qtbot.keyClick(terminal, K.Key_B, M.ControlModifier)
    qtbot.keyClick(terminal, K.Key_Q, M.ControlModifier)
    assert peer.read(qtbot, 2) == b"\x02\x11"
    qtbot.keyClick(terminal, K.Key_F11)
    assert fired == ["F11"]
    assert peer.read(qtbot, 1, timeout=0.2) == b""


def test_copy_and_paste_with_bracketed_paste(qtbot, wired):
    terminal, peer, _ = wired
    terminal.feed(b"hello world\r\n")
    terminal.flush()
    terminal.model.select_line(terminal.point_at(1, 1))
    qtbot.keyClick(terminal, K.Key_C, M.ControlModifier | M.ShiftModifier)
    assert QGuiApplication.clipboard().text() == "hello world"
    QGuiApplication.clipboard().setText("echo 1\necho 2")
    qtbot.keyClick(terminal, K.Key_V, M.ControlModifier | M.ShiftModifier)
    assert peer.read(qtbot, 13) == b"echo 1\recho 2"
    terminal.feed(b"\x1b[?2004h")
    terminal.flush()
    terminal.paste_text("rm x\x1b[201~; evil\n")
    assert peer.read(qtbot, 20) == b"\x1b[200~rm x; evil\r\x1b[201~"


def test_middle_click_pastes_selection_or_clipboard(qtbot, wired):
    terminal, peer, _ = wired
    clipboard = QGuiApplication.clipboard()
    if clipboard.supportsSelection():
        clipboard.setText("from selection", clipboard.Mode.Selection)
        expected = b"from selection"
    else:
        clipboard.setText("from clipboard")
        expected = b"from clipboard"
    qtbot.mouseClick(terminal, Qt.MouseButton.MiddleButton, pos=QPoint(10, 10))
    assert peer.read(qtbot, len(expected)) == expected


def test_double_and_triple_click_select_word_and_line(qtbot, terminal):
    terminal.feed(b"cat /etc/hostname now\r\n")
    terminal.flush()
    x = int(terminal.cell_width * 6.5)
    y = int(terminal.cell_height / 2)
    qtbot.mouseDClick(terminal, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    assert terminal.model.selected_text() == "/etc/hostname"
    qtbot.mousePress(terminal, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    qtbot.mouseRelease(terminal, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    assert terminal.model.selected_text() == "cat /etc/hostname now"


def test_drag_selects(qtbot, terminal):
    terminal.feed(b"abcdef\r\n")
    terminal.flush()
    y = int(terminal.cell_height / 2)
    qtbot.mousePress(terminal, Qt.MouseButton.LeftButton, pos=QPoint(int(terminal.cell_width * 1.5), y))
    qtbot.mouseMove(terminal, QPoint(int(terminal.cell_width * 3.5), y))
    qtbot.mouseRelease(terminal, Qt.MouseButton.LeftButton, pos=QPoint(int(terminal.cell_width * 3.5), y))
    assert terminal.model.selected_text() == "bcd"


def test_scrollback_paging_keys_stay_local(qtbot, wired):
    terminal, peer, _ = wired
    terminal.feed(b"".join(b"line %d\r\n" % i for i in range(200)))
    terminal.flush()
    qtbot.keyClick(terminal, K.Key_PageUp, M.ShiftModifier)
    assert terminal.scroll_offset == terminal.model.lines - 1
    qtbot.keyClick(terminal, K.Key_PageDown, M.ShiftModifier)
    assert terminal.scroll_offset == 0
    terminal.scroll_lines(50)
    qtbot.keyClick(terminal, K.Key_A)                 # typing returns to the bottom
    assert terminal.scroll_offset == 0
    assert peer.read(qtbot, 1) == b"a"


def test_output_while_scrolled_back_keeps_the_view(qtbot, terminal):
    terminal.feed(b"".join(b"line %d\r\n" % i for i in range(100)))
    terminal.flush()
    terminal.scroll_lines(30)
    top = terminal._view_top()
    terminal.feed(b"more\r\n" * 10)
    terminal.flush()
    assert terminal._view_top() == top and terminal.scroll_offset == 40


def test_resize_reports_size(qtbot, wired):
    terminal, _, sizes = wired
    changed = []
    terminal.size_changed.connect(lambda c, r: changed.append((c, r)))
    terminal.resize(int(terminal.cell_width * 100) + 40, terminal.cell_height * 30 + 5)
    qtbot.waitUntil(lambda: bool(sizes) and sizes[-1] == (terminal.model.columns, 30), timeout=2000)
    assert changed[-1] == (terminal.model.columns, 30)
    assert terminal.model.columns >= 100


def test_title_and_bell_signals(qtbot, terminal):
    with qtbot.waitSignal(terminal.title_changed) as title:
        terminal.feed(b"\x1b]2;root@lab1: /etc\x07")
    assert title.args == ["root@lab1: /etc"]
    with qtbot.waitSignal(terminal.bell):
        terminal.feed(b"\x07")


def test_status_line_is_an_overlay(qtbot, terminal):
    terminal.feed(b"login: ")
    terminal.flush()
    before = terminal.model.display()
    terminal.show_status("[machine halted — reconnecting…]")
    terminal.repaint()
    assert terminal.status_text.startswith("[machine halted")
    assert terminal.model.display() == before
    terminal.clear_status()
    assert terminal.status_text is None


def test_find_bar_selects_matches(qtbot, terminal):
    terminal.feed(b"".join(b"%d eth0 up\r\n" % i for i in range(300)))
    terminal.flush()
    qtbot.keyClick(terminal, K.Key_F, M.ControlModifier | M.ShiftModifier)
    assert terminal._find_bar.isVisible()
    qtbot.keyClicks(terminal._find_bar.edit, "17 eth0")
    assert terminal.model.selected_text() == "17 eth0"      # newest: "217 eth0"
    line = terminal.model.selection[0].line
    assert terminal.model.line_text(line).startswith("217")
    assert terminal._view_top() <= line < terminal._view_top() + terminal.model.lines
    terminal.find("17 eth0")
    assert terminal.model.line_text(terminal.model.selection[0].line).startswith("117")
    qtbot.keyClick(terminal._find_bar.edit, K.Key_Escape)
    assert not terminal._find_bar.isVisible()


def test_context_menu_offers_actions_and_send_keys(qtbot, terminal):
    menu = terminal.build_context_menu()
    labels = [a.text() for a in menu.actions() if a.text()]
    for label in ("Copy", "Paste", "Select all", "Clear scrollback", "Find…", "Save output…",
                  "Send key"):
        assert label in labels
    send = next(a.menu() for a in menu.actions() if a.text() == "Send key")
    requested = []
    terminal.send_key_requested.connect(requested.append)
    next(a for a in send.actions() if a.text() == "Ctrl+Alt+Del").trigger()
    sysrq = next(a.menu() for a in send.actions() if a.text() == "SysRq")
    next(a for a in sysrq.actions() if a.text().startswith("S ")).trigger()
    assert requested == ["cad", "sysrq:s"]


def test_clear_scrollback_and_save_output(qtbot, terminal, tmp_path):
    terminal.feed(b"".join(b"log %d\r\n" % i for i in range(100)))
    terminal.flush()
    path = tmp_path / "out.txt"
    terminal.save_output(str(path))
    saved = path.read_text().splitlines()
    assert saved[0] == "log 0" and "log 99" in saved
    terminal.clear_scrollback()
    assert not terminal.model.screen.scrollback


def test_settings_persist_scheme_zoom_and_scrollback(qtbot, settings):
    first = TerminalWidget(settings=settings)
    qtbot.addWidget(first)
    size = first.font_size
    first.set_scheme("light")
    qtbot.keyClick(first, K.Key_Equal, M.ControlModifier)
    first.set_scrollback_lines(500)
    second = TerminalWidget(settings=settings)
    qtbot.addWidget(second)
    assert second.scheme_name == "light"
    assert second.font_size == size + 1
    assert second.model.screen.scrollback.maxlen == 500
    qtbot.keyClick(second, K.Key_Minus, M.ControlModifier)
    assert second.font_size == size


def test_flood_is_parsed_in_frames_not_all_at_once(qtbot, terminal):
    flood = b"".join(b"%06d some flood text for the frame budget test\r\n" % i for i in range(60000))
    painted = terminal.frames_painted
    terminal.feed(flood)
    qtbot.waitUntil(lambda: terminal.bytes_fed == len(flood), timeout=20000)
    assert terminal.frames_painted > painted
    assert terminal.model.display()[-2].startswith("059999")


def test_rendering_covers_colours_and_cursor_shapes(qtbot, terminal):
    terminal.feed("\x1b[1;31mred\x1b[0m \x1b[7mrev\x1b[0m \x1b[2mdim\x1b[0m \x1b[48;5;27mbg\x1b[0m "
                  "中文 ┌─┐\x1b[4 q".encode())
    terminal.flush()
    terminal.model.select_all()
    for scheme in ("dark", "light"):
        terminal.set_scheme(scheme)
        image = terminal.grab().toImage()
        assert not image.isNull()
    background = terminal._color("default", False)
    assert image.pixelColor(1, image.height() - 2) != terminal._color("red", True)
    assert background.isValid()


# ---- mouse reporting: what htop, mc, vim (`set mouse=a`) and tmux in a guest receive --------

def cell_point(terminal, column: int, row: int) -> QPoint:
    return QPoint(int(terminal.cell_width * (column + 0.5)), int(terminal.cell_height * (row + 0.5)))


def program_asks_for_mouse(terminal, modes: bytes = b"\x1b[?1000h\x1b[?1006h") -> None:
    terminal.feed(modes)
    terminal.flush()


def wheel_event(terminal, where: QPoint, modifiers=M.NoModifier) -> QWheelEvent:
    return QWheelEvent(QPointF(where), QPointF(terminal.mapToGlobal(where)), QPoint(), QPoint(0, 120),
                       Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)


def test_a_program_that_asks_for_the_mouse_gets_clicks_not_a_selection(qtbot, wired):
    terminal, peer, _ = wired
    terminal.feed(b"abcdef\r\n")
    program_asks_for_mouse(terminal)
    qtbot.mouseClick(terminal, Qt.MouseButton.LeftButton, pos=cell_point(terminal, 5, 2))
    assert peer.read(qtbot, 20) == b"\x1b[<0;6;3M\x1b[<0;6;3m"
    qtbot.mouseClick(terminal, Qt.MouseButton.RightButton, M.ControlModifier, pos=cell_point(terminal, 0, 0))
    assert peer.read(qtbot, 20) == b"\x1b[<18;1;1M\x1b[<18;1;1m"    # right button (2) + Ctrl (16)
    QApplication.sendEvent(terminal, wheel_event(terminal, cell_point(terminal, 3, 1)))
    assert peer.read(qtbot, 10) == b"\x1b[<64;4;2M"                 # wheel up
    assert terminal.model.selected_text() == ""


def test_shift_keeps_the_mouse_for_selection_and_the_menu(qtbot, wired, monkeypatch):
    terminal, peer, _ = wired
    terminal.feed(b"abcdef\r\n")
    program_asks_for_mouse(terminal)
    start, end = cell_point(terminal, 1, 0), cell_point(terminal, 3, 0)
    qtbot.mousePress(terminal, Qt.MouseButton.LeftButton, M.ShiftModifier, pos=start)
    qtbot.mouseMove(terminal, end)
    qtbot.mouseRelease(terminal, Qt.MouseButton.LeftButton, M.ShiftModifier, pos=end)
    assert terminal.model.selected_text() == "bcd"
    assert peer.read(qtbot, 1, timeout=0.3) == b""

    menus = []
    monkeypatch.setattr(terminal, "build_context_menu", lambda: menus.append(1) or _ClosedMenu())
    right_click = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, start, terminal.mapToGlobal(start))
    QApplication.sendEvent(terminal, right_click)
    assert menus == []                                          # the right button is the program's
    QApplication.sendEvent(terminal, QContextMenuEvent(
        QContextMenuEvent.Reason.Mouse, start, terminal.mapToGlobal(start), M.ShiftModifier))
    assert menus == [1]


class _ClosedMenu:
    def exec(self, *args):
        return None

    def deleteLater(self):
        pass


def test_old_encoding_x10_and_reset_letting_go_of_the_mouse(qtbot, wired):
    terminal, peer, _ = wired
    terminal.feed(b"abcdef\r\n")
    program_asks_for_mouse(terminal, b"\x1b[?1000h")              # CSI M, values + 32
    qtbot.mouseClick(terminal, Qt.MouseButton.LeftButton, pos=cell_point(terminal, 5, 2))
    assert peer.read(qtbot, 12) == b"\x1b[M &#" + b"\x1b[M#&#"     # press, then release (3)
    program_asks_for_mouse(terminal, b"\x1b[?1000l\x1b[?9h")      # X10: presses only
    qtbot.mouseClick(terminal, Qt.MouseButton.MiddleButton, M.ControlModifier, pos=cell_point(terminal, 0, 0))
    assert peer.read(qtbot, 6) == b"\x1b[M!!!"                     # no modifiers in X10
    program_asks_for_mouse(terminal, b"\x1b[?1003h\x1b[?1006h")   # and the program dies...
    next(a for a in terminal.build_context_menu().actions() if a.text() == "Reset terminal").trigger()
    assert terminal.model.screen.mouse_tracking is None and not terminal.model.screen.mouse_sgr
    terminal.feed(b"abcdef\r\n")
    terminal.flush()
    start, end = cell_point(terminal, 1, 0), cell_point(terminal, 3, 0)
    qtbot.mousePress(terminal, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(terminal, end)
    qtbot.mouseRelease(terminal, Qt.MouseButton.LeftButton, pos=end)
    assert terminal.model.selected_text() == "bcd"                 # the mouse selects again


def test_drag_and_motion_reports(qtbot, wired):
    terminal, peer, _ = wired
    program_asks_for_mouse(terminal, b"\x1b[?1002h\x1b[?1006h")
    qtbot.mousePress(terminal, Qt.MouseButton.LeftButton, pos=cell_point(terminal, 1, 1))
    qtbot.mouseMove(terminal, cell_point(terminal, 1, 1))          # same cell: nothing new
    qtbot.mouseMove(terminal, cell_point(terminal, 4, 1))
    qtbot.mouseRelease(terminal, Qt.MouseButton.LeftButton, pos=cell_point(terminal, 4, 1))
    assert peer.read(qtbot, 30) == b"\x1b[<0;2;2M\x1b[<32;5;2M\x1b[<0;5;2m"
    qtbot.mouseMove(terminal, cell_point(terminal, 6, 3))          # no button: not in 1002
    assert peer.read(qtbot, 1, timeout=0.3) == b""
    program_asks_for_mouse(terminal, b"\x1b[?1003h")
    qtbot.mouseMove(terminal, cell_point(terminal, 7, 3))
    assert peer.read(qtbot, 11) == b"\x1b[<35;8;4M"                # motion (32) + no button (3)


def test_a_program_on_a_pty_reads_the_click(qtbot, terminal):
    script = ("import os, sys, tty\n"
              "tty.setraw(0)\n"
              "os.write(1, b'\\x1b[?1000h\\x1b[?1006hready\\r\\n')\n"
              "data = b''\n"
              "while not data.endswith(b'm'):\n"
              "    data += os.read(0, 64)\n"
              "os.write(1, b'\\x1b[?1000l\\x1b[?1006lgot ' + repr(data).encode() + b'\\r\\n')\n")
    transport = PtyTransport([sys.executable, "-c", script], columns=terminal.model.columns,
                             lines=terminal.model.lines)
    terminal.set_transport(transport)
    qtbot.waitUntil(lambda: "ready" in terminal.model.display()[0], timeout=5000)
    qtbot.mouseClick(terminal, Qt.MouseButton.LeftButton, pos=cell_point(terminal, 9, 4))
    expected = r"got b'\x1b[<0;10;5M\x1b[<0;10;5m'"                # cell (9, 4), 1-based
    qtbot.waitUntil(lambda: terminal.model.display()[1].startswith(expected), timeout=5000)
    transport.close()
