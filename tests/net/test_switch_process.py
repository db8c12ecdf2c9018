"""The switch as a detached process: start, stop, list, stale and live sockets, dead switches."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from net_support import BROADCAST, mac

from umlgui import paths
from umlgui.errors import ConfigError, StateError, UmlguiError
from umlgui.net.client import (SwitchClient, SwitchNotRunning, control_path, list_switches,
                               start_switch, stop_switch, switch_dir, switch_handle)


def wait_gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def test_start_detaches_and_outlives_its_starter(switch_factory):
    handle = switch_factory("lan")
    assert handle.control == paths.runtime_home() / "switches" / "lan.ctl"
    assert handle.pid and handle.pid != os.getpid()
    assert os.getsid(handle.pid) != os.getsid(0)  # own session: survives the GUI's terminal
    assert handle.card_argument(1, mac(5)) == f"eth1=daemon,{mac(5)},unix,{handle.control}"
    state = json.loads((switch_dir("lan") / "state.json").read_text())
    assert state["state"] == "running" and state["pid"] == handle.pid
    assert switch_handle("lan").pid == handle.pid


def test_start_twice_is_refused(switch_factory):
    switch_factory("lan")
    with pytest.raises(StateError, match="already running"):
        start_switch("lan")


def test_stop_removes_sockets_and_records_state(switch_factory):
    handle = switch_factory("lan")
    assert stop_switch("lan") is True
    assert wait_gone(handle.pid)
    assert not handle.control.exists() and not handle.mgmt.exists()
    assert json.loads((switch_dir("lan") / "state.json").read_text())["state"] == "stopped"
    assert stop_switch("lan") is False


def test_sigterm_stops_cleanly(switch_factory):
    handle = switch_factory("lan")
    os.kill(handle.pid, signal.SIGTERM)
    assert wait_gone(handle.pid)
    assert not handle.control.exists()
    assert "caught signal 15" in handle.log.read_text()


def test_list_switches_shows_running_and_stopped(switch_factory):
    switch_factory("alpha", hub=True)
    switch_factory("beta")
    stop_switch("beta")
    listed = {info.name: info for info in list_switches()}
    assert listed["alpha"].running and listed["alpha"].hub and listed["alpha"].pid
    assert not listed["beta"].running and listed["beta"].state["state"] == "stopped"


def test_dead_switch_is_reported_with_the_fix(switch_factory):
    handle = switch_factory("lan")
    os.kill(handle.pid, signal.SIGKILL)
    assert wait_gone(handle.pid)
    client = handle.client()
    with pytest.raises(SwitchNotRunning) as error:
        client.status()
    assert "not running" in error.value.problem
    assert "start it with `umlgui switch start lan`" in error.value.fix
    assert not client.is_running()
    # The stale sockets left by the killed switch do not block a new start.
    again = start_switch("lan")
    assert again.client().status()["ports"] == []


def test_client_for_a_never_started_switch(net_home):
    with pytest.raises(SwitchNotRunning, match="nothing answers"):
        SwitchClient(control_path("ghost").with_suffix(".ctl.mgmt")).status()


def test_stale_control_socket_is_removed(net_home):
    control = control_path("lan")
    control.parent.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(control))
    stale.close()  # the file stays, nobody listens: connecting is refused
    handle = start_switch("lan")
    try:
        assert handle.client().status()["control"] == str(control)
    finally:
        stop_switch("lan")


def test_live_control_socket_is_an_error(net_home):
    control = control_path("lan")
    control.parent.mkdir(parents=True, exist_ok=True)
    other = subprocess.Popen(["uml_switch", "-unix", str(control)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not control.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(StateError, match="already listening") as error:
            start_switch("lan")
        assert "stop that switch" in error.value.fix
    finally:
        other.terminate()
        other.wait()


def test_path_that_is_not_a_socket_is_an_error(net_home):
    control = control_path("lan")
    control.parent.mkdir(parents=True, exist_ok=True)
    control.write_text("not a socket")
    with pytest.raises(ConfigError, match="is not a socket"):
        start_switch("lan")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "umlgui.net.switch", *args],
                          capture_output=True, text=True, timeout=20)


def test_cli_rejects_an_overlong_socket_path(tmp_path):
    long_path = "/tmp/" + "x" * 120 + ".ctl"
    result = run_cli("--name", "x", "--control", long_path)
    assert result.returncode == 1
    assert "at most 107 bytes" in result.stderr


def test_cli_rejects_bad_aging(tmp_path):
    with pytest.raises(ConfigError):
        from umlgui.net.switch import Switch
        Switch("x", tmp_path / "x.ctl", aging=0)


def test_cli_foreground_run_writes_pid_and_state_next_to_control(tmp_path):
    control = tmp_path / "fg.ctl"
    process = subprocess.Popen([sys.executable, "-m", "umlgui.net.switch", "--name", "fg",
                                "--control", str(control)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not control.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        client = SwitchClient(f"{control}.mgmt")
        assert client.status()["name"] == "fg"
        assert int((tmp_path / "fg.ctl.pid").read_text()) == process.pid
        assert json.loads((tmp_path / "fg.ctl.state.json").read_text())["state"] == "running"
        client.quit()
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not control.exists() and not (tmp_path / "fg.ctl.pid").exists()


def test_cli_daemon_reports_its_pid(tmp_path):
    control = tmp_path / "d.ctl"
    result = run_cli("--name", "d", "--control", str(control), "--daemon")
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split("pid ")[1].split(",")[0])
    client = SwitchClient(f"{control}.mgmt")
    try:
        assert client.status()["pid"] == pid
        assert (tmp_path / "d.ctl.log").exists()
    finally:
        client.quit()
    assert wait_gone(pid)


@pytest.mark.parametrize("name", ["", "-x", "a/b", "x" * 40, "sp ace"])
def test_bad_switch_names_are_refused(net_home, name):
    with pytest.raises(ConfigError, match="invalid switch name"):
        start_switch(name)


def test_switch_survives_a_peer_that_vanishes_without_eof(switch_factory, peers):
    handle = switch_factory()
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    b.send_to(BROADCAST)
    a.drain(0.1)
    b.link.data.close()  # data socket gone, control still open: sends fail with ECONNREFUSED
    a.send_to(b.mac)

    def tx_errors_of_b():
        status = handle.client().status()
        return next(p for p in status["ports"] if mac(2) in p["macs"])["counters"]["tx_errors"]

    deadline = time.monotonic() + 3
    while tx_errors_of_b() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tx_errors_of_b() == 1
    assert handle.client().status()["ports"]  # and the switch still answers


def test_failed_start_reports_the_switch_error(net_home):
    with pytest.raises(UmlguiError, match="tap"):
        start_switch("lan", tap="nosuchtap0")
