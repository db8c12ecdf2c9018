"""The `umlgui switch ...` subcommands (argparse wiring proposed for the lead's CLI)."""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from net_support import BROADCAST, mac

from umlgui.net.cli import add_switch_parser
from umlgui.net.client import SwitchNotRunning, control_path, stop_switch

ROOT = Path(__file__).resolve().parents[2]


def run(*words):
    parser = argparse.ArgumentParser(prog="umlgui")
    add_switch_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["switch", *words])
    out = io.StringIO()
    status = args.func(args, out)
    return status, out.getvalue()


def test_start_status_port_list_stop(net_home, peers):
    status, text = run("start", "lan", "--aging", "50")
    try:
        assert status == 0 and f"eth0=daemon,,unix,{control_path('lan')}" in text
        handle = type("H", (), {"control": control_path("lan")})
        a, b = peers(handle, mac(1)), peers(handle, mac(2))
        a.send_to(BROADCAST)
        assert b.recv()
        _, text = run("status", "lan")
        assert "port   1 daemon" in text and mac(1) in text
        _, text = run("port", "lan", "1", "--down", "--loss", "5", "--delay", "10", "--jitter", "2")
        assert text.strip() == "port 1: down, loss 5%, delay 10±2 ms"
        _, text = run("status", "lan", "--json")
        assert '"up": false' in text
        _, text = run("list")
        assert "lan" in text and "running" in text
    finally:
        stop_switch("lan")
    _, text = run("stop", "lan")
    assert "was not running" in text
    with pytest.raises(SwitchNotRunning):
        run("status", "lan")


def capture_command(name: str, file) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "umlgui", "switch", "capture", name, str(file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.fixture
def lan(net_home, peers):
    """Switch "lan" started from the CLI, with two fake cards on it."""
    run("start", "lan")
    handle = type("H", (), {"control": control_path("lan")})
    yield peers(handle, mac(1)), peers(handle, mac(2))
    stop_switch("lan")


def test_capture_runs_until_ctrl_c(lan, tmp_path):
    a, b = lan
    capture = capture_command("lan", tmp_path / "lan.pcap")
    assert "press Ctrl-C to stop" in capture.stdout.readline()
    for _ in range(3):
        a.send_to(BROADCAST)
        assert b.recv()
    capture.send_signal(signal.SIGINT)
    out, _ = capture.communicate(timeout=10)
    assert capture.returncode == 0 and f"3 frames written to {tmp_path / 'lan.pcap'}" in out


def test_capture_on_a_full_disk_ends_with_the_problem_and_the_fix(lan, small_disk):
    a, b = lan
    capture = capture_command("lan", small_disk / "lan.pcap")
    assert "press Ctrl-C to stop" in capture.stdout.readline()
    for _ in range(100):
        a.send_to(BROADCAST, b"\x5a" * 1000)
        assert b.recv()
    _, err = capture.communicate(timeout=10)
    assert capture.returncode == 1
    assert "stopped after" in err and "No space left on device" in err and "fix: free space" in err
