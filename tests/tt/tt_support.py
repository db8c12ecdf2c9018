"""Helpers shared by the tt tests (a plain module: conftest modules are not importable by name)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def console_lines(text: str) -> list[str]:
    """Console output without the kernel's own boot lines."""
    skip = ("Linux version", "Kernel command line", "Run /", "reboot:")
    return [line for line in text.splitlines() if not line.startswith(skip)]
