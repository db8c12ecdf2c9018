"""The machine library: one TOML file per machine under `machines/`.

Creating a machine from a template makes its own COW layer over the template's shared,
read-only base (linux engine) or names its own upper directory (tt engine).
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import tomli_w

from umlgui import paths
from umlgui.errors import ConfigError, NotFoundError, StateError
from umlgui.model.machine import Console, Disk, Machine, from_dict, to_dict, validate_name
from umlgui.model.units import parse_size


def list_names() -> list[str]:
    directory = paths.machines_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.toml"))


def exists(name: str) -> bool:
    return paths.machine_file(name).is_file()


def load(name: str) -> Machine:
    path = paths.machine_file(validate_name(name))
    if not path.is_file():
        raise NotFoundError(f"no machine named {name!r}",
                            "see `umlgui list`, or create it with `umlgui create NAME`")
    return load_file(path)


def load_file(path: Path) -> Machine:
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", "fix the file or remove it") from None
    machine = from_dict(data, str(path))
    machine.validate(check_files=False)
    return machine


def save(machine: Machine) -> Path:
    """Write atomically, so a crash or full disk never leaves a half-written definition."""
    machine.validate(check_files=False)
    return paths.write_atomically(paths.machine_file(machine.name), tomli_w.dumps(to_dict(machine)))


def delete(name: str, is_running) -> None:
    """Remove the definition and the machine's own files; shared bases are never touched."""
    machine = load(name)
    if is_running(name):
        raise StateError(f"{name} is running", f"halt it first: umlgui halt {name}")
    own = paths.disks_dir(name)
    if own.exists():
        shutil.rmtree(own)
    logs = paths.logs_dir(name)
    if logs.exists():
        shutil.rmtree(logs)
    paths.machine_file(machine.name).unlink()


def new_machine(name: str, template: str | None = "busybox", memory: str | None = None,
                engine: str = "linux", disks: list[str] = (), kernel: str = "linux.uml",
                progress=None) -> Machine:
    """A new machine, saved, with its own COW layer over the template's base."""
    validate_name(name)
    if exists(name):
        raise ConfigError(f"a machine named {name!r} already exists",
                          "choose another name, or remove it with `umlgui rm`")
    machine = Machine(name=name, engine=engine, kernel=kernel, hostname=name,
                      consoles={"con0": Console("pty"), "con1": Console("pty")})
    if template:
        _from_template(machine, template, progress)
    for extra in disks:
        path = Path(extra).absolute()
        machine.disks[machine.next_free_ubd()] = Disk(file=str(path))
    if memory:
        machine.memory = parse_size(memory, "memory")
    machine.validate()
    paths.ensure_dir(paths.disks_dir(name))
    save(machine)
    return machine


def _from_template(machine: Machine, template_name: str, progress) -> None:
    from umlgui.templates.base import ensure_built

    built = ensure_built(template_name, progress)
    machine.template = template_name
    machine.memory = parse_size(built.memory)
    machine.append = list(built.kernel_args)
    if machine.engine == "linux":
        machine.disks[0] = Disk(file=str(paths.disks_dir(machine.name) / "root.cow"),
                                backing=str(built.image))
    else:
        machine.rootfs = str(built.root_dir)


def cow_layer_dir(machine: Machine) -> Path:
    """The tt engine's per-machine upper directory."""
    return paths.disks_dir(machine.name) / "root-cow"
