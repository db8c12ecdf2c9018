"""The switch forwards like uml_switch: real sockets, fake UML peers doing the real handshake."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from net_support import BROADCAST, mac

from umlgui.errors import NotFoundError, UmlguiError
from umlgui.net import daemon as proto
from umlgui.net import switch
from umlgui.net.switch import Switch


def wait_until(condition, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def port_of(status, peer):
    return next(p for p in status["ports"] if peer.mac_text in p["macs"])


def test_handshake_reply_names_a_padded_abstract_socket_for_each_port(switch_factory):
    handle = switch_factory()
    names = []
    for usec in (1, 2):
        data = bound_data_socket(usec)
        with data, raw_control(handle) as control:
            control.sendall(proto.build_request(data.getsockname()))
            reply = control.recv(200)
        assert len(reply) == proto.REPLY_SIZE == 110
        family, name = proto.REPLY.unpack(reply)
        assert family == socket.AF_UNIX
        assert len(name) == 108 and name[0] == 0
        names.append(name)
    assert names[0] != names[1]  # a data socket per port, not one shared like uml_switch's


def test_a_card_whose_data_socket_does_not_exist_is_refused(switch_factory):
    handle = switch_factory()
    with raw_control(handle) as control:
        control.sendall(proto.build_request(proto.abstract_name(usec=77)))
        assert control.recv(200) == b""  # closed without a reply, as for any bad request
    assert handle.client().status()["ports"] == []


def test_broadcast_floods_and_unicast_goes_only_to_learned_port(switch_factory, peers):
    handle = switch_factory()
    a, b, c = (peers(handle, mac(n)) for n in (1, 2, 3))
    sent = a.send_to(BROADCAST, b"who is there")
    assert b.recv() == sent and c.recv() == sent
    assert a.recv(0.2) is None  # never back to the ingress port

    reply = b.send_to(a.mac, b"b here")  # a was learned from its broadcast
    assert a.recv() == reply
    assert c.recv(0.3) is None

    unicast = a.send_to(b.mac, b"just for b")
    assert b.recv() == unicast
    assert c.recv(0.3) is None


def test_unknown_unicast_is_flooded(switch_factory, peers):
    handle = switch_factory()
    a, b, c = (peers(handle, mac(n)) for n in (1, 2, 3))
    frame = a.send_to(proto.parse_mac(mac(9)), b"to nobody yet")
    assert b.recv() == frame and c.recv() == frame


def test_hub_floods_even_known_unicast(switch_factory, peers):
    handle = switch_factory(hub=True)
    a, b, c = (peers(handle, mac(n)) for n in (1, 2, 3))
    b.send_to(BROADCAST)
    a.drain(), c.drain()
    frame = a.send_to(b.mac, b"hub")
    assert b.recv() == frame and c.recv() == frame
    assert handle.client().status()["hub"] is True


def test_learned_addresses_age_out(switch_factory, peers):
    handle = switch_factory(aging=1.0)
    a, b, c = (peers(handle, mac(n)) for n in (1, 2, 3))
    a.send_to(BROADCAST)
    assert b.recv() and c.recv()
    assert [entry["mac"] for entry in handle.client().status()["macs"]] == [mac(1)]
    assert wait_until(lambda: not handle.client().status()["macs"], timeout=3)
    frame = b.send_to(a.mac, b"a is forgotten")
    assert c.recv() == frame  # flooded again
    assert a.recv() == frame


def test_station_moving_to_another_port_is_relearned(switch_factory, peers):
    handle = switch_factory()
    a, b, c = (peers(handle, mac(n)) for n in (1, 2, 3))
    a.send_to(BROADCAST)
    b.drain(), c.drain()
    moved = proto.ethernet_frame(BROADCAST, a.mac, b"a's MAC behind c now")
    c.link.send(moved)
    a.drain(), b.drain()
    frame = b.send_to(a.mac)
    assert c.recv() == frame
    assert a.recv(0.3) is None


def test_counters_count_packets_and_bytes(switch_factory, peers):
    handle = switch_factory()
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    b.send_to(BROADCAST)
    a.drain()
    frames = [a.send_to(b.mac, b"x" * size) for size in (10, 100, 1000)]
    for _ in frames:
        assert b.recv() is not None
    # The switch counts a transmission after sendto returns, i.e. possibly after b has it.
    wait_until(lambda: port_of(handle.client().status(), b)["counters"]["tx_packets"] == 3)
    status = handle.client().status()
    counters_a = port_of(status, a)["counters"]
    counters_b = port_of(status, b)["counters"]
    total = sum(len(frame) for frame in frames)
    assert counters_a["rx_packets"] == 3 and counters_a["rx_bytes"] == total
    assert counters_b["tx_packets"] == 3 and counters_b["tx_bytes"] == total
    assert port_of(status, a)["peer_pid"] > 0


def test_port_down_drops_both_directions_and_up_restores(switch_factory, peers):
    handle = switch_factory()
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    a.send_to(BROADCAST), b.send_to(BROADCAST)
    a.drain(), b.drain()
    client = handle.client()
    number_b = port_of(client.status(), b)["number"]
    reply = client.set_port(number_b, up=False)
    assert reply["up"] is False
    a.send_to(b.mac)
    assert b.recv(0.3) is None
    b.send_to(a.mac)
    assert a.recv(0.3) is None
    counters = next(p for p in client.status()["ports"] if p["number"] == number_b)["counters"]
    assert counters["rx_dropped"] == 1
    client.set_port(number_b, up=True)
    frame = a.send_to(b.mac)
    assert b.recv() == frame


def test_disconnect_on_eof_removes_the_port_and_its_addresses(switch_factory, peers):
    handle = switch_factory()
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    b.send_to(BROADCAST)
    a.drain()
    client = handle.client()
    assert len(client.status()["ports"]) == 2
    b.close()
    assert wait_until(lambda: len(client.status()["ports"]) == 1)
    assert client.status()["macs"] == []


def test_only_its_card_can_send_to_a_port(switch_factory, peers):
    handle = switch_factory()
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    stranger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stranger.bind(proto.abstract_name(usec=1))
    with stranger, pytest.raises(PermissionError):
        stranger.sendto(proto.ethernet_frame(BROADCAST, proto.parse_mac(mac(7))), a.link.switch_name)
    assert b.recv(0.3) is None
    assert sum(port["counters"]["rx_packets"] for port in handle.client().status()["ports"]) == 0


def bound_data_socket(usec: int) -> socket.socket:
    """A card's data socket, which must exist before the card registers."""
    data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    data.bind(proto.abstract_name(usec=usec))
    return data


