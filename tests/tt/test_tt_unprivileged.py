"""The engine run by an ordinary user: a user namespace maps guest root to that user."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tt_support import REPO, console_lines

SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root (to become nobody), setpriv and a system python3")


def test_boot_as_nobody(busybox_tree):
    work = Path(tempfile.mkdtemp(prefix="uttn", dir="/tmp"))
    try:
        os.chmod(work, 0o755)
        root = work / "root"
        shutil.copytree(busybox_tree, root, symlinks=True)
        (root / "test-init").write_text("#!/bin/sh\necho ID $(id -u) $$\n"
                                        "echo hi > /etc/x && cat /etc/x\n/sbin/poweroff -f\n")
        (root / "test-init").chmod(0o755)
        for name in ("cow", "run"):
            (work / name).mkdir()
            os.chown(work / name, 65534, 65534)
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SYSTEM_PYTHON,
             "-m", "umlgui.kernel.tt", "umid=n", f"uml_dir={work}/run/", "mem=64M",
             f"ttroot={root}", f"ttcow={work}/cow", "init=/test-init", "con0=fd:1,fd:1"],
            capture_output=True, text=True, timeout=60, cwd="/",
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stdout + result.stderr
        lines = console_lines(result.stdout)
        assert "ID 0 1" in lines and "hi" in lines
        assert (work / "cow/root/etc/x").stat().st_uid == 65534
        assert not (root / "etc/x").exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)
