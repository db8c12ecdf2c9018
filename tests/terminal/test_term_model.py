"""The Qt-free terminal model: what we add to pyte, with explicit expectations."""

import pyte
import pytest

from umlgui.terminal.model import Point, TerminalModel
from umlgui.terminal.telnet import DO, IAC, NAWS, SB, SE, WILL, TelnetFilter


def model_with(data: bytes, columns=20, lines=5, scrollback=100) -> TerminalModel:
    model = TerminalModel(columns, lines, scrollback)
    model.feed(data)
    return model


@pytest.mark.parametrize("mode", [47, 1047, 1049])
def test_alternate_screen_restores_primary(mode):
    model = model_with(b"\x1b[31mred\x1b[0m prompt\r\nline two")
    before = [dict(model.screen.buffer[y]) for y in range(5)]
    model.feed(b"\x1b[?%dh\x1b[H\x1b[2Jfull screen app\r\n~\r\n~" % mode)
    assert model.screen.alt_screen_active
    assert model.display()[0].startswith("full screen app")
    model.feed(b"\x1b[?%dl" % mode)
    assert not model.screen.alt_screen_active
    assert [dict(model.screen.buffer[y]) for y in range(5)] == before
    assert model.display()[0].startswith("red prompt")


def test_1049_saves_and_restores_the_cursor_and_alt_output_skips_scrollback():
    model = model_with(b"abc\r\ndef")
    model.feed(b"\x1b[?1049h" + b"x\r\n" * 50 + b"\x1b[10;10H")
    assert len(model.screen.scrollback) == 0
    model.feed(b"\x1b[?1049l")
    assert (model.screen.cursor.x, model.screen.cursor.y) == (3, 1)


def test_modes_for_keys_and_paste_are_tracked():
    model = model_with(b"")
    screen = model.screen
    assert not screen.cursor_keys_application and not screen.bracketed_paste
    model.feed(b"\x1b[?1h\x1b[?2004h\x1b=")
    assert screen.cursor_keys_application and screen.bracketed_paste and screen.keypad_application
    model.feed(b"\x1b[?1l\x1b[?2004l\x1b>")
    assert not screen.cursor_keys_application and not screen.bracketed_paste
    assert not screen.keypad_application


def test_attributes_colours_and_dim():
    model = model_with(b"\x1b[1;3;4;7;2mA\x1b[22mB\x1b[0m\x1b[38;5;208mC\x1b[48;2;1;2;3mD"
                       b"\x1b[4:3mE\x1b[38:2::255:0:0mF\x1b[0m\x1b[95mG")
    row = model.screen.buffer[0]
    a, b, c, d, e, f, g = (row[x] for x in range(7))
    assert (a.bold, a.italics, a.underscore, a.reverse, a.dim) == (True, True, True, True, True)
    assert (b.bold, b.dim) == (False, False)
    assert c.fg == pyte.graphics.FG_BG_256[208]
    assert d.bg == "010203"
    assert e.underscore and f.fg == "ff0000" and g.fg == "brightmagenta"


def test_wide_characters_take_two_cells_and_text_reads_back():
    model = model_with("中文 ok\r\n".encode(), columns=10)
    row = model.screen.buffer[0]
    assert row[0].data == "中" and row[1].data == "" and row[2].data == "文"
    assert model.display()[0].rstrip() == "中文 ok"


def test_utf8_split_across_chunks():
    model = TerminalModel(20, 3)
    data = "café ┌─┐".encode()
    for byte in data:
        model.feed(bytes([byte]))
    assert model.display()[0].rstrip() == "café ┌─┐"


def test_title_bell_and_replies():
    titles, bells, replies = [], [], []
    model = TerminalModel(20, 5, reply=replies.append)
    model.screen.on_title = titles.append
    model.screen.on_bell = lambda: bells.append(1)
    model.feed(b"\x1b]0;root@uml: ~\x07\x1b]2;vim file\x1b\\\x07\x1b[3;4H\x1b[6n\x1b[c")
    assert titles == ["root@uml: ~", "vim file"]
    assert bells == [1]
    assert replies == [b"\x1b[3;4R", b"\x1b[?62;22c"]


def test_cursor_shape_blink_and_visibility():
    model = model_with(b"\x1b[4 q")
    assert (model.screen.cursor_shape, model.screen.cursor_blink) == ("underline", False)
    model.feed(b"\x1b[5 q\x1b[?25l")
    assert (model.screen.cursor_shape, model.screen.cursor_blink) == ("bar", True)
    assert model.screen.cursor.hidden
    model.feed(b"\x1b[?25h\x1b[?12l\x1b[0 q")
    assert not model.screen.cursor.hidden and model.screen.cursor_shape == "block"


