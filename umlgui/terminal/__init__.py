"""The console widget: a pyte-backed terminal model, its Qt widget and byte transports.

Qt-free: `model` (TerminalModel), `screen` (TerminalScreen), `parser`, `telnet`, `schemes`.
Qt: `widget` (TerminalWidget), `transport` (PtyTransport, SocketTransport, TcpTransport),
`keys`, `app` (`umlgui terminal -- CMD`). Import the Qt modules explicitly; this package
imports nothing so the Qt-free parts stay usable without Qt.
"""
