"""Just enough telnet for UML `port:N` consoles (Qt-free).

UML serves a `port:` console through telnetd (port-helper), which opens with option
negotiation. We want a plain character-at-a-time stream: accept the server's ECHO and
SUPPRESS-GO-AHEAD, offer our terminal type and window size (NAWS), refuse everything
else, and hand the remaining bytes to the terminal.
"""

from __future__ import annotations

import re
import struct

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SGA, TTYPE, NAWS = 1, 3, 24, 31
TTYPE_IS, TTYPE_SEND = 0, 1

_BARE_CR = re.compile(rb"\r(?!\n)")
_ACCEPTED_FROM_SERVER = {ECHO, SGA}       # the server may do these (WILL -> DO)
_OFFERED_BY_US = {TTYPE, NAWS, SGA}       # we agree to do these (DO -> WILL)


class TelnetFilter:
    """Strips telnet commands from received bytes and produces the replies.

    `receive(data)` returns (bytes for the terminal, bytes to send back).
    `encode(data)` escapes keyboard bytes for the wire.
    """

    def __init__(self, terminal_type: str = "xterm-256color", columns: int = 80, lines: int = 24):
        self.terminal_type = terminal_type
        self.columns, self.lines = columns, lines
        self.naws_enabled = False
        self._state = "data"
        self._option_verb = 0
        self._subnegotiation = bytearray()

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        if self._state == "data" and IAC not in data:
            return data, b""
        text, replies = bytearray(), bytearray()
        for byte in data:
            state = self._state
            if state == "data":
                if byte == IAC:
                    self._state = "iac"
                else:
                    text.append(byte)
            elif state == "iac":
                if byte == IAC:
                    text.append(IAC)
                    self._state = "data"
                elif byte in (DO, DONT, WILL, WONT):
                    self._option_verb = byte
                    self._state = "option"
                elif byte == SB:
                    self._subnegotiation.clear()
                    self._state = "sb"
                else:
                    self._state = "data"      # NOP, GA, AYT...: nothing to do
            elif state == "option":
                replies += self._negotiate(self._option_verb, byte)
                self._state = "data"
            elif state == "sb":
                if byte == IAC:
                    self._state = "sb_iac"
                else:
                    self._subnegotiation.append(byte)
            elif state == "sb_iac":
                if byte == SE:
                    replies += self._subnegotiate(bytes(self._subnegotiation))
                    self._state = "data"
                else:
                    self._subnegotiation.append(byte)
                    self._state = "sb"
        return bytes(text), bytes(replies)

    def _negotiate(self, verb: int, option: int) -> bytes:
        if verb == WILL:
            return bytes((IAC, DO if option in _ACCEPTED_FROM_SERVER else DONT, option))
        if verb == DO:
            if option in _OFFERED_BY_US:
                reply = bytes((IAC, WILL, option))
                if option == NAWS:
                    self.naws_enabled = True
                    reply += self.window_size()
                return reply
            return bytes((IAC, WONT, option))
        return b""   # WONT/DONT: acknowledged by silence, we never asked

    def _subnegotiate(self, payload: bytes) -> bytes:
        if payload[:2] == bytes((TTYPE, TTYPE_SEND)):
            return (bytes((IAC, SB, TTYPE, TTYPE_IS)) + self.terminal_type.upper().encode()
                    + bytes((IAC, SE)))
        return b""

    def window_size(self) -> bytes:
        """The NAWS subnegotiation for the current size (IAC bytes doubled)."""
        size = struct.pack(">HH", self.columns, self.lines).replace(b"\xff", b"\xff\xff")
        return bytes((IAC, SB, NAWS)) + size + bytes((IAC, SE))

    def resize(self, columns: int, lines: int) -> bytes:
        """Record a new size; returns what to send (nothing until the server asked)."""
        self.columns, self.lines = columns, lines
        return self.window_size() if self.naws_enabled else b""

    @staticmethod
    def encode(data: bytes) -> bytes:
        """Keyboard bytes for the wire: IAC doubled, a bare CR sent as CR NUL (RFC 854)."""
        return _BARE_CR.sub(b"\r\x00", data.replace(b"\xff", b"\xff\xff"))
