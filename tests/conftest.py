"""Shared fixtures: every test gets its own umlgui home; UML tests share one built template."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HAVE_UML = shutil.which("linux.uml") is not None


def pytest_collection_modifyitems(config, items):
    if HAVE_UML:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI must run the real UML kernel, but linux.uml is not installed")
    skip = pytest.mark.skip(reason="linux.uml is not installed (apt-get install user-mode-linux)")
    for item in items:
        if "uml" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def template_cache(tmp_path_factory) -> Path:
    """A busybox template built once per test session."""
    from umlgui.templates.busybox import BusyboxTemplate

    home = tmp_path_factory.mktemp("template-cache")
    old = os.environ.get("UMLGUI_HOME")
    os.environ["UMLGUI_HOME"] = str(home)
    try:
        BusyboxTemplate().build()
    finally:
        if old is None:
            os.environ.pop("UMLGUI_HOME", None)
        else:
            os.environ["UMLGUI_HOME"] = old
    return home / "templates"


@pytest.fixture
def home(tmp_path, monkeypatch, template_cache) -> Path:
    """A fresh umlgui home with the prebuilt templates linked in; sockets in a short dir."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "templates").symlink_to(template_cache)
    runtime = Path(tempfile.mkdtemp(prefix="ugr", dir="/tmp"))
    monkeypatch.setenv("UMLGUI_HOME", str(home))
    monkeypatch.setenv("UMLGUI_RUNTIME", str(runtime))
    yield home
    _kill_leftover_machines(runtime)
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(autouse=True)
def _finish_gui_jobs():
    """A GUI job still running when Python exits aborts the test run (QThread destroyed while
    running); wait for it as the application does on quit."""
    yield
    jobs = sys.modules.get("umlgui.gui.jobs")
    if jobs is not None:
        jobs.finish_jobs()


@pytest.fixture
def tmpfs_of_size(tmp_path):
    """mount(size) -> a directory on a tmpfs that small: a disk that fills up (needs root)."""
    mounts = []

    def mount(size: str) -> Path:
        directory = tmp_path / f"tmpfs{len(mounts)}"
        directory.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                          capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here (needs root, as CI runs)")
        mounts.append(directory)
        return directory

    yield mount
    for directory in mounts:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture
def small_disk(tmpfs_of_size) -> Path:
    """A 64 KiB disk."""
    return tmpfs_of_size("64k")


def _kill_leftover_machines(runtime: Path) -> None:
    """A failed test must not leave kernels (or UML's orphaned helpers) running."""
    import json
    import signal

    from umlgui.host.process import kill_tree, with_argument

    for state_file in runtime.glob("*/state.json"):
        try:
            state = json.loads(state_file.read_text())
        except ValueError:
            continue
        marker = f"uml_dir={state_file.parent}/"
        if state.get("kernel_pid"):
            kill_tree(state["kernel_pid"], marker)
        for pid in with_argument(marker):
            kill_tree(pid)
        if state.get("worker_pid"):
            try:
                os.kill(state["worker_pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
