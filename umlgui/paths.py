"""Where umlgui keeps things.

data home  ($UMLGUI_HOME, else the platform's user data dir)
  machines/NAME.toml     one machine definition each
  disks/NAME/            the machine's own files (COW layers, images it created)
  templates/NAME/        built templates: base.img (read-only), root/ (tt engine), template.toml
  logs/NAME/             console logs, kernel stderr, worker log
runtime dir (short, because unix socket paths are limited to 108 bytes)
  NAME/worker.sock       the machine's worker
  NAME/state.json        state written by the worker
  NAME/NAME/mconsole     UML's own instance dir (uml_dir=runtime/NAME/, umid=NAME)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import platformdirs

APP = "umlgui"


def data_home() -> Path:
    override = os.environ.get("UMLGUI_HOME")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP))
    return path.absolute()


def runtime_home() -> Path:
    """A short directory for sockets; distinct per data home so test runs never collide."""
    override = os.environ.get("UMLGUI_RUNTIME")
    if override:
        return Path(override).absolute()
    tag = hashlib.sha1(str(data_home()).encode()).hexdigest()[:8]
    base = Path(f"/run/user/{os.getuid()}")
    if not (base.is_dir() and os.access(base, os.W_OK)):
        base = Path("/tmp")
    return base / f"umlgui-{os.getuid()}-{tag}"


def machines_dir() -> Path:
    return data_home() / "machines"


def machine_file(name: str) -> Path:
    return machines_dir() / f"{name}.toml"


def disks_dir(name: str) -> Path:
    return data_home() / "disks" / name


def templates_dir() -> Path:
    return data_home() / "templates"


def template_dir(name: str) -> Path:
    return templates_dir() / name


def logs_dir(name: str) -> Path:
    return data_home() / "logs" / name


def run_dir(name: str) -> Path:
    return runtime_home() / name


def labs_dir() -> Path:
    return data_home() / "labs"


def switches_dir() -> Path:
    return data_home() / "switches"


def write_atomically(path: Path, text: str) -> Path:
    """Replace `path` with `text` so that a crash or a full disk never leaves half a file.

    Raises ConfigError naming the file (the old contents stay) when the write fails.
    """
    import tempfile

    from umlgui.errors import ConfigError

    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as error:
        os.unlink(tmp)
        raise ConfigError(f"could not save {path}: {error.strerror}",
                          "free some disk space and try again") from None
    return path


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    return path
