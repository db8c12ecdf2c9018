"""Per-port impairments (loss, delay with jitter, duplication) on frames leaving a port."""

from __future__ import annotations

import time

from net_support import BROADCAST, mac


def learned_pair(handle, peers):
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    a.send_to(BROADCAST), b.send_to(BROADCAST)
    a.drain(0.1), b.drain(0.1)
    number_b = next(p["number"] for p in handle.client().status()["ports"] if mac(2) in p["macs"])
    return a, b, number_b


def counters(handle, number):
    return next(p for p in handle.client().status()["ports"] if p["number"] == number)["counters"]


def test_loss_100_drops_everything(switch_factory, peers):
    handle = switch_factory()
    a, b, number_b = learned_pair(handle, peers)
    handle.client().set_port(number_b, loss=100)
    for _ in range(20):
        a.send_to(b.mac)
    a.send_to(BROADCAST)  # floods are impaired too
    assert b.drain(0.3) == []
    assert counters(handle, number_b)["impair_dropped"] == 21
    handle.client().set_port(number_b, loss=0)
    frame = a.send_to(b.mac)
    assert b.recv() == frame


def test_loss_applies_only_to_the_impaired_port(switch_factory, peers):
    handle = switch_factory()
    a, b, number_b = learned_pair(handle, peers)
    handle.client().set_port(number_b, loss=100)
    frame = b.send_to(a.mac)
    assert a.recv() == frame


def test_partial_loss_drops_about_that_share(switch_factory, peers):
    handle = switch_factory()
    a, b, number_b = learned_pair(handle, peers)
    handle.client().set_port(number_b, loss=50)
    received = 0
    for _ in range(50):  # in bursts of 8: a receiving socket queues only ~10 datagrams
        for _ in range(8):
            a.send_to(b.mac)
        received += len(b.drain(0.02))
    received += len(b.drain(0.2))
    assert 120 < received < 280  # binomial(400, 0.5): far outside 5 sigma otherwise


def test_delay_delays_frames(switch_factory, peers):
    handle = switch_factory()
    a, b, number_b = learned_pair(handle, peers)
    handle.client().set_port(number_b, delay_ms=200)
    start = time.monotonic()
    frame = a.send_to(b.mac, b"late")
    assert b.recv(0.15) is None
    assert b.recv(2.0) == frame
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 0.6
    assert counters(handle, number_b)["delayed"] == 1


def test_delay_keeps_order_without_jitter(switch_factory, peers):
    handle = switch_factory()
    a, b, number_b = learned_pair(handle, peers)
    handle.client().set_port(number_b, delay_ms=50)
    frames = [a.send_to(b.mac, bytes([n])) for n in range(8)]
    assert b.drain(0.4) == frames


def test_jitter_stays_within_bounds(switch_factory, peers):
    handle = switch_factory()
    a, b, number_b = learned_pair(handle, peers)
    handle.client().set_port(number_b, delay_ms=100, jitter_ms=50)
    delays = []
    for n in range(10):
        start = time.monotonic()
        a.send_to(b.mac, bytes([n]))
        assert b.recv(1.0) is not None
        delays.append(time.monotonic() - start)
    assert all(0.045 <= delay < 0.3 for delay in delays), delays
    assert max(delays) - min(delays) > 0.005  # it does vary


def test_duplication_duplicates(switch_factory, peers):
    handle = switch_factory()
    a, b, number_b = learned_pair(handle, peers)
    handle.client().set_port(number_b, duplicate=100)
    frames = [a.send_to(b.mac, bytes([n])) for n in range(5)]
    received = b.drain(0.3)
    assert sorted(received) == sorted(frames * 2)
    assert counters(handle, number_b)["duplicated"] == 5


def test_impairments_show_in_status_and_reset(switch_factory, peers):
    handle = switch_factory()
    _, _, number_b = learned_pair(handle, peers)
    client = handle.client()
    client.set_port(number_b, loss=5, delay_ms=10, jitter_ms=2, duplicate=1)
    port = next(p for p in client.status()["ports"] if p["number"] == number_b)
    assert port["impairments"] == {"loss": 5, "delay_ms": 10, "jitter_ms": 2, "duplicate": 1}
    client.set_port(number_b, loss=0, delay_ms=0, jitter_ms=0, duplicate=0)
    port = next(p for p in client.status()["ports"] if p["number"] == number_b)
    assert not any(port["impairments"].values())
