"""The worker protocol's framing: one JSON object per line, both directions.

See docs/architecture.md ("The worker protocol") for the operations.
"""

from __future__ import annotations

import json
import socket

MAX_LINE = 64 * 1024


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def read_line(sock: socket.socket, limit: int = MAX_LINE) -> tuple[dict | None, bytes]:
    """Read one JSON line from a blocking socket; returns (message, bytes after it)."""
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > limit:
            raise ValueError("protocol line too long")
    line, _, rest = data.partition(b"\n")
    return json.loads(line), rest


def error_reply(problem: str, fix: str | None = None) -> dict:
    reply = {"ok": False, "error": problem}
    if fix:
        reply["fix"] = fix
    return reply
