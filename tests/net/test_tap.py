"""Host tap devices (pyroute2), inside private network namespaces so the host stays untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from net_support import mac

from umlgui.errors import ConfigError, NotFoundError
from umlgui.host.tap import (create_tap, enable_masquerade, open_tap, setup_command,
                             tuntap_argument, validate_tap_name)

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


# ---- no privilege needed -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "x" * 16, "a b", "a/b", "..", "tap,0"])
def test_bad_tap_names_are_refused(name):
    with pytest.raises(ConfigError, match="invalid tap device name"):
        validate_tap_name(name)


def test_setup_command_is_the_documented_sudo_line():
    assert setup_command("tap0", "10.0.0.1/24", user="alice") == (
        "sudo ip tuntap add dev tap0 mode tap user alice && sudo ip addr add 10.0.0.1/24 dev tap0"
        " && sudo ip link set tap0 up")
    assert setup_command("tap0", user="bob") == \
        "sudo ip tuntap add dev tap0 mode tap user bob && sudo ip link set tap0 up"


def test_tuntap_card_argument():
    assert tuntap_argument(1, "tap0") == "eth1=tuntap,tap0"
    assert tuntap_argument(0, "tap0", mac(3)) == f"eth0=tuntap,tap0,{mac(3)}"


@pytest.mark.parametrize("address, message", [
    ("10.0.0.300/24", "invalid tap address"),
    ("not-an-address", "invalid tap address"),
    ("10.0.0.1", "no prefix length"),
])
def test_bad_addresses_are_refused_before_anything_changes(address, message):
    with pytest.raises(ConfigError, match=message):
        create_tap("umltapx", address)


def test_masquerade_needs_an_address():
    with pytest.raises(ConfigError, match="masquerade needs"):
        create_tap("umltapx", masquerade=True)


def test_masquerade_without_nft_or_iptables_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NotFoundError, match="neither nft nor iptables") as error:
        enable_masquerade("10.0.0.0/24", "umltap0")
    assert "apt install nftables" in error.value.fix and "slirp" in error.value.fix


def test_opening_a_missing_tap_says_how_to_create_it():
    with pytest.raises(NotFoundError, match="does not exist") as error:
        open_tap("umlnosuchtap")
    assert "sudo ip tuntap add dev umlnosuchtap mode tap" in error.value.fix


# ---- in a private network namespace (root) ----------------------------------------------


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and ip(8) for a private network namespace")
    name = f"umn{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def in_netns(namespace, code, prefix=()):
    """Run Python `code` inside `namespace` (optionally behind a prefix such as capsh)."""
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT))
    python = [sys.executable, "-c", code]
    if prefix:
        command = [*prefix, " ".join(_quote(part) for part in python)]
    else:
        command = python
    return subprocess.run(["ip", "netns", "exec", namespace, *command], capture_output=True,
                          text=True, env=env, timeout=60)


def _quote(text):
    import shlex
    return shlex.quote(text)


def ns_run(namespace, *command):
    return subprocess.run(["ip", "netns", "exec", namespace, *command], capture_output=True,
                          text=True, timeout=60)


CREATE = """
import json
from umlgui.host.tap import create_tap
info = create_tap({name!r}, {address!r}, bridge={bridge!r})
print(json.dumps({{"name": info.name, "index": info.index, "address": info.address}}))
"""


def test_create_tap_sets_address_and_up(netns):
    result = in_netns(netns, CREATE.format(name="umltap0", address="10.9.0.1/24", bridge=None))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["address"] == "10.9.0.1/24"
    shown = ns_run(netns, "ip", "-d", "-o", "addr", "show", "umltap0").stdout
    assert "10.9.0.1/24" in shown
    link = ns_run(netns, "ip", "-d", "-o", "link", "show", "umltap0").stdout
    assert "tun type tap" in link and "UP" in link
    # Again: the existing tap is reused, the address not added twice.
    again = in_netns(netns, CREATE.format(name="umltap0", address="10.9.0.1/24", bridge=None))
    assert again.returncode == 0, again.stderr
    assert ns_run(netns, "ip", "-o", "addr", "show", "umltap0").stdout.count("10.9.0.1/24") == 1


def test_create_tap_on_a_bridge(netns):
    ns_run(netns, "ip", "link", "add", "umlbr0", "type", "bridge")
    result = in_netns(netns, CREATE.format(name="umltap1", address=None, bridge="umlbr0"))
    assert result.returncode == 0, result.stderr
    assert "master umlbr0" in ns_run(netns, "ip", "-o", "link", "show", "umltap1").stdout
    missing = in_netns(netns, CREATE.format(name="umltap2", address=None, bridge="nosuchbr"))
    assert "bridge nosuchbr does not exist" in missing.stderr


NO_CAP = """
from umlgui.errors import UmlguiError
from umlgui.host.tap import create_tap
try:
    create_tap("umltap9", "10.9.9.1/24")
except UmlguiError as error:
    print(error.problem)
    print(error.fix)
else:
    print("created")
