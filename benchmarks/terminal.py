"""Terminal throughput: stock pyte `Screen`, stock `HistoryScreen` and our model, side by side.

Streams (the same bytes for every contender):
  plain   a log flood: generated syslog-style lines, 8-130 characters, CR LF endings
  color   `ls -laR --color=always /usr` as a pty would deliver it (LF -> CR LF)
  cursor  full-screen redraws the way top/htop paint: CUP, SGR, text, EL per row

Our model is fed 64 KiB at a time, as the widget does after coalescing a frame's worth
of input; the 4 KiB figure (one pty read) is printed too. Then the echo latency: a key
typed into a `TerminalWidget` on a pty while `cat` floods it, until the echoed key is on
screen and painted.

Run: python3 benchmarks/terminal.py [--quick]. The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyte  # noqa: E402

from umlgui.terminal.model import TerminalModel  # noqa: E402

COLUMNS, LINES = 80, 24
SCROLLBACK = 10_000
FRAME_CHUNK = 64 * 1024
READ_CHUNK = 4 * 1024


def plain_stream(size: int) -> bytes:
    rng = random.Random(42)
    words = ("kernel eth0 link up systemd started session user root mount /dev/ubda on / "
             "type ext4 rw relatime tcp connection from 10.0.0.2 port 22 accepted "
             "apt-get install done error warning ok").split()
    lines, total = [], 0
    while total < size:
        line = "Jan 12 10:%02d:%02d host %s: %s" % (
            rng.randrange(60), rng.randrange(60), rng.choice(words),
            " ".join(rng.choice(words) for _ in range(rng.randint(0, 18))))
        lines.append(line)
        total += len(line) + 2
    return ("\r\n".join(lines) + "\r\n").encode()


def color_stream(size: int) -> bytes:
    out = subprocess.run(["ls", "-laR", "--color=always", "/usr"], capture_output=True,
                         env={**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}).stdout
    out = out[:size]
    return out.replace(b"\n", b"\r\n")


def cursor_stream(size: int) -> bytes:
    rng = random.Random(7)
    frames, total = [], 0
    while total < size:
        rows = ["\x1b[H\x1b[1mtop - 10:%02d:%02d up 1 day, load average: %.2f\x1b[m\x1b[K"
                % (rng.randrange(60), rng.randrange(60), rng.random())]
        rows.append("\x1b[2;1H\x1b[7m  PID USER      PR  NI    VIRT    RES  %CPU COMMAND"
                    + " " * 28 + "\x1b[m")
        for row in range(3, LINES + 1):
            rows.append("\x1b[%d;1H\x1b[%dm%5d root      20   0 %7d %6d %5.1f %s\x1b[m\x1b[K" % (
                row, rng.choice((0, 1, 32, 33, 36)), rng.randrange(1, 32000),
                rng.randrange(10 ** 6), rng.randrange(10 ** 5), rng.random() * 100,
                rng.choice(("bash", "sshd", "systemd", "kworker/0:1", "python3"))))
        frame = "".join(rows)
        frames.append(frame)
        total += len(frame)
    return "".join(frames).encode()


def rate(feed, data: bytes, chunk: int) -> float:
    started = time.perf_counter()
    for offset in range(0, len(data), chunk):
        feed(data[offset:offset + chunk])
    return len(data) / (time.perf_counter() - started) / 1e6


def stock_screen_rate(data: bytes) -> float:
    stream = pyte.ByteStream(pyte.Screen(COLUMNS, LINES))
    return rate(stream.feed, data, FRAME_CHUNK)


def stock_history_rate(data: bytes) -> float:
    stream = pyte.ByteStream(pyte.HistoryScreen(COLUMNS, LINES, history=SCROLLBACK))
    return rate(stream.feed, data, FRAME_CHUNK)


def our_rate(data: bytes, chunk: int = FRAME_CHUNK, repeats: int = 3) -> float:
    best = 0.0
    for _ in range(repeats):
        model = TerminalModel(COLUMNS, LINES, scrollback=SCROLLBACK)
        best = max(best, rate(model.feed, data, chunk))
    return best


def echo_latency_ms(samples: int = 10) -> float:
    """Median ms from a key press to its echo painted, while `yes` floods the same pty.

    The pty is in cooked mode, so the kernel echoes the key into the output queue behind
    whatever flood output is already there: what a student sees when typing during a
    noisy boot. The clock stops when the frame showing the echo has been painted.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QSettings
    from PySide6.QtWidgets import QApplication

    from umlgui.terminal.transport import PtyTransport
    from umlgui.terminal.widget import TerminalWidget

    class TimedTerminal(TerminalWidget):
        """Notes when each frame has been painted."""
        painted_at: list[float] = []

        def paintEvent(self, event):
            super().paintEvent(event)
            self.painted_at.append(time.perf_counter())

    app = QApplication.instance() or QApplication([])
    settings = QSettings("/tmp/umlgui-bench-terminal.ini", QSettings.Format.IniFormat)
    terminal = TimedTerminal(settings=settings)
    terminal.resize(terminal.sizeHint())
    terminal.show()
    flood = "yes 'flood line of lowercase text, as a noisy boot or build log would print' & cat >/dev/null"
    transport = PtyTransport(["sh", "-c", flood], columns=80, lines=24)
    terminal.set_transport(transport)
    received = {"total": 0, "echo_at": None}

    def watch(data: bytes) -> None:
        where = data.find(b"Z")
        if where >= 0 and received["echo_at"] is None:
            received["echo_at"] = received["total"] + where + 1
        received["total"] += len(data)

    transport.data_received.connect(watch)

    # QEventLoop.processEvents, not QCoreApplication.processEvents: in PySide6 6.12 the
    # static one drops a reference to None on every call and crashes a long loop.
    loop = QEventLoop()

    def spin(seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)

    spin(1.0)   # let the flood reach a steady state
    latencies = []
    for _ in range(samples):
        received["echo_at"] = None
        started = time.perf_counter()
        transport.write(b"Z")
        deadline = started + 5
        shown_at = None
        while time.perf_counter() < deadline:
            loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 2)
            target = received["echo_at"]
            if target is None or terminal.bytes_fed < target:
                continue
            if shown_at is None:
                shown_at = time.perf_counter()
                frames = len(terminal.painted_at)
            elif len(terminal.painted_at) > frames:
                latencies.append((terminal.painted_at[frames] - started) * 1000)
                break
        spin(0.2)
    fed_during = terminal.bytes_fed
    transport.close()
    terminal.close()
    latencies.sort()
    print(f"echo latency samples (ms): {[round(x, 1) for x in latencies]}; "
          f"flood parsed meanwhile: {fed_during / 1e6:.1f} MB")
    return latencies[len(latencies) // 2] if latencies else float("nan")


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    size = 1_000_000 if quick else 4_000_000
    stock_size = 200_000 if quick else 500_000
    streams = {
        "plain": plain_stream(size),
        "color": color_stream(size // 2),
        "cursor": cursor_stream(size // 2),
    }
    results: dict[str, float | None] = {}
    print(f"{'stream':8} {'bytes':>9} {'ours MB/s':>10} {'ours@4KiB':>10} "
          f"{'Screen':>8} {'HistoryScreen':>14}")
    for name, data in streams.items():
        ours = our_rate(data)
        ours_small = our_rate(data, READ_CHUNK, repeats=1)
        sample = data[:stock_size]
        stock = stock_screen_rate(sample)
        history = stock_history_rate(sample)
        print(f"{name:8} {len(data):9d} {ours:10.2f} {ours_small:10.2f} {stock:8.2f} {history:14.2f}")
        results[f"{name}_mbps"] = round(ours, 2)
        results[f"{name}_4k_chunks_mbps"] = round(ours_small, 2)
        results[f"stock_screen_{name}_mbps"] = round(stock, 3)
        results[f"stock_history_{name}_mbps"] = round(history, 3)
    latency = echo_latency_ms(5 if quick else 15)
    results["echo_latency_ms"] = None if latency is None else round(latency, 1)
    print(f"echo latency during a flood (median): {latency if latency is None else round(latency, 1)} ms")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
