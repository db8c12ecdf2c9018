"""Helpers shared by the network tests (a plain module: conftest modules are not importable by name)."""

BROADCAST = b"\xff" * 6


def mac(n: int) -> str:
    return f"fe:fd:00:00:00:{n:02x}"