def raw_control(handle):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(3)
    sock.connect(str(handle.control))
    return sock


def assert_still_switching(handle, peers):
    a, b = peers(handle, mac(0x21)), peers(handle, mac(0x22))
    frame = a.send_to(BROADCAST)
    assert b.recv() == frame


def test_version_2_request_is_rejected_without_reply(switch_factory, peers):
    handle = switch_factory()
    with raw_control(handle) as sock:
        sock.sendall(proto.build_request(proto.abstract_name(), version=2))
        assert sock.recv(200) == b""  # closed, no 110-byte reply
    assert_still_switching(handle, peers)
    log = handle.log.read_text()
    assert "version 2 is not supported" in log


@pytest.mark.parametrize("request_bytes", [
    b"\x00" * 124,  # bad magic
    struct.pack("<IIIH108s2x", proto.MAGIC, 3, 7, 1, proto.abstract_name()),  # unknown type
    struct.pack("<IIIH108s2x", proto.MAGIC, 3, 0, 2, proto.abstract_name()),  # not AF_UNIX
    b"GET / HTTP/1.0\r\n\r\n" + b"x" * 110,
], ids=["bad-magic", "bad-type", "bad-family", "garbage"])
def test_malformed_requests_are_rejected(switch_factory, peers, request_bytes):
    handle = switch_factory()
    with raw_control(handle) as sock:
        sock.sendall(request_bytes)
        assert sock.recv(200) == b""
    assert_still_switching(handle, peers)


def test_short_request_then_eof_does_not_create_a_port(switch_factory, peers):
    handle = switch_factory()
    with raw_control(handle) as sock:
        sock.sendall(proto.build_request(proto.abstract_name())[:50])
    assert_still_switching(handle, peers)
    assert len(handle.client().status()["ports"]) == 2


def test_request_split_across_writes_is_accepted(switch_factory):
    handle = switch_factory()
    data = bound_data_socket(5)
    request = proto.build_request(data.getsockname())
    with data, raw_control(handle) as sock:
        sock.sendall(request[:10])
        time.sleep(0.1)
        sock.sendall(request[10:])
        assert len(sock.recv(200)) == 110


