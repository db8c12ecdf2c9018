"""The window's model of the machine library: rows that follow the workers, and the actions.

Views never poll and never act on machines themselves (GNS3's node.py / node_item.py
split): they subscribe to `MachineController` signals and call its methods. State comes
from a background `StatePoller` that reads each worker's `state.json` (cheap: one small
file) and the host CPU and memory of each kernel's process tree every second, so the GUI
thread never waits on a socket or a slow disk. Every action runs through `run_job`.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil
from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtWidgets import QWidget

from umlgui import paths
from umlgui.errors import ConfigError, NotFoundError, StateError, UmlguiError
from umlgui.gui.jobs import run_job, show_error
from umlgui.jobs import Progress
from umlgui.model import library
from umlgui.model.machine import Disk, Machine, validate_name
from umlgui.worker import client
from umlgui.worker import state as st

POLL_INTERVAL_S = 1.0


@dataclass
class MachineRow:
    """What the list shows for one machine."""

    name: str
    machine: Machine | None         # None when its definition cannot be read
    state: st.MachineState
    cpu: float | None = None        # % of one host CPU, summed over the kernel's processes
    rss: int | None = None          # bytes of host memory the kernel's processes hold
    problem: str = ""               # why the definition cannot be read

    @property
    def live(self) -> bool:
        return self.state.live


class StatePoller(QThread):
    """Reads every machine's definition, state and host usage; emits `polled(dict)` each second."""

    polled = Signal(object)         # dict[str, MachineRow]

    def __init__(self, interval: float = POLL_INTERVAL_S):
        super().__init__()
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._definitions: dict[str, tuple[float, Machine | None, str]] = {}
        self._processes: dict[int, psutil.Process] = {}

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.polled.emit(self.poll_once())
            except Exception:     # a bad poll must not end the thread: the next one may work
                traceback.print_exc()
            self._wake.wait(self.interval)
            self._wake.clear()

    def poke(self) -> None:
        """Poll now rather than at the next tick (after an action)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.wait(5000)

    def poll_once(self) -> dict[str, MachineRow]:
        rows = {}
        seen_pids: set[int] = set()
        for name in library.list_names():
            machine, problem = self._definition(name)
            state = client.machine_state(name)
            row = MachineRow(name, machine, state, problem=problem)
            if state.live and state.kernel_pid:
                row.cpu, row.rss = self._tree_usage(state.kernel_pid, seen_pids)
            rows[name] = row
        for pid in set(self._processes) - seen_pids:
            del self._processes[pid]
        return rows

    def _definition(self, name: str) -> tuple[Machine | None, str]:
        """The machine, re-read only when its file changed (the list polls every second)."""
        path = paths.machine_file(name)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None, "its definition file vanished"
        cached = self._definitions.get(name)
        if cached and cached[0] == mtime:
            return cached[1], cached[2]
        try:
            machine, problem = library.load(name), ""
        except UmlguiError as exc:
            machine, problem = None, exc.problem
        self._definitions[name] = (mtime, machine, problem)
        return machine, problem

    def _tree_usage(self, pid: int, seen: set[int]) -> tuple[float | None, int | None]:
        """CPU % and memory of a UML kernel: the kernel process plus its host helpers.

        UML's processes map the same guest memory file, so summing plain RSS would count
        the guest's RAM once per process; only the first one's shared pages are counted.
        """
        try:
            root = self._process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None, None
        cpu, rss = 0.0, 0
        for index, member in enumerate(tree):
            try:
                process = self._process(member.pid)
                seen.add(process.pid)
                cpu += process.cpu_percent(None)
                memory = process.memory_info()
            except psutil.Error:
                continue
            rss += memory.rss if index == 0 else max(0, memory.rss - memory.shared)
        return cpu, rss

    def _process(self, pid: int) -> psutil.Process:
        # cpu_percent measures since the previous call on the same object: keep them
        process = self._processes.get(pid)
        if process is None or not process.is_running():
            process = self._processes[pid] = psutil.Process(pid)
        return process


class MachineController(QObject):
    """The machines as the window knows them, and everything the window can do to them."""

    machines_changed = Signal()             # a machine was added or removed
    machine_updated = Signal(str)           # a row changed (state, usage or definition)
    state_changed = Signal(str, str, str)   # name, old state, new state
    message = Signal(str)                   # something for the status bar
    loaded = Signal()                       # the first poll arrived

    def __init__(self, parent: QObject | None = None, poll_interval: float = POLL_INTERVAL_S):
        super().__init__(parent)
        self.rows: dict[str, MachineRow] = {}
        self.dialog_parent: QWidget | None = None
        self.is_loaded = False
        self.poller = StatePoller(poll_interval)
        self.poller.polled.connect(self._on_polled)

    # --- following the workers ------------------------------------------------------------

    def start(self) -> None:
        self.poller.start()

    def stop(self) -> None:
        self.poller.stop()

    def refresh(self) -> None:
        self.poller.poke()

    def names(self) -> list[str]:
        return sorted(self.rows)

    def row(self, name: str) -> MachineRow | None:
        return self.rows.get(name)

    def state_of(self, name: str) -> str:
        row = self.rows.get(name)
        return row.state.state if row else st.STOPPED

    def live_names(self) -> list[str]:
        return [name for name, row in sorted(self.rows.items()) if row.live]

    def _on_polled(self, rows: dict[str, MachineRow]) -> None:
        old = self.rows
        self.rows = rows
        if set(old) != set(rows):
            self.machines_changed.emit()
        for name, row in rows.items():
            previous = old.get(name)
            if previous is None or _row_differs(previous, row):
                self.machine_updated.emit(name)
            # a machine first seen live (booted by someone else) counts as having started
            before = previous.state.state if previous else (st.STOPPED if self.is_loaded else None)
            if before is not None and before != row.state.state:
                self.state_changed.emit(name, before, row.state.state)
        if not self.is_loaded:
            self.is_loaded = True
            self.loaded.emit()

    # --- running actions ------------------------------------------------------------------

    def run(self, title: str, work: Callable[[Progress], object], on_done=None,
            done_message: str | None = None, show_after_ms: int = 400):
        """Run `work(progress)` off the GUI thread; errors become a problem + fix message."""

        def succeeded(result) -> None:
            self.refresh()
            if done_message:
                self.message.emit(done_message)
            if on_done:
                on_done(result)

        def failed(exc: BaseException) -> None:
            self.refresh()
            self.message.emit(f"{title} failed")
            show_error(self.dialog_parent, title, exc)

        return run_job(self.dialog_parent, title, work, on_done=succeeded, on_error=failed,
                       show_after_ms=show_after_ms)

    def boot(self, name: str, on_done=None):
        return self.run(f"Booting {name}", lambda progress: client.start(name),
                        on_done=on_done, done_message=f"{name} is booting")

    def halt(self, name: str):
        return self.run(f"Halting {name}", lambda progress: client.halt(name),
                        done_message=f"{name} is halting")

    def reboot(self, name: str):
        return self.run(f"Rebooting {name}", lambda progress: client.reboot(name),
                        done_message=f"{name} is rebooting")

    def kill(self, name: str):
        return self.run(f"Killing {name}", lambda progress: client.kill(name),
                        done_message=f"{name} was killed")

    def ctrl_alt_del(self, name: str):
        return self.mconsole(name, "cad", f"Sending Ctrl+Alt+Del to {name}")

    def pause(self, name: str):
        return self.mconsole(name, "stop", f"Pausing {name}", done_message=f"{name} is paused")

    def resume(self, name: str):
        return self.mconsole(name, "go", f"Resuming {name}", done_message=f"{name} runs again")

    def sysrq(self, name: str, key: str):
        return self.mconsole(name, f"sysrq {key}", f"Sending SysRq {key.upper()} to {name}")

    def mconsole(self, name: str, command: str, title: str, done_message: str | None = None):
        return self.run(title, lambda progress: checked_mconsole(name, command),
                        done_message=done_message)

    def halt_all(self, on_done=None):
        names = self.live_names()
        return self.run("Halting all machines", lambda progress: halt_machines(names, progress),
                        on_done=on_done)

    def delete(self, name: str):
        return self.run(f"Deleting {name}", lambda progress: delete_machine(name),
                        done_message=f"{name} was deleted")

    def clone(self, name: str, new_name: str, on_done=None):
        return self.run(f"Cloning {name}", lambda progress: clone_machine(name, new_name, progress),
                        on_done=on_done, done_message=f"{name} was cloned as {new_name}")

    def rename(self, name: str, new_name: str, on_done=None):
        return self.run(f"Renaming {name}", lambda progress: rename_machine(name, new_name),
                        on_done=on_done, done_message=f"{name} is now {new_name}")

    def attach_images(self, name: str, files: list[str], on_done=None):
        def report(units: list[str]) -> None:
            self.message.emit(f"{name}: attached {', '.join(units)}")
            if on_done:
                on_done(units)

        return self.run(f"Attaching disks to {name}",
                        lambda progress: attach_images(name, files), on_done=report)


def _row_differs(a: MachineRow, b: MachineRow) -> bool:
    return (a.state != b.state or a.cpu != b.cpu or a.rss != b.rss or a.problem != b.problem
            or a.machine != b.machine)


# --- the work itself (runs in job threads; plain functions, no Qt) ------------------------

def checked_mconsole(name: str, command: str) -> str:
    """An mconsole command through the worker; the kernel's refusal becomes an error."""
    reply = client.mconsole(name, command)
    if reply.get("err"):
        text = (reply.get("text") or "").strip() or "no reason given"
        raise UmlguiError(f"{name}'s kernel refused '{command}': {text}",
                          "check the machine's state and the command's arguments")
    return reply.get("text", "")


