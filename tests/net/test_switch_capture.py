"""pcap files: our writer and reader, and live capture of a switch or one port."""

from __future__ import annotations

import errno
import struct
import time

import pytest
from net_support import BROADCAST, mac

from umlgui.errors import ConfigError, StateError, UmlguiError
from umlgui.net.cli import format_status
from umlgui.net.pcap import LINKTYPE_ETHERNET, PcapWriter, read_pcap


def test_writer_produces_classic_pcap_that_reads_back(tmp_path):
    path = tmp_path / "x.pcap"
    frames = [b"\x01" * 60, b"\x02" * 1514]
    with PcapWriter(path) as writer:
        writer.write(frames[0], timestamp=1000.25)
        writer.write(frames[1], timestamp=1001.5)
    data = path.read_bytes()
    magic, major, minor, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    assert data[:4] == bytes.fromhex("d4c3b2a1")  # little-endian host
    capture = read_pcap(path)
    assert capture.linktype == LINKTYPE_ETHERNET and capture.snaplen == snaplen
    assert [record.data for record in capture.records] == frames
    assert [record.timestamp for record in capture.records] == [1000.25, 1001.5]


def test_writer_flushes_each_frame(tmp_path):
    path = tmp_path / "live.pcap"
    writer = PcapWriter(path)
    writer.write(b"\xaa" * 64)
    assert len(read_pcap(path).records) == 1  # visible before close
    writer.close()


def test_snaplen_truncates_but_keeps_original_length(tmp_path):
    path = tmp_path / "snap.pcap"
    with PcapWriter(path, snaplen=100) as writer:
        writer.write(b"\x00" * 300)
    record = read_pcap(path).records[0]
    assert len(record.data) == 100 and record.original_length == 300


def test_reader_rejects_files_that_are_not_pcap(tmp_path):
    short = tmp_path / "short.pcap"
    short.write_bytes(b"\xd4\xc3")
    with pytest.raises(UmlguiError, match="only 2 bytes"):
        read_pcap(short)
    other = tmp_path / "ng.pcap"
    other.write_bytes(bytes.fromhex("0a0d0d0a") + b"\x00" * 40)
    with pytest.raises(UmlguiError, match="not a classic pcap") as error:
        read_pcap(other)
    assert "Wireshark" in error.value.fix


def test_reader_accepts_big_endian_and_ignores_a_torn_last_record(tmp_path):
    path = tmp_path / "be.pcap"
    header = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    record = struct.pack(">IIII", 5, 500000, 4, 4) + b"abcd"
    path.write_bytes(header + record + struct.pack(">IIII", 6, 0, 10, 10) + b"abc")
    capture = read_pcap(path)
    assert [(r.timestamp, r.data) for r in capture.records] == [(5.5, b"abcd")]


def test_writer_reports_an_unwritable_place(tmp_path):
    with pytest.raises(UmlguiError, match="cannot create capture file") as error:
        PcapWriter(tmp_path / "missing-dir" / "x.pcap")
    assert error.value.fix


def test_capture_whole_switch(switch_factory, peers, tmp_path):
    handle = switch_factory()
    a, b, c = (peers(handle, mac(n)) for n in (1, 2, 3))
    client = handle.client()
    path = tmp_path / "all.pcap"
    assert client.capture_start(path)["port"] is None
    sent = [a.send_to(BROADCAST, b"one"), b.send_to(a.mac, b"two"), c.send_to(b.mac, b"three")]
    time.sleep(0.2)
    assert client.status()["capture"]["frames"] == 3
    assert client.capture_stop() == {"file": str(path), "frames": 3}
    assert [record.data for record in read_pcap(path).records] == sent
    # No capture running: stopping again is harmless.
    assert client.capture_stop()["file"] is None


def test_capture_one_port_sees_both_directions_of_that_port_only(switch_factory, peers, tmp_path):
    handle = switch_factory()
    a, b, c = (peers(handle, mac(n)) for n in (1, 2, 3))
    for peer in (a, b, c):
        peer.send_to(BROADCAST)
    for peer in (a, b, c):
        peer.drain(0.1)
    client = handle.client()
    number_b = next(p["number"] for p in client.status()["ports"] if mac(2) in p["macs"])
    path = tmp_path / "b.pcap"
    client.capture_start(path, port=number_b)
    to_b = a.send_to(b.mac, b"to b")
    from_b = b.send_to(a.mac, b"from b")
    c.send_to(a.mac, b"not via b")
    time.sleep(0.2)
    client.capture_stop()
    assert [record.data for record in read_pcap(path).records] == [to_b, from_b]


def test_capture_errors(switch_factory, peers, tmp_path):
    handle = switch_factory()
    peers(handle, mac(1))
    client = handle.client()
    with pytest.raises(ConfigError, match="absolute path"):
        client.request("capture_start", file="relative.pcap")
    with pytest.raises(UmlguiError, match="no port 7"):
        client.capture_start(tmp_path / "x.pcap", port=7)
    with pytest.raises(UmlguiError, match="cannot create capture file"):
        client.capture_start(tmp_path / "no" / "such" / "dir.pcap")
    client.capture_start(tmp_path / "first.pcap")
    with pytest.raises(StateError, match="already capturing"):
        client.capture_start(tmp_path / "second.pcap")
    client.capture_stop()


def test_a_full_disk_leaves_whole_records_only(small_disk):
    path = small_disk / "full.pcap"
    writer = PcapWriter(path)
    written = 0
    with pytest.raises(OSError) as error:
        while True:
            writer.write(b"\x5a" * 1000)
            written += 1
    assert error.value.errno == errno.ENOSPC
    records = read_pcap(path).records
    assert len(records) == written == writer.frames > 0
    assert path.stat().st_size == 24 + written * (16 + 1000)   # no torn record at the end
    writer.close()


def test_a_capture_file_that_cannot_be_written_is_refused():
    with pytest.raises(UmlguiError, match="cannot create capture file /dev/full") as error:
        PcapWriter("/dev/full")
    assert "free space" in error.value.fix


def test_a_capture_filling_the_disk_stops_with_a_message_and_switching_goes_on(
        switch_factory, peers, small_disk):
    handle = switch_factory()
    a, b = peers(handle, mac(1)), peers(handle, mac(2))
    client = handle.client()
    file = small_disk / "lan.pcap"
    client.capture_start(str(file))
    payload = b"\x5a" * 1000
    for _ in range(100):        # ~100 KB through a 64 KiB disk
        sent = a.send_to(BROADCAST, payload)
        assert b.recv() == sent  # every frame still reaches b
    status = client.status()
    assert status["capture"] is None
    failure = status["capture_failure"]
    assert f"the capture to {file} stopped after" in failure["error"]
    assert "No space left on device" in failure["error"] and "free space" in failure["fix"]
    saved = int(failure["error"].split("stopped after ")[1].split()[0])
    assert len(read_pcap(file).records) == saved > 0
    assert "stopped after" in format_status(status)
