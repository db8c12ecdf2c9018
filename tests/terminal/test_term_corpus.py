"""Replay recorded program output into our screen and into the reference; compare cells.

Our model is fed the original bytes cut at random points (so sequences and UTF-8
characters straddle chunks); the reference gets the sanitised stream token by token.
They are compared cell by cell (text and attributes) plus the cursor at many points.
"""

import random
from pathlib import Path

import pytest
from term_reference import ReferenceScreen, ReferenceStream, Sanitiser, differences

from umlgui.terminal.model import TerminalModel

CORPUS = Path(__file__).with_name("corpus")
NAMES = sorted(path.stem for path in CORPUS.glob("*.bin"))


def replay(name: str, seed: int, checkpoints: int = 60):
    data = (CORPUS / f"{name}.bin").read_bytes()
    ours = TerminalModel(80, 24)
    reference = ReferenceScreen(80, 24)
    stream = ReferenceStream(reference)
    rng = random.Random(seed)
    tokens = list(Sanitiser().tokens(data))
    every = max(1, len(tokens) // checkpoints)
    backlog = b""
    for index, (original, sanitised) in enumerate(tokens):
        backlog += original
        stream.feed(sanitised)
        if index % every == 0 or index == len(tokens) - 1:
            while backlog:            # random cuts, including inside sequences
                cut = rng.randint(1, max(1, len(backlog)))
                ours.feed(backlog[:cut])
                backlog = backlog[cut:]
            problems = differences(ours.screen, reference)
            assert not problems, f"{name} after token {index}: " + "; ".join(problems)
    return ours, reference


@pytest.mark.parametrize("name", NAMES)
def test_corpus_matches_reference(name):
    replay(name, seed=1)


def test_corpus_has_every_program():
    assert {"ls_color", "vim", "less", "top", "dialog", "whiptail", "long_log"} <= set(NAMES)
    assert all(path.stat().st_size < 200_000 for path in CORPUS.glob("*.bin"))


@pytest.mark.parametrize("name", ["vim", "less", "whiptail"])
def test_alternate_screen_restores_primary_exactly(name):
    """Full-screen programs leave the primary screen as it was before they started."""
    data = (CORPUS / f"{name}.bin").read_bytes()
    prefix = b"\x1b[1;31mbefore\x1b[0m the program\r\nsecond line\r\n$ "
    model = TerminalModel(80, 24)
    model.feed(prefix)
    before = [dict(model.screen.buffer[y]) for y in range(24)]
    enter = data.find(b"\x1b[?1049h")
    leave = data.rfind(b"\x1b[?1049l")
    assert 0 <= enter < leave
    model.feed(data[:leave])
    assert model.screen.alt_screen_active
    model.feed(b"\x1b[?1049l")
    assert not model.screen.alt_screen_active
    after = [dict(model.screen.buffer[y]) for y in range(24)]
    assert after == before
    assert (model.screen.cursor.x, model.screen.cursor.y) == (2, 2)


def test_dialog_draws_real_box_lines():
    """dialog selects DEC line drawing (ESC ( 0), which stock pyte ignores in UTF-8 mode."""
    data = (CORPUS / "dialog.bin").read_bytes()
    model = TerminalModel(80, 24)
    model.feed(data[:data.rfind(b"\x1b[?1049l")])
    screen_text = "\n".join(model.display())
    assert "┌" in screen_text and "─" in screen_text and "│" in screen_text
    assert "lqqq" not in screen_text
    # back-colour erase: the dialog's blue backdrop fills whole rows
    assert model.screen.buffer[1][79].bg == "blue"


def test_long_log_fills_scrollback_in_order():
    """Every line of a long log is kept, in order, across scrollback and screen."""
    data = (CORPUS / "long_log.bin").read_bytes()
    model = TerminalModel(80, 24, scrollback=10_000)
    for offset in range(0, len(data), 4096):
        model.feed(data[offset:offset + 4096])
    texts = [text for _, text in model.screen.text_lines()]
    packets = [int(t.rsplit(" ", 1)[1]) for t in texts if "] eth0: packet " in t]
    assert packets == list(range(1, 3001))
    assert texts[0].strip() == "GNU GENERAL PUBLIC LICENSE"


def test_small_scrollback_keeps_only_the_newest_lines():
    data = (CORPUS / "long_log.bin").read_bytes()
    model = TerminalModel(80, 24, scrollback=100)
    model.feed(data)
    screen = model.screen
    assert len(screen.scrollback) == 100
    texts = [text for _, text in screen.text_lines()]
    assert len(texts) == 124
    assert texts[-2] == "[ 12.345] eth0: packet 3000"
    assert screen.first_line == screen.dropped_lines > 0
