"""Run slirp on a pseudo-terminal and relay it to UML's slirp transport.

UML starts the slirp program with a socketpair as stdin/stdout, but Debian's slirp 1.0.17
exits at once (status 1, "helper_wait : process ... exited with status 0x100") when its stdin is
not a terminal. This helper gives slirp a raw pty and copies bytes both ways:

    UML  <-- socketpair -->  python3 -m umlgui.net.slirptty [/usr/bin/slirp ARGS]  <-- pty -->  slirp

The module name has no '_' on purpose: UML turns '_' in `ethN=slirp,...` fields into spaces.
"""

from __future__ import annotations

import errno
import os
import pty
import select
import signal
import sys
import tty

CHUNK = 65536


def spawn_on_pty(argv: list[str]) -> tuple[int, int]:
    """Start argv with a raw pty as stdin/stdout; return (pid, master fd)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    pid = os.fork()
    if pid == 0:
        os.close(master)
        os.setsid()
        os.dup2(slave, 0)
        os.dup2(slave, 1)
        if slave > 1:
            os.close(slave)
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(slave)
    return pid, master


def relay(outside_in: int, outside_out: int, master: int) -> None:
    """Copy outside_in -> pty and pty -> outside_out until either side ends."""
    while True:
        readable, _, _ = select.select([outside_in, master], [], [])
        for fd in readable:
            try:
                data = os.read(fd, CHUNK)
            except OSError as error:
                if error.errno == errno.EIO:  # slirp exited: the pty has no slave any more
                    return
                raise
            if not data:
                return
            _write_all(master if fd == outside_in else outside_out, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        from umlgui.net.slirp import find_slirp

        args = [find_slirp()]
    pid, master = spawn_on_pty(args)
    try:
        relay(0, 1, master)
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