def halt_machines(names: list[str], progress: Progress) -> None:
    failures = []
    for index, name in enumerate(names):
        progress.step(f"halting {name}", index / max(1, len(names)))
        try:
            client.halt(name)
        except UmlguiError as exc:
            failures.append(f"{name}: {exc.problem}")
    if failures:
        raise UmlguiError("some machines did not halt:\n" + "\n".join(failures),
                          "kill them from the Machine menu")


def delete_machine(name: str) -> None:
    library.delete(name, client.is_running)
    # a later machine of the same name must not inherit this one's last state
    state_file = paths.run_dir(name) / "state.json"
    state_file.unlink(missing_ok=True)


def _require_stopped(name: str, action: str) -> None:
    if client.is_running(name):
        raise StateError(f"{name} is running", f"halt it before you {action} it")


def _require_new_name(new_name: str) -> None:
    validate_name(new_name)
    if library.exists(new_name):
        raise ConfigError(f"a machine named {new_name!r} already exists", "choose another name")


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.relative_to(directory)
        return True
    except ValueError:
        return False


def clone_machine(name: str, new_name: str, progress: Progress | None = None) -> Machine:
    """A copy of a stopped machine, with copies of its own disks (COW layers stay sparse).

    Images outside the machine's own directory (attached with --disk or by a drop) are
    shared, not copied: they can be large and are the user's files.
    """
    progress = progress or Progress()
    _require_new_name(new_name)
    _require_stopped(name, "clone")
    original = library.load(name)
    twin = copy.deepcopy(original)
    twin.name = new_name
    if original.hostname in (None, name):
        twin.hostname = new_name
    old_dir, new_dir = paths.disks_dir(name), paths.disks_dir(new_name)
    if new_dir.exists():
        raise ConfigError(f"{new_dir} already exists (left over from an earlier machine)",
                          "remove that directory or choose another name")
    try:
        if old_dir.is_dir():
            progress.step("copying disks")
            new_dir.parent.mkdir(parents=True, exist_ok=True)
            _sparse_copy_tree(old_dir, new_dir)
        else:
            paths.ensure_dir(new_dir)
        for disk in twin.disks.values():
            for attribute in ("file", "backing"):
                value = getattr(disk, attribute)
                if value and _inside(Path(value), old_dir):
                    setattr(disk, attribute, str(new_dir / Path(value).relative_to(old_dir)))
        library.save(twin)
    except BaseException:
        shutil.rmtree(new_dir, ignore_errors=True)
        raise
    return twin


