"""Record the terminal test corpus: real programs on an 80x24 pty, raw output bytes.

Run once by hand (needs vim, less, procps, dialog, whiptail); the .bin files are
committed and the tests only replay them:

    python3 tests/terminal/record_corpus.py
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

CORPUS = Path(__file__).with_name("corpus")
LIMIT = 190_000     # each file stays under 200 KB

SAMPLE = Path("/tmp/umlgui-corpus-sample.txt")

# name -> (shell command, [(delay seconds, keys to type)...])
RECORDINGS = {
    "ls_color": ("ls -la --color=always /usr/share/doc | head -300; ls --color=always /usr/bin | head -200", []),
    "ls_recursive": ("ls -laR --color=always /usr/share/doc/apt /usr/share/doc/bash /usr/share/vim 2>/dev/null | head -c 150000", []),
    "vim": (f"vim -u NONE -N -c 'set nocompatible' {SAMPLE}",
            [(1.0, b"jjjjj"), (0.3, b"/Section\r"), (0.3, b"ihello \x1b"), (0.3, b":q!\r")]),
    "less": (f"less {SAMPLE}", [(0.8, b" "), (0.3, b" "), (0.3, b"/GNU\r"), (0.3, b"b"), (0.3, b"q")]),
    "top": ("top -d 0.3 -n 4", [(0.3, b"")]),
    "dialog": ("dialog --title 'Network' --checklist 'Pick interfaces' 15 50 4 "
               "eth0 'Uplink' on eth1 'Lab LAN' off eth2 'Management' off; echo rc=$?",
               [(0.8, b"j"), (0.2, b" "), (0.3, b"\r")]),
    "whiptail": ("whiptail --title 'Reboot' --yesno 'Reboot the machine now?' 10 50; echo rc=$?",
                 [(0.8, b"\t"), (0.3, b"\r")]),
    "long_log": (f"cat {SAMPLE}; seq 1 3000 | sed 's/^/[ 12.345] eth0: packet /'", []),
    "unicode": ("printf 'caf\\xc3\\xa9 na\\xc3\\xafve \\xe4\\xb8\\xad\\xe6\\x96\\x87 \\xe2\\x94\\x8c\\xe2\\x94\\x80\\xe2\\x94\\x90 "
                "\\xf0\\x9f\\x98\\x80 e\\xcc\\x81\\n'; printf '\\033[1;31mbold red\\033[0m \\033[38;5;208morange\\033[0m "
                "\\033[48;2;10;20;30mtruecolor bg\\033[0m \\033[3mitalic\\033[23m \\033[7mrev\\033[27m\\n'", []),
}


def record(command: str, keys: list[tuple[float, bytes]]) -> bytes:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {"TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/tmp",
           "PATH": "/usr/bin:/bin", "COLUMNS": "80", "LINES": "24", "TZ": "UTC"}
    process = subprocess.Popen(["sh", "-c", command], stdin=slave, stdout=slave, stderr=slave,
                               env=env, start_new_session=True,
                               preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    output = bytearray()
    pending = list(keys)
    next_at = time.monotonic() + (pending[0][0] if pending else 0)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if pending and time.monotonic() >= next_at:
            os.write(master, pending.pop(0)[1])
            next_at = time.monotonic() + (pending[0][0] if pending else 0)
        if process.poll() is not None and not ready:
            break
    process.wait(timeout=5)
    os.close(master)
    return bytes(output[:LIMIT])


def main() -> int:
    CORPUS.mkdir(exist_ok=True)
    licence = Path("/usr/share/common-licenses/GPL-3").read_text()
    SAMPLE.write_text(licence[:30_000])
    for name, (command, keys) in RECORDINGS.items():
        data = record(command, keys)
        (CORPUS / f"{name}.bin").write_bytes(data)
        print(f"{name:14} {len(data):7d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
