"""Sizes in UML's `memparse` syntax: a number with an optional K/M/G/T suffix (either case)."""

from __future__ import annotations

import re

from umlgui.errors import ConfigError

_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50, "e": 1 << 60}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kKmMgGtTpPeE]?)(?:i?[bB])?\s*$")


def parse_size(text: str | int, what: str = "size") -> int:
    """Bytes from '128M', '1G', '65536' or an int; raises ConfigError naming `what`."""
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"bad {what} {text}: must not be negative")
        return text
    match = _SIZE_RE.match(str(text))
    if not match:
        raise ConfigError(
            f"bad {what} {text!r}",
            "write a number with an optional K, M, G or T suffix, e.g. 128M or 1G",
        )
    return int(match.group(1)) * _SUFFIX[match.group(2).lower()]


def format_size(size: int) -> str:
    """The shortest exact memparse form: 134217728 -> '128M'."""
    for suffix in ("T", "G", "M", "K"):
        unit = _SUFFIX[suffix.lower()]
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def human_size(size: float) -> str:
    """A rounded size for people: 1.5 GiB, 12 MiB, 512 B."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