def test_bytes_after_registration_are_ignored(switch_factory, peers):
    handle = switch_factory()
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    a.link.control.sendall(b"junk")
    frame = a.send_to(BROADCAST)
    assert b.recv() == frame


def test_management_rejects_bad_requests(switch_factory):
    handle = switch_factory()
    client = handle.client()
    with pytest.raises(UmlguiError, match="unknown operation"):
        client.request("explode")
    for line in (b"not json\n", b"[1, 2]\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(str(handle.mgmt))
            sock.sendall(line)
            reply = sock.recv(4096)
        assert b'"ok": false' in reply and b'"fix"' in reply


def test_set_port_rejects_bad_values(switch_factory, peers):
    handle = switch_factory()
    peers(handle, mac(1))
    client = handle.client()
    with pytest.raises(NotFoundError, match="no port 99"):
        client.set_port(99, loss=1)
    for bad in ({"loss": 150}, {"loss": -1}, {"duplicate": "x"}, {"delay_ms": 10**6},
                {"jitter_ms": True}):
        with pytest.raises(UmlguiError) as error:
            client.set_port(1, **bad)
        assert error.value.fix
    with pytest.raises(UmlguiError, match="true or false"):
        client.request("set_port", port=1, up="yes")
    with pytest.raises(UmlguiError, match="port number"):
        client.request("set_port", port="one")


def test_a_burst_from_a_card_arrives_whole_and_in_order(switch_factory, peers):
    # UML sends without blocking and drops what the switch cannot queue; with one data socket
    # shared by all cards (uml_switch) only max_dgram_qlen (often 10) frames fit at once.
    handle = switch_factory()
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    b.send_to(a.mac)
    a.drain()
    a.link.data.setblocking(False)
    sent = [a.send_to(b.mac, index.to_bytes(2, "big") * 700) for index in range(60)]
    assert b.drain(0.5) == sent


def test_frames_wait_for_a_card_that_is_not_reading(switch_factory, peers):
    handle = switch_factory()
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    b.send_to(a.mac)
    a.drain()
    sent = [a.send_to(b.mac, index.to_bytes(2, "big") * 700) for index in range(100)]
    # b's own queue holds about ten; the switch keeps the rest for it
    assert wait_until(lambda: port_of(handle.client().status(), a)["counters"]["rx_packets"] == 100)
    counters = port_of(handle.client().status(), b)["counters"]
    assert counters["tx_queued"] > 50 and counters["tx_dropped"] == 0
    assert b.drain(0.5) == sent
    assert port_of(handle.client().status(), b)["counters"]["tx_packets"] == 100


def test_a_card_that_never_reads_loses_frames_beyond_the_egress_queue(switch_factory, peers):
    handle = switch_factory()
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    b.send_to(a.mac)
    a.drain()
    total = switch.EGRESS_QUEUE + 100
    for index in range(total):
        a.send_to(b.mac, index.to_bytes(2, "big"))
    assert wait_until(lambda: port_of(handle.client().status(), a)["counters"]["rx_packets"] == total)
    counters = port_of(handle.client().status(), b)["counters"]
    received = b.drain(0.5)
    assert counters["tx_dropped"] == total - len(received) > 0
    assert len(received) >= switch.EGRESS_QUEUE
    assert [frame[14:16] for frame in received] == sorted(frame[14:16] for frame in received)


def test_a_frame_that_trips_a_bug_is_dropped_and_forwarding_goes_on(tmp_path):
    import threading

    switch = Switch("bug", tmp_path / "bug.ctl")
    tripped = []
    forward = switch._switch_frame

    def trips_once(port, view, size):
        if not tripped:
            tripped.append(size)
            raise RuntimeError("a bug on this frame")
        forward(port, view, size)

    switch._switch_frame = trips_once
    switch.open()
    loop = threading.Thread(target=switch.serve_forever, daemon=True)
    loop.start()
    try:
        with proto.DaemonPeer.connect(tmp_path / "bug.ctl") as a, \
                proto.DaemonPeer.connect(tmp_path / "bug.ctl") as b:
            broadcast = proto.ethernet_frame(BROADCAST, proto.parse_mac(mac(1)), b"hello")
            a.send(broadcast)
            assert b.recv(0.3) is None and tripped
            a.send(broadcast)
            assert b.recv() == broadcast
    finally:
        switch.stop()
        loop.join(5)
        switch.close()