"""


def drop_net_admin_prefix():
    if shutil.which("capsh"):
        return ["capsh", "--drop=cap_net_admin", "--", "-c"]
    if shutil.which("setpriv"):
        return ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "sh", "-c"]
    pytest.skip("needs capsh (libcap2-bin) or setpriv to drop CAP_NET_ADMIN")


def test_without_cap_net_admin_the_fix_is_the_sudo_line(netns):
    result = in_netns(netns, NO_CAP, prefix=drop_net_admin_prefix())
    lines = result.stdout.splitlines()
    assert lines and lines[0].startswith("no permission to create or configure tap device umltap9"), \
        result.stdout + result.stderr
    user = "root"
    assert lines[1] == ("run once: sudo ip tuntap add dev umltap9 mode tap user " + user +
                        " && sudo ip addr add 10.9.9.1/24 dev umltap9 && sudo ip link set umltap9 up")
    assert "umltap9" not in ns_run(netns, "ip", "-o", "link").stdout


@pytest.mark.uml
@pytest.mark.slow
def test_guest_on_a_switch_with_tap_reaches_the_host(netns, guest_image, guests, tmp_path):
    created = in_netns(netns, CREATE.format(name="umltap0", address="10.9.0.1/24", bridge=None))
    assert created.returncode == 0, created.stderr
    control = Path(f"/tmp/{netns}.ctl")
    started = ns_run(netns, sys.executable, "-m", "umlgui.net.switch", "--name", "tapsw",
                     "--control", str(control), "--tap", "umltap0", "--daemon",
                     "--log", str(tmp_path / "switch.log"), "--state", str(tmp_path / "state.json"))
    assert started.returncode == 0, started.stderr
    from umlgui.net.client import SwitchClient
    client = SwitchClient(f"{control}.mgmt")
    try:
        assert [port["kind"] for port in client.status()["ports"]] == ["tap"]
        guest = guests("tapguest", guest_image, ip="10.9.0.2", netns=netns,
                       cards=[f"eth0=daemon,{mac(2)},unix,{control}"],
                       script="ping -c 3 -w 40 10.9.0.1 && sleep 8")
        assert guest.wait_for("bytes from 10.9.0.1", 60), guest.report()
        # And the other way: the host side pings the guest.
        assert ns_run(netns, "busybox", "ping", "-c", "2", "-w", "10", "10.9.0.2").returncode == 0
        guest.wait(60)
        assert guest.result_code() == 0, guest.report()
        tap_port = next(p for p in client.status()["ports"] if p["kind"] == "tap")
        assert tap_port["counters"]["rx_packets"] > 0 and tap_port["counters"]["tx_packets"] > 0
    finally:
        try:
            client.quit()
        except Exception:
            pass
        time.sleep(0.2)


@pytest.mark.uml
@pytest.mark.slow
def test_guest_card_directly_on_a_tap(netns, guest_image, guests):
    created = in_netns(netns, CREATE.format(name="umltap3", address="10.9.3.1/24", bridge=None))
    assert created.returncode == 0, created.stderr
    guest = guests("tuntap", guest_image, ip="10.9.3.2", netns=netns,
                   cards=[tuntap_argument(0, "umltap3", mac(3))],
                   script="ping -c 3 -w 40 10.9.3.1")
    guest.wait(90)
    assert guest.result_code() == 0, guest.report()


@pytest.mark.uml
@pytest.mark.slow
def test_masquerade_takes_a_guest_to_a_network_that_cannot_route_back(netns, guest_image, guests):
    # `netns` is the host; a second namespace is "the internet" at 10.8.0.2, which knows no
    # route to the guests' 10.9.4.0/24: only NAT on the host brings the replies back.
    internet = f"{netns}i"
    assert subprocess.run(["ip", "netns", "add", internet], capture_output=True).returncode == 0
    try:
        for command in (["ip", "link", "add", "uplink", "type", "veth", "peer", "name", "wan"],
                        ["ip", "link", "set", "wan", "netns", internet],
                        ["ip", "addr", "add", "10.8.0.1/24", "dev", "uplink"],
                        ["ip", "link", "set", "uplink", "up"]):
            assert ns_run(netns, *command).returncode == 0, command
        for command in (["ip", "addr", "add", "10.8.0.2/24", "dev", "wan"],
                        ["ip", "link", "set", "wan", "up"]):
            assert ns_run(internet, *command).returncode == 0, command
        created = in_netns(netns, "from umlgui.host.tap import create_tap\n"
                                  "print(create_tap('umltap4', '10.9.4.1/24', masquerade=True).masquerade)")
        assert created.returncode == 0, created.stderr
        assert created.stdout.strip() in ("nft", "iptables")
        guest = guests("natted", guest_image, ip="10.9.4.2", netns=netns,
                       cards=[tuntap_argument(0, "umltap4", mac(4))],
                       script="ip route add default via 10.9.4.1 && ping -c 3 -w 40 10.8.0.2")
        guest.wait(90)
        assert guest.result_code() == 0, guest.report()
    finally:
        subprocess.run(["ip", "netns", "del", internet], capture_output=True)
