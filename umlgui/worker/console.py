"""One console the worker serves: a pty master, its log, its scrollback and its clients."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from umlgui.host.pty import open_console_pty, set_window_size

REPLAY_BYTES = 256 * 1024          # what a late client gets replayed
CLIENT_BACKLOG_LIMIT = 8 << 20     # a client that stops reading is dropped past this


class ConsoleClient:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.pending = bytearray()

    def fileno(self) -> int:
        return self.sock.fileno()


class Console:
    def __init__(self, name: str, log_path: Path, cols: int = 80, rows: int = 24):
        self.name = name
        self.master, self.slave = open_console_pty(cols, rows)
        self.log = open(log_path, "ab", buffering=0)
        self.scrollback = bytearray()
        self.clients: list[ConsoleClient] = []

    def read_guest_output(self) -> bytes:
        """Drain the pty; returns what was read (b'' when nothing was there)."""
        chunks = []
        while True:
            try:
                data = os.read(self.master, 65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:   # EIO: no slave holder left (cannot happen while we hold the slave)
                break
            if not data:
                break
            chunks.append(data)
        data = b"".join(chunks)
        if data:
            self._record(data)
        return data

    def _record(self, data: bytes) -> None:
        self.log.write(data)
        self.scrollback += data
        if len(self.scrollback) > 2 * REPLAY_BYTES:
            del self.scrollback[:-REPLAY_BYTES]
        for client in list(self.clients):
            client.pending += data
            if len(client.pending) > CLIENT_BACKLOG_LIMIT:
                self.drop(client)

    def replay(self) -> bytes:
        return bytes(self.scrollback[-REPLAY_BYTES:])

    def write_guest_input(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                # the guest is not reading: let the pty buffer absorb it, never block the worker
                return
            view = view[written:]

    def resize(self, cols: int, rows: int) -> None:
        set_window_size(self.master, cols, rows)

    def add_client(self, client: ConsoleClient, replay: bool) -> None:
        if replay:
            client.pending += self.replay()
        self.clients.append(client)

    def flush_client(self, client: ConsoleClient) -> bool:
        """Send what is pending; False when the client is gone."""
        while client.pending:
            try:
                sent = client.sock.send(client.pending)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            del client.pending[:sent]
        return True

    def drop(self, client: ConsoleClient) -> None:
        if client in self.clients:
            self.clients.remove(client)
        try:
            client.sock.close()
        except OSError:
            pass

    def close(self) -> None:
        for client in list(self.clients):
            self.drop(client)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
