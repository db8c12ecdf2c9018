"""Listening unix-socket paths: length limit, stale sockets, live ones in the way."""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path

from umlgui.errors import ConfigError, StateError, UmlguiError

log = logging.getLogger("umlgui.net")

SUN_PATH_MAX = 107  # bytes of a filesystem socket path, leaving room for the NUL


def claim_socket_path(path: Path, what: str) -> None:
    """Make `path` free for a listening socket: remove a stale socket, refuse a live one.

    A socket file nobody listens on (connect refused) is stale, as uml_switch decides too.
    """
    size = len(os.fsencode(path))
    if size > SUN_PATH_MAX:
        raise ConfigError(f"the {what} socket path is {size} bytes long: {path}",
                          f"choose a path of at most {SUN_PATH_MAX} bytes (a unix socket limit)")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"{path} exists and is not a socket",
                          "remove it or choose another control socket path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fspath(path))
    except ConnectionRefusedError:
        log.info("removing stale %s socket %s", what, path)
        unlink_quietly(path)
        return
    except FileNotFoundError:
        return
    except OSError as error:
        raise UmlguiError(f"cannot check {what} socket {path}: {error}",
                          "remove it if no switch uses it") from error
    finally:
        probe.close()
    raise StateError(f"a switch is already listening on {path}",
                     "stop that switch first, or choose another control socket path")


def unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
