"""The `umlgui` command as a user runs it: messages, exit codes, the interactive console."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from guest import diagnostics

from umlgui.cli import main

ROOT = Path(__file__).resolve().parents[2]


def umlgui(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "umlgui", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_create_list_show_rm(home, capsys):
    assert main(["create", "pc1", "--mem", "96M"]) == 0
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert rows == [{"name": "pc1", "state": "stopped", "engine": "linux", "memory": "96M",
                     "uptime": None, "exit_code": None, "template": "busybox", "message": ""}]
    assert main(["show", "pc1"]) == 0
    assert "ubd0=" in capsys.readouterr().out
    assert main(["rm", "pc1"]) == 0
    assert main(["rm", "pc1"]) == 1
    assert "no machine named 'pc1'" in capsys.readouterr().err


def test_import_command_line(home, tmp_path, capsys, monkeypatch):
    image = tmp_path / "root_fs"
    image.write_bytes(b"\0" * 4096)
    monkeypatch.chdir(tmp_path)
    assert main(["import", "--name", "seed", "--", "linux", "ubd0=cow,root_fs", "mem=128M",
                 "eth0=slirp,,/usr/bin/slirp"]) == 0
    assert main(["show", "seed"]) == 0
    out = capsys.readouterr().out
    assert f"ubd0={tmp_path}/cow,{tmp_path}/root_fs" in out
    assert "eth0=slirp,fe:fd:" in out and "mem=128M" in out


def test_bad_inputs_exit_1_with_a_fix(home, capsys):
    assert main(["create", "x", "--mem", "lots"]) == 1
    err = capsys.readouterr().err
    assert "bad memory 'lots'" in err and "fix:" in err
    assert main(["create", "y", "--template", "windows"]) == 1
    assert "unknown template 'windows'" in capsys.readouterr().err
    assert main(["boot", "ghost"]) == 1
    assert main(["import", "--", "linux", "ubd0=a", "ubda=b"]) == 1
    assert "duplicate disk" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["boot"])
    assert exit_info.value.code == 2


def test_disk_commands(home, tmp_path, capsys):
    base = tmp_path / "base.img"
    assert main(["disk", "create", str(base), "16M"]) == 0
    assert main(["disk", "cow", str(tmp_path / "a.cow"), str(base)]) == 0
    assert main(["disk", "inspect", str(tmp_path / "a.cow")]) == 0
    out = capsys.readouterr().out
    assert "filesystem:  ext4" in out and f"backing:     {base}" in out and "backing ok:  yes" in out
    assert main(["disk", "merge", str(tmp_path / "a.cow"), str(tmp_path / "merged.img")]) == 0
    assert (tmp_path / "merged.img").stat().st_size == base.stat().st_size


@pytest.mark.uml
@pytest.mark.slow
def test_boot_wait_console_and_halt_from_the_shell(home):
    assert umlgui("create", "vm").returncode == 0
    result = umlgui("boot", "vm", "--wait")
    assert result.returncode == 0, result.stderr
    assert "running, prompt on con0" in result.stdout
    # an interactive attach on a real terminal: log in, run a command, Ctrl-] detaches
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "umlgui", "console", "vm"])
    seen = b""

    def expect(pattern: bytes, timeout: float = 20) -> None:
        nonlocal seen
        deadline = time.time() + timeout
        while pattern not in seen and time.time() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                seen += os.read(fd, 65536)
        assert pattern in seen, seen[-500:]

    expect(b"vm login: ")                     # replayed from the worker's scrollback
    os.write(fd, b"root\n")
    expect(b"root@vm:")
    os.write(fd, b"echo $((7*6))-ok\n")
    expect(b"42-ok")
    os.write(fd, b"\x1d")
    expect(b"[detached from vm]")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    listing = umlgui("list").stdout
    assert "running" in listing, diagnostics("vm")
    assert umlgui("halt", "vm", "--wait").returncode == 0
    assert "exit 0" in umlgui("list").stdout


@pytest.mark.uml
@pytest.mark.slow
def test_boot_wait_fails_with_the_last_console_lines(home):
    assert main(["create", "broken"]) == 0
    from umlgui.model import library

    machine = library.load("broken")
    machine.append = ["init=/no/such/init"]
    library.save(machine)
    result = umlgui("boot", "broken", "--wait", "--timeout", "60")
    assert result.returncode == 1
    assert "stopped while booting (crashed, exit status 134)" in result.stderr
    assert "kernel panic: Requested init /no/such/init failed" in result.stderr


@pytest.mark.uml
@pytest.mark.slow
def test_paused_machine_refuses_hazardous_commands(home):
    assert main(["create", "p1"]) == 0
    assert umlgui("boot", "p1", "--wait").returncode == 0
    try:
        assert umlgui("mconsole", "p1", "stop").stdout.startswith("OK stopped")
        assert "paused" in umlgui("list").stdout
        refused = umlgui("mconsole", "p1", "proc", "meminfo")
        assert refused.returncode == 1 and "stop/go hazard" in refused.stderr
        assert umlgui("mconsole", "p1", "version").returncode == 0
        assert umlgui("mconsole", "p1", "go").returncode == 0
        assert "running" in umlgui("list").stdout
        reply = umlgui("mconsole", "p1", "config", "ubd5")
        assert reply.returncode == 0
        error = umlgui("mconsole", "p1", "remove", "ubd7")
        assert error.returncode == 1 and error.stdout.startswith("ERR")
    finally:
        umlgui("kill", "p1")
