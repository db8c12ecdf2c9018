"""Byte transports a `TerminalWidget` can drive: a local pty, a connected socket, TCP.

All of them read in the GUI thread through a QSocketNotifier (reads are non-blocking and
cheap; parsing is what costs, and the widget does that per frame), write without
blocking (queueing what the kernel does not take), and support `pause_reading()` so
a flood pushes back on its producer instead of piling up in memory.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import termios

from PySide6.QtCore import QObject, QSocketNotifier, Signal

from ..errors import NotFoundError, UmlguiError
from .telnet import TelnetFilter

READ_SIZE = 64 * 1024



class Transport(QObject):
    """A byte stream to a console.

    Signals: `data_received(bytes)` for output, `closed()` once when the other end is gone.
    """

    data_received = Signal(bytes)
    closed = Signal()

    def write(self, data: bytes) -> None:
        """Send keyboard input."""
        raise NotImplementedError

    def resize(self, columns: int, lines: int) -> None:
        """Tell the other end the terminal's size (no-op where there is no way to)."""

    def close(self) -> None:
        """Close the connection; `closed` is emitted if it was open."""
        raise NotImplementedError

    def pause_reading(self) -> None:
        """Stop reading until `resume_reading()` (flow control)."""

    def resume_reading(self) -> None:
        """Read again after `pause_reading()`."""

    @property
    def is_open(self) -> bool:
        return False


class FdTransport(Transport):
    """A transport over a non-blocking file descriptor (pty master or socket)."""

    def __init__(self, fd: int, parent: QObject | None = None):
        super().__init__(parent)
        self._fd = fd
        os.set_blocking(fd, False)
        self._outgoing = bytearray()
        self._reader = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
        self._reader.activated.connect(self._on_readable)
        self._writer = QSocketNotifier(fd, QSocketNotifier.Type.Write, self)
        self._writer.setEnabled(False)
        self._writer.activated.connect(self._flush)
        self._paused = False

    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    @property
    def fd(self) -> int:
        return self._fd

    def _read(self) -> bytes:
        return os.read(self._fd, READ_SIZE)

    def _send(self, data: bytes) -> int:
        return os.write(self._fd, data)

    def _on_readable(self) -> None:
        if self._fd < 0:
            return
        try:
            data = self._read()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            # EIO: the pty's last slave closed (the command exited).
            if error.errno not in (errno.EIO, errno.ECONNRESET, errno.EBADF):
                raise
            data = b""
        if data:
            self._deliver(data)
        else:
            self._shutdown()

    def _deliver(self, data: bytes) -> None:
        self.data_received.emit(data)

    def write(self, data: bytes) -> None:
        if self._fd < 0 or not data:
            return
        self._outgoing += data
        self._flush()

    def _flush(self) -> None:
        while self._outgoing and self._fd >= 0:
            try:
                sent = self._send(bytes(self._outgoing[:READ_SIZE]))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._outgoing.clear()
                break
            del self._outgoing[:sent]
        self._writer.setEnabled(bool(self._outgoing) and self._fd >= 0)

    def pause_reading(self) -> None:
        self._paused = True
        self._reader.setEnabled(False)

    def resume_reading(self) -> None:
        self._paused = False
        if self._fd >= 0:
            self._reader.setEnabled(True)

    def close(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        if self._fd < 0:
            return
        self._reader.setEnabled(False)
        self._writer.setEnabled(False)
        fd, self._fd = self._fd, -1
        self._close_fd(fd)
        self.closed.emit()

    def _close_fd(self, fd: int) -> None:
        os.close(fd)


def set_window_size(fd: int, columns: int, lines: int) -> None:
    """TIOCSWINSZ on a tty: the kernel sends SIGWINCH to the tty's foreground group."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))


def _make_controlling_tty() -> None:
    # Runs in the child after setsid(): stdin (the pty slave) becomes its terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyTransport(FdTransport):
    """Runs a command on a new local pty; resizing sets the pty's window size."""

    def __init__(self, argv: list[str], env: dict | None = None, cwd: str | None = None,
                 columns: int = 80, lines: int = 24, parent: QObject | None = None):
        if not argv:
            raise UmlguiError("no command given for the terminal", "pass a command, e.g. bash")
        if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
            raise NotFoundError(f"command not found: {argv[0]}", "check the name and your PATH")
        master, slave = os.openpty()
        set_window_size(master, columns, lines)
        child_env = dict(os.environ if env is None else env)
        child_env.setdefault("TERM", "xterm-256color")
        child_env.setdefault("COLORTERM", "truecolor")
        try:
            self.process = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=slave, env=child_env, cwd=cwd,
                start_new_session=True, preexec_fn=_make_controlling_tty, close_fds=True)
        finally:
            os.close(slave)
        super().__init__(master, parent)

    def resize(self, columns: int, lines: int) -> None:
        if self._fd >= 0:
            set_window_size(self._fd, columns, lines)

    def window_size(self) -> tuple[int, int]:
        """(columns, lines) as the pty currently reports them."""
        lines, columns, _, _ = struct.unpack(
            "HHHH", fcntl.ioctl(self._fd, termios.TIOCGWINSZ, b"\0" * 8))
        return columns, lines

    def _close_fd(self, fd: int) -> None:
        os.close(fd)
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGHUP)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def exit_code(self) -> int | None:
        return self.process.poll()


class SocketTransport(FdTransport):
    """Any connected stream socket carrying raw console bytes.

    `resize_callback(columns, lines)`, if given, is called on resize: the machine
    worker's console socket takes the size out of band (its `resize` request).
    """

    def __init__(self, sock: socket.socket, resize_callback=None, parent: QObject | None = None):
        self.socket = sock
        self._resize_callback = resize_callback
        sock.setblocking(False)
        super().__init__(sock.fileno(), parent)

    def _read(self) -> bytes:
        return self.socket.recv(READ_SIZE)

    def _send(self, data: bytes) -> int:
        return self.socket.send(data)

    def resize(self, columns: int, lines: int) -> None:
        if self._resize_callback is not None:
            self._resize_callback(columns, lines)

    def _close_fd(self, fd: int) -> None:
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.socket.close()


class TcpTransport(SocketTransport):
    """A UML `port:N` console (or any TCP console); telnet negotiation is handled minimally."""

    def __init__(self, host: str, port: int, timeout: float = 5.0, parent: QObject | None = None):
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as error:
            raise UmlguiError(f"cannot connect to console {host}:{port}: {error.strerror or error}",
                              "is the machine running with this console on port:N?") from error
        self.telnet = TelnetFilter()
        super().__init__(sock, parent=parent)

    def _deliver(self, data: bytes) -> None:
        text, replies = self.telnet.receive(data)
        if replies:
            FdTransport.write(self, replies)
        if text:
            self.data_received.emit(text)

    def write(self, data: bytes) -> None:
        FdTransport.write(self, self.telnet.encode(data))

    def resize(self, columns: int, lines: int) -> None:
        update = self.telnet.resize(columns, lines)
        if update:
            FdTransport.write(self, update)