def _sparse_copy_tree(source: Path, target: Path) -> None:
    # cp keeps COW layers and images sparse (and reflinks where the filesystem can)
    result = subprocess.run(["cp", "-a", "--sparse=always", "--reflink=auto", str(source), str(target)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise UmlguiError(f"could not copy {source}: {result.stderr.strip()}",
                          "free some disk space and try again")


def rename_machine(name: str, new_name: str) -> Machine:
    """Rename a stopped machine, moving its own files; COW layers name only their backing file."""
    _require_new_name(new_name)
    _require_stopped(name, "rename")
    machine = library.load(name)
    old_dir, new_dir = paths.disks_dir(name), paths.disks_dir(new_name)
    if new_dir.exists():
        raise ConfigError(f"{new_dir} already exists (left over from an earlier machine)",
                          "remove that directory or choose another name")
    for disk in machine.disks.values():
        for attribute in ("file", "backing"):
            value = getattr(disk, attribute)
            if value and _inside(Path(value), old_dir):
                setattr(disk, attribute, str(new_dir / Path(value).relative_to(old_dir)))
    if machine.hostname in (None, name):
        machine.hostname = new_name
    machine.name = new_name
    if old_dir.exists():
        old_dir.rename(new_dir)
    old_logs, new_logs = paths.logs_dir(name), paths.logs_dir(new_name)
    if old_logs.exists() and not new_logs.exists():
        old_logs.rename(new_logs)
    library.save(machine)
    paths.machine_file(name).unlink()
    (paths.run_dir(name) / "state.json").unlink(missing_ok=True)
    return machine


def attach_images(name: str, files: list[str]) -> list[str]:
    """Attach image files as the next free ubd units; hot-plugged when the machine runs.

    Returns the units attached ("ubd1", ...). Each one is saved as soon as it is in, so a
    failure part-way leaves the definition matching what the guest has.
    """
    if not files:
        raise UmlguiError("no files to attach", "drop one or more disk image files")
    machine = library.load(name)
    live = client.is_running(name)
    attached = []
    for file in files:
        path = _image_path(file)
        for unit, disk in machine.disks.items():
            if str(path) in (disk.file, disk.backing):
                raise ConfigError(f"{path} is already {name}'s ubd{unit}",
                                  "each image is attached once; make a COW layer to use it twice")
        unit = machine.next_free_ubd()
        machine.disks[unit] = Disk(file=str(path))
        try:
            machine.validate(check_files=True)
            if live:
                checked_mconsole(name, f"config ubd{unit}={path}")
        except UmlguiError:
            del machine.disks[unit]
            raise
        library.save(machine)
        attached.append(f"ubd{unit}")
    return attached


def _image_path(file: str) -> Path:
    path = Path(file).expanduser().absolute()
    if not path.exists():
        raise NotFoundError(f"{path} does not exist", "drop an existing disk image file")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a disk image",
                          "drop an image file (e.g. one made with `umlgui disk create`)")
    return path
