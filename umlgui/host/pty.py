"""Pseudo-terminals the worker owns: one per console, the slave handed to the kernel as fd:K."""

from __future__ import annotations

import fcntl
import os
import struct
import termios
import tty


def open_console_pty(cols: int = 80, rows: int = 24) -> tuple[int, int]:
    """(master, slave), both non-inheritable until the caller passes the slave on.

    The slave is raw so the guest's bytes pass untouched (UML puts fd channels in raw
    mode itself, the tt engine hands the slave to the guest as its tty).
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    set_window_size(master, cols, rows)
    os.set_blocking(master, False)
    return master, slave


def set_window_size(fd: int, cols: int, rows: int) -> None:
    """TIOCSWINSZ: the kernel on the other side sees the new size (SIGWINCH to its helper)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def window_size(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return cols, rows
