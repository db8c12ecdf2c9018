"""End to end with the real kernel: linux.uml machines ping each other through a switch."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest
from net_support import mac

from umlgui.net.daemon import parse_mac
from umlgui.net.pcap import read_pcap

pytestmark = [pytest.mark.uml, pytest.mark.slow]

PING_ALL = "for peer in {peers}; do ping -c 2 -w 40 $peer || exit 1; done; sleep {linger}"


def boot_lan(guests, image, control, count, linger=6):
    """`count` guests on `control`, 10.0.0.1..N, each pinging all the others."""
    addresses = [f"10.0.0.{n}" for n in range(1, count + 1)]
    machines = []
    for n, address in enumerate(addresses, start=1):
        others = " ".join(a for a in addresses if a != address)
        machines.append(guests(f"m{n}", image, ip=address,
                               cards=[f"eth0=daemon,{mac(n)},unix,{control}"],
                               script=PING_ALL.format(peers=others, linger=linger)))
    return machines


def assert_all_pinged(machines):
    for machine in machines:
        output = machine.wait(120)
        assert machine.result_code() == 0, machine.report()
        assert " 0% packet loss" in output


def test_two_machines_ping_through_our_switch(guest_image, guests, switch_factory):
    handle = switch_factory("lan")
    machines = boot_lan(guests, guest_image, handle.control, 2, linger=3)
    assert machines[0].wait_for("UMLGUI-BOOTED", 60), machines[0].report()
    assert_all_pinged(machines)


def test_three_machines_ping_each_other_through_our_switch(guest_image, guests, switch_factory):
    handle = switch_factory("lan")
    machines = boot_lan(guests, guest_image, handle.control, 3, linger=4)
    for machine in machines:
        assert machine.wait_for("UMLGUI-BOOTED", 60), machine.report()
    time.sleep(1)
    status = handle.client().status()
    assert len(status["ports"]) == 3
    assert all(port["peer_pid"] for port in status["ports"])
    assert_all_pinged(machines)
    learned = {entry["mac"] for entry in handle.client().status()["macs"]}
    assert learned <= {mac(1), mac(2), mac(3)}


def test_two_machines_ping_through_uml_switch(guest_image, guests, tmp_path):
    if not shutil.which("uml_switch"):
        pytest.skip("needs uml_switch (uml-utilities)")
    control = tmp_path / "c.ctl"
    switch = subprocess.Popen(["uml_switch", "-unix", str(control)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not control.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        machines = boot_lan(guests, guest_image, control, 2, linger=3)
        assert_all_pinged(machines)
    finally:
        switch.terminate()
        switch.wait(5)


def test_delay_impairment_shows_in_guest_ping(guest_image, guests, switch_factory):
    handle = switch_factory("lan")
    server = guests("srv", guest_image, ip="10.0.0.2", cards=[handle.card_argument(0, mac(2))],
                    script="sleep 60")
    assert server.wait_for("UMLGUI-BOOTED", 60), server.report()
    client = handle.client()
    deadline = time.monotonic() + 10
    while not client.status()["ports"] and time.monotonic() < deadline:
        time.sleep(0.1)
    port = client.status()["ports"][0]["number"]
    client.set_port(port, delay_ms=80)
    pinger = guests("cli", guest_image, ip="10.0.0.1", cards=[handle.card_argument(0, mac(1))],
                    script="ping -c 3 -w 40 10.0.0.2")
    output = pinger.wait(90)
    assert pinger.result_code() == 0, pinger.report()
    rtts = [float(value) for value in re.findall(r"time=([\d.]+) ms", output)]
    assert rtts and min(rtts) >= 80, rtts


def test_a_capture_holds_the_icmp_frames_of_a_ping(guest_image, guests, switch_factory, tmp_path):
    handle = switch_factory("lan")
    pcap = tmp_path / "lan.pcap"
    handle.client().capture_start(str(pcap))
    machines = boot_lan(guests, guest_image, handle.control, 2, linger=1)
    assert_all_pinged(machines)
    assert handle.client().capture_stop()["frames"] > 0

    echoes = set()                      # (sender MAC, ICMP type) read back with our reader
    for record in read_pcap(pcap).records:
        frame = record.data
        if frame[12:14] == b"\x08\x00" and frame[23] == 1:          # IPv4, protocol ICMP
            icmp = 14 + (frame[14] & 0x0F) * 4
            echoes.add((frame[6:12], frame[icmp]))
    for sender in (parse_mac(mac(1)), parse_mac(mac(2))):
        assert {(sender, 8), (sender, 0)} <= echoes                 # echo requests and replies

    if shutil.which("tcpdump"):                                      # and by libpcap's reader
        listing = subprocess.run(["tcpdump", "-Z", "root", "-nn", "-r", str(pcap), "icmp"],
                                 capture_output=True, text=True)
        assert listing.returncode == 0, listing.stderr
        assert "10.0.0.1 > 10.0.0.2: ICMP echo request" in listing.stdout
        assert "10.0.0.2 > 10.0.0.1: ICMP echo reply" in listing.stdout