def test_scrollback_receives_lines_from_a_region_at_the_top_only():
    model = model_with(b"".join(b"line %d\r\n" % i for i in range(10)))
    assert [t for _, t in model.screen.text_lines()][:6] == [f"line {i}" for i in range(6)]
    kept = len(model.screen.scrollback)
    model.feed(b"\x1b[2;4r\x1b[4;1H\n\n\n\x1b[r")        # region not at the top: no scrollback
    assert len(model.screen.scrollback) == kept


def test_clear_with_ed3_erases_scrollback():
    model = model_with(b"x\r\n" * 30)
    assert model.screen.scrollback
    model.feed(b"\x1b[H\x1b[2J\x1b[3J")
    assert not model.screen.scrollback


def test_resize_keeps_cursor_line_and_round_trips_through_scrollback():
    model = model_with(b"".join(b"row %d\r\n" % i for i in range(4)) + b"$ ", lines=5)
    model.resize(20, 3)
    assert model.display() == ["row 2".ljust(20), "row 3".ljust(20), "$".ljust(20)]
    assert model.screen.cursor.y == 2
    model.resize(20, 5)
    assert model.display()[0].rstrip() == "row 0"
    assert model.screen.cursor.y == 4
    model.resize(10, 5)
    assert model.columns == 10 and model.display()[4].rstrip() == "$"


def test_rep_scroll_up_and_down():
    model = model_with(b"a\x1b[4b\r\nb\r\nc\x1b[1S")
    assert model.display()[0].rstrip() == "b"
    model.feed(b"\x1b[2T")
    assert model.display()[2].rstrip() == "b" and model.display()[1].strip() == ""
    assert model.screen.scrollback[-1][0].data == "a"
    assert model.line_text(model.screen.first_line).rstrip() == "aaaaa"


def test_prefixed_and_private_sgr_do_not_change_attributes():
    model = model_with(b"\x1b[>4;2m\x1b[?4m\x1b[0%mx")
    cell = model.screen.buffer[0][0]
    assert cell.data == "x" and not cell.underscore and not cell.dim


def test_selection_word_line_and_text():
    model = model_with(b"ls /etc/network ok\r\nsecond line", columns=30)
    top = model.screen.screen_top_line
    model.select_word(Point(top, 6))
    assert model.selected_text() == "/etc/network"
    model.select_line(Point(top + 1, 3))
    assert model.selected_text() == "second line"
    model.select(Point(top + 1, 3), Point(top, 16))
    assert model.selected_text() == "ok\nseco"   # inclusive of both ends
    model.select_all()
    assert model.selected_text() == "ls /etc/network ok\nsecond line"


def test_find_walks_matches_from_newest_to_oldest():
    model = model_with(b"".join(b"eth%d up\r\n" % (i % 3) for i in range(30)), columns=20)
    first = model.find("eth1")
    assert first and model.line_text(first.start.line).startswith("eth1")
    second = model.find("eth1", before=first.start)
    assert second.start.line < first.start.line
    after = model.find("ETH1", before=second.start, backwards=False)
    assert after.start == first.start
    assert model.find("eth1", case_sensitive=True, before=Point(model.screen.first_line, 0)) is None
    assert model.find("nothing") is None


def test_all_text_for_save_output():
    model = model_with(b"one\r\ntwo\r\n" * 5)
    text = model.all_text()
    assert text.startswith("one\ntwo\n") and text.endswith("two\n") and text.count("one") == 5


def test_dec_line_drawing_in_utf8_mode_and_shift_out():
    model = model_with(b"\x1b(0lqk\x1b(B lqk \x1b)0\x0elqk\x0f!")
    assert model.display()[0].rstrip() == "┌─┐ lqk ┌─┐!"


def test_telnet_negotiation_is_stripped_and_answered():
    telnet = TelnetFilter(columns=100, lines=30)
    text, reply = telnet.receive(bytes([IAC, WILL, 1, IAC, DO, NAWS, IAC, DO, 5]) + b"login: ")
    assert text == b"login: "
    assert bytes([IAC, SB, NAWS, 0, 100, 0, 30, IAC, SE]) in reply
    assert reply.startswith(bytes([IAC, DO, 1]))
    assert telnet.resize(120, 40) == bytes([IAC, SB, NAWS, 0, 120, 0, 40, IAC, SE])
    assert TelnetFilter.encode(b"ls\r") == b"ls\r\x00"


def test_mouse_reports_beyond_column_223_need_the_sgr_encoding():
    from umlgui.terminal.mouse import LEFT, encode_mouse

    assert encode_mouse(LEFT, 221, 0) == b"\x1b[M \xfe!"
    assert encode_mouse(LEFT, 300, 0) == b""                        # the old encoding cannot say it
    assert encode_mouse(LEFT, 300, 0, sgr=True) == b"\x1b[<0;301;1M"
