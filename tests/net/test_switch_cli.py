"""The `umlgui switch ...` subcommands (argparse wiring proposed for the lead's CLI)."""

from __future__ import annotations

import argparse
import io

import pytest
from net_support import BROADCAST, mac

from umlgui.net.cli import add_switch_parser
from umlgui.net.client import SwitchNotRunning, control_path, stop_switch


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
