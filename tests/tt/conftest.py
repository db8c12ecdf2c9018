"""Fixtures for the tt engine: a busybox guest tree and a way to boot the kernel on a pty."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tt_support import REPO, console_lines  # noqa: F401  (fixtures below use them)


@pytest.fixture(scope="session")
def busybox_tree(tmp_path_factory) -> Path:
    """A read-only busybox root tree (the template's, or built the same way)."""
    from umlgui.templates.busybox import build_tree

    root = tmp_path_factory.mktemp("base") / "root"
    build_tree(root)
    return root


@pytest.fixture(scope="session")
def glibc_tree(tmp_path_factory, busybox_tree) -> Path:
    """The busybox tree plus the host's dynamic /bin/ls, /bin/cat, /usr/bin/id with libs."""
    root = tmp_path_factory.mktemp("glibc") / "root"
    shutil.copytree(busybox_tree, root, symlinks=True)
    for program in ("/bin/ls", "/bin/cat", "/usr/bin/id", "/bin/dash", "/usr/bin/stat",
                    "/usr/bin/env"):
        copy_with_libraries(program, root)
    return root


def copy_with_libraries(program: str, root: Path) -> None:
    real = os.path.realpath(program)
    destination = root / "usr/local/bin" / os.path.basename(program)
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(real, destination)
    output = subprocess.run(["ldd", real], capture_output=True, text=True).stdout
    for line in output.splitlines():
        for word in line.split():
            if word.startswith("/"):
                target = root / word.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    shutil.copy2(os.path.realpath(word), target)


class Console:
    """The master side of the pty that is the guest's con0."""

    def __init__(self, master: int):
        self.master = master
        self.output = b""

    def read_until(self, token: bytes, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while token not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready, _, _ = select.select([self.master], [], [], min(remaining, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    return token in self.output
                if not chunk:
                    return token in self.output
                self.output += chunk
        return True

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")


class Machine:
    """A running tt kernel process."""

    def __init__(self, process: subprocess.Popen, console: Console, run_dir: str, umid: str,
                 notify):
        self.process = process
        self.console = console
        self.run_dir = run_dir
        self.umid = umid
        self.notify = notify

    @property
    def instance_dir(self) -> str:
        return os.path.join(self.run_dir, self.umid)

    @property
    def mconsole_path(self) -> str:
        return os.path.join(self.instance_dir, "mconsole")

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def finish(self, timeout: float = 20.0) -> tuple[int, str]:
        code = self.wait(timeout)
        self.console.read_until(b"\0never", 0.3)
        return code, self.console.text


@pytest.fixture
def boot(tmp_path):
    """boot(root, *words, init=None) -> Machine; the machine is killed at teardown."""
    machines: list[Machine] = []
    short = tempfile.mkdtemp(prefix="utt", dir="/tmp")

    def start(root: Path, *words: str, init: str | None = None, cow: Path | None = None,
              umid: str = "m", notify: bool = True) -> Machine:
        from umlgui.host.mconsole import NotifyListener

        master, slave = pty.openpty()
        master = _move_fd(master, 30, cloexec=True)
        slave = _move_fd(slave, 31, cloexec=False)
        cow = cow or tmp_path / "cow"
        notify_path = os.path.join(short, f"n{len(machines)}")
        listener = NotifyListener(notify_path) if notify else None
        argv = [sys.executable, "-m", "umlgui.kernel.tt", f"umid={umid}",
                f"uml_dir={short}/", "mem=64M", "hostname=ttbox", f"ttroot={root}",
                f"ttcow={cow}", "con=none", "ssl=none", f"con0=fd:{slave},fd:{slave}"]
        if init:
            argv.append(f"init={init}")
        if listener:
            argv.append(f"mconsole=notify:{notify_path}")
        argv += list(words)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        process = subprocess.Popen(argv, pass_fds=(slave,), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=env, cwd=str(REPO))
        os.close(slave)
        machine = Machine(process, Console(master), short, umid, listener)
        machines.append(machine)
        return machine

    yield start
    for machine in machines:
        if machine.process.poll() is None:
            machine.process.kill()
            machine.process.wait()
        if machine.process.stdout:
            machine.process.stdout.close()
        os.close(machine.console.master)
        if machine.notify:
            machine.notify.close()
    shutil.rmtree(short, ignore_errors=True)


def _move_fd(fd: int, minimum: int, cloexec: bool) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC if cloexec else fcntl.F_DUPFD, minimum)
    os.close(fd)
    if not cloexec:
        os.set_inheritable(moved, True)
    return moved


@pytest.fixture
def run_script(boot, tmp_path):
    """run_script(root, script_text) -> (exit code, console text): the script is init."""

    def run(root: Path, script: str, *words: str, timeout: float = 30.0,
            cow: Path | None = None) -> tuple[int, str]:
        tree = root
        script_path = tmp_path / "cow" / "root" / "test-init" if cow is None else \
            cow / "root" / "test-init"
        script_path.parent.mkdir(parents=True, exist_ok=True)
        script_path.write_text("#!/bin/sh\n" + script + "\n/sbin/poweroff -f\n")
        script_path.chmod(0o755)
        machine = boot(tree, *words, init="/test-init", cow=cow)
        return machine.finish(timeout)

    return run


