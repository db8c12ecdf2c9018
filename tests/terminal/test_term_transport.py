"""Transports with real endpoints: a command on a pty, a TCP telnet-ish console."""

import socket
import threading

import pytest
from PySide6.QtCore import QSettings

from umlgui.errors import NotFoundError, UmlguiError
from umlgui.terminal.telnet import DO, IAC, NAWS, SB, SE, WILL
from umlgui.terminal.transport import PtyTransport, TcpTransport
from umlgui.terminal.widget import TerminalWidget


def collect(transport):
    received = bytearray()
    transport.data_received.connect(received.extend)
    return received


def test_pty_runs_command_and_reports_exit(qtbot):
    transport = PtyTransport(["sh", "-c", "echo hello from pty; exit 3"])
    received = collect(transport)
    with qtbot.waitSignal(transport.closed, timeout=5000):
        pass
    assert b"hello from pty" in received
    assert transport.exit_code == 3
    assert not transport.is_open


def test_pty_resize_reaches_the_program(qtbot):
    transport = PtyTransport(["sh"], columns=80, lines=24)
    received = collect(transport)
    transport.resize(132, 43)
    assert transport.window_size() == (132, 43)
    transport.write(b"stty size; exit\n")
    with qtbot.waitSignal(transport.closed, timeout=5000):
        pass
    assert b"43 132" in received


def test_pty_terminal_end_to_end_with_widget(qtbot, tmp_path):
    terminal = TerminalWidget(settings=QSettings(str(tmp_path / "t.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(terminal)
    terminal.resize(terminal.sizeHint())
    terminal.show()
    qtbot.waitExposed(terminal)
    transport = PtyTransport(["sh"], columns=terminal.model.columns, lines=terminal.model.lines)
    terminal.set_transport(transport)
    terminal.send_text("printf '\\033]2;pty title\\007'; stty size; printf '\\033[32mgreen\\033[0m\\n'\r")
    qtbot.waitUntil(lambda: any(line.startswith("green") for line in terminal.model.display()),
                    timeout=5000)
    text = "\n".join(terminal.model.display())
    assert f"{terminal.model.lines} {terminal.model.columns}" in text
    assert terminal.title == "pty title"
    row = next(y for y, line in enumerate(terminal.model.display()) if line.startswith("green"))
    assert terminal.model.screen.buffer[row][0].fg == "green"
    transport.close()


def test_pty_missing_command_is_a_clear_error():
    with pytest.raises(NotFoundError) as error:
        PtyTransport(["no-such-command-xyz"])
    assert "command not found" in str(error.value)


def test_tcp_console_negotiates_and_carries_bytes(qtbot):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    from_client = bytearray()

    def serve():
        connection, _ = server.accept()
        connection.sendall(bytes([IAC, WILL, 1, IAC, WILL, 3, IAC, DO, NAWS]) + b"uml login: ")
        connection.settimeout(3)
        try:
            while len(from_client) < 30:
                chunk = connection.recv(1024)
                if not chunk:
                    break
                from_client.extend(chunk)
        except OSError:
            pass
        connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    transport = TcpTransport("127.0.0.1", port)
    received = collect(transport)
    qtbot.waitUntil(lambda: b"uml login: " in received, timeout=3000)
    assert IAC not in received
    transport.write(b"root\r")
    transport.resize(100, 30)
    # The size report follows the typed bytes and may arrive in a later segment.
    window_size = bytes([IAC, SB, NAWS, 0, 100, 0, 30, IAC, SE])
    qtbot.waitUntil(lambda: b"root" in from_client and window_size in from_client, timeout=3000)
    assert bytes([IAC, DO, 1]) in from_client and bytes([IAC, DO, 3]) in from_client
    assert b"root\r\x00" in from_client
    transport.close()
    server.close()


def test_tcp_refused_connection_is_a_clear_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(UmlguiError) as error:
        TcpTransport("127.0.0.1", port, timeout=1)
    assert f"127.0.0.1:{port}" in str(error.value)
