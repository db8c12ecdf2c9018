"""A virtual Ethernet switch (or hub) that UML machines join with `ethN=daemon,MAC,unix,CTL`.

It speaks the daemon transport exactly as `uml_switch` does (see `umlgui.net.daemon`): a stream
control socket where each machine card registers its datagram data socket and is told where to
send its frames. Unlike `uml_switch`, which names one data socket shared by every card, each port
gets a data socket of its own, connected back to the card's: the kernel then lets a card queue as
many frames as its send buffer holds (a shared socket accepts only `net.unix.max_dgram_qlen`,
often 10, from all cards together, and drops the rest), and only that card can send to it. On top
of `uml_switch` it offers per-port counters, ports
up/down, per-port impairments (loss, delay with jitter, duplication — applied to frames the
switch sends out of that port, like netem on an egress queue), live pcap capture, and a
management socket `CTL.mgmt` speaking one JSON line per request:

    {"op": "status"}
    {"op": "set_port", "port": 2, "up": false, "loss": 10, "delay_ms": 50, "jitter_ms": 5, "duplicate": 1}
    {"op": "capture_start", "file": "/abs/path.pcap", "port": 2}      ("port" optional)
    {"op": "capture_stop"}
    {"op": "quit"}

Replies are `{"ok": true, ...}` or `{"ok": false, "error": PROBLEM, "fix": FIX}`.

Run one with `python3 -m umlgui.net.switch --name NAME --control PATH [--hub] [--tap DEV]
[--daemon]`; `umlgui.net.client.start_switch()` does that for you. Frames are forwarded by a data
thread waiting on the ports' sockets; control, management, the tap and timers run on the main
thread's epoll loop. The per-frame path avoids allocation and random() calls unless impairments
are on.
"""

from __future__ import annotations

import argparse
import collections
import errno
import heapq
import json
import logging
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from umlgui.errors import ConfigError, NotFoundError, StateError, UmlguiError
from umlgui.net import daemon as proto
# The client side lives in umlgui.net.client; re-exported for `from umlgui.net.switch import ...`.
from umlgui.net.client import (  # noqa: F401
    SwitchClient, SwitchHandle, SwitchInfo, list_switches, mgmt_path_for, start_switch, stop_switch)
from umlgui.net.pcap import PcapWriter
from umlgui.net.sockets import SUN_PATH_MAX, claim_socket_path, unlink_quietly  # noqa: F401

log = logging.getLogger("umlgui.net.switch")

DEFAULT_AGING = 100.0  # seconds a learned MAC survives without traffic, as in uml_switch
MAX_SWEEP_INTERVAL = 2.0
PENDING_REQUEST_TIMEOUT = 10.0  # a control connection must send its request within this
BATCH = 512  # frames handled per readiness event before other sockets get a turn
EGRESS_QUEUE = 256  # frames a port holds while its card cannot take more, as a NIC's txqueue
CONTROL_BACKLOG = 15
MGMT_LINE_LIMIT = 65536
SOCKET_BUFFER = 4 * 1024 * 1024
_ADDRESSES = struct.Struct("6s6s")  # destination and source MAC at the start of a frame

IMPAIRMENT_LIMITS = {
    "loss": (0.0, 100.0),
    "duplicate": (0.0, 100.0),
    "delay_ms": (0.0, 60_000.0),
    "jitter_ms": (0.0, 60_000.0),
}


class Port:
    """One switch port: a UML card (through a data socket of its own), or the host tap."""

    __slots__ = (
        "number", "kind", "addr", "sock", "send", "recv_into", "backlog", "backlog_lock", "fd",
        "control", "peer_pid", "label", "connected",
        "up", "captured", "fast", "impaired", "loss", "delay_ms", "jitter_ms", "duplicate",
        "rx_packets", "rx_bytes", "rx_dropped", "tx_packets", "tx_bytes", "tx_dropped",
        "tx_errors", "tx_queued", "impair_dropped", "duplicated", "delayed",
    )

    def __init__(self, number: int, kind: str, *, addr=None, sock: socket.socket | None = None,
                 fd: int | None = None,
                 control: socket.socket | None = None, peer_pid: int | None = None,
                 label: str = ""):
        self.number = number
        self.kind = kind  # "daemon" (a UML card) or "tap"
        self.addr = addr  # peer's data-socket address (daemon ports)
        self.sock = sock  # this port's data socket, connected to the peer's (daemon ports)
        self.send = sock.send if sock is not None else None
        self.recv_into = sock.recv_into if sock is not None else None
        self.backlog: collections.deque[bytes] = collections.deque()  # frames waiting for room
        self.backlog_lock = threading.Lock()
        self.fd = fd  # tap file descriptor (tap port)
        self.control = control
        self.peer_pid = peer_pid
        self.label = label
        self.connected = time.time()
        self.up = True
        self.captured = False
        self.impaired = False
        self.fast = kind == "daemon"  # eligible for the inline path: see Switch._refresh_fast
        self.loss = self.delay_ms = self.jitter_ms = self.duplicate = 0.0
        self.rx_packets = self.rx_bytes = self.rx_dropped = 0
        self.tx_packets = self.tx_bytes = self.tx_dropped = self.tx_errors = self.tx_queued = 0
        self.impair_dropped = self.duplicated = self.delayed = 0

    def impairments(self) -> dict:
        return {"loss": self.loss, "delay_ms": self.delay_ms,
                "jitter_ms": self.jitter_ms, "duplicate": self.duplicate}

    def counters(self) -> dict:
        return {name: getattr(self, name) for name in (
            "rx_packets", "rx_bytes", "rx_dropped", "tx_packets", "tx_bytes", "tx_dropped",
            "tx_errors", "tx_queued", "impair_dropped", "duplicated", "delayed")}


class Switch:
    """The switch process's state and event loop. `open()`, then `serve_forever()`, then `close()`."""

    def __init__(self, name: str, control: str | os.PathLike, *, hub: bool = False,
                 tap: str | None = None, aging: float = DEFAULT_AGING,
                 state_path: str | os.PathLike | None = None):
        if aging <= 0:
            raise ConfigError(f"MAC aging time must be positive, not {aging}",
                              "give the number of seconds, e.g. --aging 100")
        self.name = name
        self.control_path = Path(control).absolute()
        self.mgmt_path = mgmt_path_for(self.control_path)
        self.state_path = Path(state_path) if state_path else Path(f"{self.control_path}.state.json")
        self.hub = hub
        self.tap = tap
        self.aging = float(aging)
        self.started = time.time()

        self._buf = bytearray(65536)
        self._view = memoryview(self._buf)
        # Replaced, never mutated, so the data thread can iterate it while ports come and go.
        self._ports: tuple[Port, ...] = ()
        self._ports_by_addr: dict = {}
        self._ports_by_data_fd: dict[int, Port] = {}
        self._mac_port: dict[bytes, Port] = {}
        self._mac_seen: dict[bytes, float] = {}
        self._delayed: list = []
        self._delay_seq = 0
        self._random = random.Random()
        self._capture_lock = threading.Lock()
        self._capture: PcapWriter | None = None
        self._capture_all = False
        self._capture_port: int | None = None
        self._capture_failure: dict | None = None  # why the last capture ended by itself
        self._now = time.monotonic()
        self._next_sweep = self._now
        self._stopping = False

        self._epoll: select.epoll | None = None
        self._handlers: dict[int, object] = {}
        self._pending: dict[int, tuple[socket.socket, bytearray, float]] = {}
        self._control_conns: dict[int, Port] = {}
        self._mgmt_conns: dict[int, tuple[socket.socket, bytearray]] = {}
        self._listener: socket.socket | None = None
        self._mgmt_listener: socket.socket | None = None
        self._data_epoll: select.epoll | None = None
        self._data_thread: threading.Thread | None = None
        self._tap_buf = bytearray(65536)
        self._wake_r = self._wake_w = -1
        self._data_wake_r = self._data_wake_w = -1

    # ---- setup and teardown -------------------------------------------------------------

    def open(self) -> None:
        """Bind every socket (and the tap); raises UmlguiError naming what is in the way."""
        self._epoll = select.epoll()
        self._listener = self._listen(self.control_path, "control")
        self._mgmt_listener = self._listen(self.mgmt_path, "management")
        self._data_epoll = select.epoll()
        self._data_wake_r, self._data_wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._data_epoll.register(self._data_wake_r, select.EPOLLIN)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._watch(self._listener.fileno(), self._on_control_accept)
        self._watch(self._mgmt_listener.fileno(), self._on_mgmt_accept)
        self._watch(self._wake_r, self._on_wake)
        if self.tap:
            self._attach_tap(self.tap)

    def close(self) -> None:
        for conn, _, _ in list(self._pending.values()):
            conn.close()
        for port in self._ports:
            self._remove_port(port, "switch stopping")
        for conn, _ in list(self._mgmt_conns.values()):
            conn.close()
        self._stop_capture()
        for sock, path in ((self._listener, self.control_path), (self._mgmt_listener, self.mgmt_path)):
            if sock is not None:
                sock.close()
                unlink_quietly(path)
        for fd in (self._wake_r, self._wake_w, self._data_wake_r, self._data_wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = self._data_wake_r = self._data_wake_w = -1
        for epoll in (self._epoll, self._data_epoll):
            if epoll is not None:
                epoll.close()
        log.info("switch %s stopped", self.name)

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT end the loop cleanly (sockets removed, state written)."""
        signal.set_wakeup_fd(self._wake_w)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def stop(self) -> None:
        """Ask the loop to finish (safe from a signal handler or another thread)."""
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass

    def _on_signal(self, signum, frame) -> None:
        log.info("caught signal %d, cleaning up and exiting", signum)
        self._stopping = True

    def _listen(self, path: Path, what: str) -> socket.socket:
        claim_socket_path(path, what)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.bind(os.fspath(path))
        except OSError as error:
            sock.close()
            raise UmlguiError(f"cannot create the {what} socket {path}: {error.strerror}",
                              "check that its directory exists and is writable") from error
        sock.listen(CONTROL_BACKLOG)
        return sock

    def _attach_tap(self, device: str) -> None:
        from umlgui.host.tap import open_tap

        fd = open_tap(device)
        port = Port(self._free_port_number(), "tap", fd=fd, label=device)
        self._ports = (*self._ports, port)
        self._refresh_fast()
        self._watch(fd, self._on_tap)
        log.info("tap %s is port %d", device, port.number)

    def _watch(self, fd: int, handler) -> None:
        self._handlers[fd] = handler
        self._epoll.register(fd, select.EPOLLIN)

    def _unwatch(self, fd: int) -> None:
        self._handlers.pop(fd, None)
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass

    # ---- the loop ---------------------------------------------------------------------

    def serve_forever(self) -> None:
        log.info("switch %s listening on %s (%s)%s", self.name, self.control_path,
                 "hub" if self.hub else "switch", f", tap {self.tap}" if self.tap else "")
        self.write_state("running")
        poll = self._epoll.poll
        handlers = self._handlers
        self._data_thread = threading.Thread(target=self._data_loop, name="switch-data", daemon=True)
        self._data_thread.start()
        try:
            while not self._stopping:
                events = poll(self._poll_timeout())
                self._now = now = time.monotonic()
                for fd, mask in events:
                    handler = handlers.get(fd)
                    if handler is not None:
                        self._handle(handler, fd, mask)
                if self._delayed and self._delayed[0][0] <= now:
                    self._release_delayed()
                if now >= self._next_sweep:
                    self._sweep(now)
        finally:
            self._stop_data_thread()
            self.write_state("stopped")

    def _handle(self, handler, fd: int, mask: int) -> None:
        # One connection's bad luck (or a bug it trips) must not stop the switch under every
        # machine plugged into it.
        try:
            handler(fd, mask)
        except Exception:
            log.exception("handling fd %d failed; the switch carries on", fd)

    def _stop_data_thread(self) -> None:
        self._stopping = True
        if self._data_thread is None:
            return
        try:
            os.write(self._data_wake_w, b"\0")
        except OSError:
            pass
        self._data_thread.join(5.0)
        self._data_thread = None

    def _poll_timeout(self) -> float:
        deadline = self._next_sweep
        if self._delayed and self._delayed[0][0] < deadline:
            deadline = self._delayed[0][0]
        return max(0.0, deadline - time.monotonic())

    def _on_wake(self, fd: int, mask: int) -> None:
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass

    def _sweep(self, now: float) -> None:
        """Forget MACs not seen for `aging` seconds; drop connections that never sent a request."""
        limit = now - self.aging
        for mac in [mac for mac, seen in self._mac_seen.copy().items() if seen < limit]:
            self._mac_seen.pop(mac, None)
            port = self._mac_port.pop(mac, None)
            log.debug("addr %s on port %s aged out", proto.format_mac(mac), port and port.number)
        for fd, (conn, _, since) in list(self._pending.items()):
            if now - since > PENDING_REQUEST_TIMEOUT:
                log.warning("control connection sent no complete request in %.0f s; closing",
                            PENDING_REQUEST_TIMEOUT)
                self._drop_pending(fd)
        self._next_sweep = now + min(MAX_SWEEP_INTERVAL, self.aging / 4)

    # ---- frames -------------------------------------------------------------------------

    def _data_loop(self) -> None:
        """The data thread. A frame that trips a bug is logged and dropped: every machine on
        the switch would lose its network if this thread ended."""
        while not self._stopping:
            try:
                self._forward_frames()
            except Exception:
                log.exception("a frame could not be handled; forwarding goes on")

    def _forward_frames(self) -> None:
        """Receive every frame from the ports' data sockets and forward it, until stopped.

        It takes one frame from each ready socket, then asks epoll again: round-robin fairness
        between ports, and no failing recv() (a Python exception costs more than the epoll
        call, which returns at once while frames wait). Plain unicast between learned,
        unimpaired ports is handled inline (this loop is the switch's throughput); everything
        else goes to _switch_frame. The main thread only replaces the objects read here (dict
        entries, the ports tuple, flags), so no lock is needed on this path.
        """
        poll = self._data_epoll.poll
        ports = self._ports_by_data_fd
        buf = self._buf
        view = self._view
        mac_port = self._mac_port
        mac_seen = self._mac_seen
        addresses = _ADDRESSES.unpack_from
        switch_frame = self._switch_frame
        dontwait = socket.MSG_DONTWAIT
        clock = time.monotonic
        queue = self._queue
        readable = select.EPOLLIN
        while not self._stopping:
            for fd, mask in poll():
                port = ports.get(fd)
                if port is None:
                    if self._stopping:
                        return  # woken by _stop_data_thread
                    continue  # a port removed meanwhile
                if mask != readable:
                    self._on_data_event(port, mask)
                    if not mask & readable:
                        continue
                try:
                    size = port.recv_into(buf, 0, dontwait)
                except OSError:
                    continue  # the port was closed meanwhile
                if not port.fast or size < 14:
                    switch_frame(port, view, size)
                    continue
                destination, source = addresses(buf)
                target = mac_port.get(destination)
                if target is None or target is port or not target.fast or source[0] & 1:
                    switch_frame(port, view, size)
                    continue
                port.rx_packets += 1
                port.rx_bytes += size
                if mac_port.get(source) is not port:
                    self._learn(source, port)
                mac_seen[source] = clock()
                if target.backlog:
                    queue(target, view[:size])  # behind the frames already waiting
                    continue
                try:
                    target.send(view[:size], dontwait)
                except BlockingIOError:
                    queue(target, view[:size])
                    continue
                except OSError:
                    target.tx_errors += 1
                    continue
                target.tx_packets += 1
                target.tx_bytes += size

    def _on_data_event(self, port: Port, mask: int) -> None:
        if mask & select.EPOLLOUT:
            self._send_backlog(port)
        if mask & (select.EPOLLERR | select.EPOLLHUP):
            # Nothing to read or send will clear it; stop watching rather than spin.
            try:
                self._data_epoll.unregister(port.sock.fileno())
            except (OSError, ValueError):
                pass

    def _on_tap(self, fd: int, mask: int) -> None:
        port = next((p for p in self._ports if p.fd == fd), None)
        if port is None:
            self._unwatch(fd)
            return
        view = memoryview(self._tap_buf)
        buffers = [self._tap_buf]
        for _ in range(BATCH):
            try:
                size = os.readv(fd, buffers)
            except BlockingIOError:
                return
            except OSError as error:
                log.warning("tap %s: %s", port.label, error)
                return
            if size <= 0:
                return
            self._switch_frame(port, view, size)

    def _switch_frame(self, port: Port, view: memoryview, size: int) -> None:
        """Learn the source, then forward or flood the frame at the start of `view`."""
        port.rx_packets += 1
        port.rx_bytes += size
        if not port.up or size < proto.ETH_HEADER:
            port.rx_dropped += 1
            return
        frame = view[:size]
        if self._capture is not None and (self._capture_all or port.captured):
            self._write_capture(frame)
        destination, source = _ADDRESSES.unpack_from(view)
        if not source[0] & 1:
            if self._mac_port.get(source) is not port:
                self._learn(source, port)
            self._mac_seen[source] = time.monotonic()
        if self.hub or destination[0] & 1:
            self._flood(port, frame, size)
            return
        target = self._mac_port.get(destination)
        if target is None:
            self._flood(port, frame, size)
        elif target is not port:
            self._deliver(target, frame, size)
        # else: the destination sits behind the ingress port; the frame stays there.

    def _refresh_fast(self) -> None:
        """Recompute which ports the inline path may handle: daemon ports that are up, have no
        impairments and are not being captured, while the switch is not a hub."""
        for port in self._ports:
            port.fast = (port.kind == "daemon" and port.up and not port.impaired
                         and not port.captured and not self._capture_all and not self.hub)

    def _learn(self, mac: bytes, port: Port) -> None:
        old = self._mac_port.get(mac)
        self._mac_port[mac] = port
        if old is None:
            log.info("addr %s new port %d", proto.format_mac(mac), port.number)
        else:
            log.info("addr %s moved from port %d to port %d", proto.format_mac(mac), old.number, port.number)

    def _flood(self, ingress: Port, frame, size: int) -> None:
        deliver = self._deliver
        for port in self._ports:
            if port is not ingress:
                deliver(port, frame, size)

    def _deliver(self, port: Port, frame, size: int) -> None:
        if not port.up:
            return
        if port.impaired:
            self._impair(port, frame, size)
        else:
            self._transmit(port, frame, size)

    def _transmit(self, port: Port, frame, size: int) -> None:
        if port.backlog:  # behind the frames already waiting (only card ports have them)
            handed_over = self._queue(port, frame)
        else:
            handed_over = self._send_now(port, frame, size)
        if handed_over and port.captured and not self._capture_all and self._capture is not None:
            self._write_capture(frame)

    def _send_now(self, port: Port, frame, size: int) -> bool:
        """Send through the card's socket or write to the tap; False if the frame was lost."""
        try:
            if port.send is not None:
                port.send(frame, socket.MSG_DONTWAIT)
            else:
                os.write(port.fd, frame)
        except BlockingIOError:
            if port.send is not None:
                return self._queue(port, frame)  # the card's receive queue is full
            port.tx_dropped += 1  # the tap's own queue is full: the host stack drops too
            return False
        except OSError:
            port.tx_errors += 1
            return False
        port.tx_packets += 1
        port.tx_bytes += size
        return True

    def _queue(self, port: Port, frame) -> bool:
        """Hold a frame for a card whose receive queue is full (UML's holds 10 frames).

        uml_switch drops it, which TCP pays for with a retransmit. A connected datagram socket
        turns writable when its peer reads, so the data thread waits for EPOLLOUT and sends
        the backlog then (_send_backlog). Beyond EGRESS_QUEUE frames the switch drops.
        """
        with port.backlog_lock:
            if len(port.backlog) >= EGRESS_QUEUE:
                port.tx_dropped += 1
                return False
            if not port.backlog:
                self._want_writable(port, True)
            port.backlog.append(bytes(frame))
            port.tx_queued += 1
            return True

    def _send_backlog(self, port: Port) -> None:
        """Send the frames a card could not take before, oldest first, while it takes them."""
        with port.backlog_lock:
            backlog = port.backlog
            while backlog:
                frame = backlog[0]
                try:
                    port.send(frame, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return
                except OSError:
                    port.tx_errors += len(backlog)
                    backlog.clear()
                    break
                backlog.popleft()
                port.tx_packets += 1
                port.tx_bytes += len(frame)
            self._want_writable(port, False)

    def _want_writable(self, port: Port, wanted: bool) -> None:
        events = select.EPOLLIN | select.EPOLLOUT if wanted else select.EPOLLIN
        try:
            self._data_epoll.modify(port.sock.fileno(), events)
        except (OSError, ValueError):
            pass  # the port is being removed

    def _write_capture(self, frame) -> None:
        with self._capture_lock:
            capture = self._capture
            if capture is None:
                return
            try:
                capture.write(frame)
                return
            except OSError as error:
                failure = error
        # The frame itself is still forwarded; only the capture ends, with a message saying why.
        self._capture_failure = {
            "error": f"the capture to {capture.path} stopped after {capture.frames} frames: "
                     f"{failure.strerror or failure}",
            "fix": f"free space on the disk holding {capture.path.parent} and start the capture again"}
        log.warning("%s", self._capture_failure["error"])
        self._stop_capture()

    def _impair(self, port: Port, frame, size: int) -> None:
        """Loss, duplication and delay for one frame leaving through `port`."""
        chance = self._random.random
        if port.loss and chance() * 100.0 < port.loss:
            port.impair_dropped += 1
            return
        copies = 1
        if port.duplicate and chance() * 100.0 < port.duplicate:
            copies = 2
            port.duplicated += 1
        for _ in range(copies):
            delay = port.delay_ms
            if port.jitter_ms:
                delay = max(0.0, delay + self._random.uniform(-port.jitter_ms, port.jitter_ms))
            if delay <= 0:
                self._transmit(port, frame, size)
                continue
            self._delay_seq += 1
            due = time.monotonic() + delay / 1000.0
            heapq.heappush(self._delayed, (due, self._delay_seq, port, bytes(frame)))
            port.delayed += 1
            if self._delayed[0][2] is port and self._delayed[0][0] == due:
                self._wake()  # the loop's timer must fire sooner than it planned

    def _release_delayed(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, port, frame = heapq.heappop(self._delayed)
            if port in self._ports and port.up:
                self._transmit(port, frame, len(frame))

    # ---- control connections (the daemon transport) -------------------------------------

    def _on_control_accept(self, fd: int, mask: int) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                log.warning("accept on control socket: %s", error)
                return
            conn.setblocking(False)
            self._pending[conn.fileno()] = (conn, bytearray(), time.monotonic())
            self._watch(conn.fileno(), self._on_control_readable)

    def _on_control_readable(self, fd: int, mask: int) -> None:
        if fd in self._control_conns:
            self._on_port_control(fd)
            return
        conn, request, _ = self._pending[fd]
        try:
            chunk = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            if request:
                log.warning("control connection closed after %d of %d request bytes",
                            len(request), proto.REQUEST_SIZE)
            self._drop_pending(fd)
            return
        request += chunk
        if len(request) >= 4 and struct.unpack_from("<I", request)[0] != proto.MAGIC:
            log.warning("bad request: magic 0x%08x; closing", struct.unpack_from("<I", request)[0])
            self._drop_pending(fd)
            return
        if len(request) < proto.REQUEST_SIZE:
            return
        try:
            # Bytes after the request (VDE's optional description) are ignored.
            name = proto.parse_request(bytes(request[:proto.REQUEST_SIZE]))
        except proto.ProtocolError as error:
            log.warning("bad request: %s; closing", error)
            self._drop_pending(fd)
            return
        del self._pending[fd]
        self._add_daemon_port(conn, name)

    def _drop_pending(self, fd: int) -> None:
        conn, _, _ = self._pending.pop(fd)
        self._unwatch(fd)
        conn.close()

    def _add_daemon_port(self, conn: socket.socket, name: bytes) -> None:
        key = _address_key(name)
        old = self._ports_by_addr.get(key)
        if old is not None:
            self._remove_port(old, "replaced by a new connection with the same data socket")
        peer_pid = _peer_pid(conn) or proto.pid_from_name(name)
        sock = _port_data_socket(name)
        if sock is None:
            conn.close()
            return
        port = Port(self._free_port_number(), "daemon", addr=key, sock=sock, control=conn,
                    peer_pid=peer_pid)
        # Register before replying: the peer may send (and expect floods) as soon as it reads
        # the reply, and the data thread must know the port by then.
        self._ports = tuple(sorted((*self._ports, port), key=lambda p: p.number))
        self._ports_by_addr[key] = port
        self._ports_by_data_fd[sock.fileno()] = port
        self._data_epoll.register(sock.fileno(), select.EPOLLIN)
        self._control_conns[conn.fileno()] = port
        self._refresh_fast()
        try:
            conn.setblocking(True)
            conn.settimeout(1.0)
            conn.sendall(proto.build_reply(sock.getsockname()))
            conn.setblocking(False)
        except OSError as error:
            log.warning("cannot answer control request: %s", error)
            self._remove_port(port, "no reply possible")
            return
        log.info("new connection: port %d, peer pid %s", port.number, peer_pid)
        self.write_state("running")

    def _on_port_control(self, fd: int) -> None:
        port = self._control_conns[fd]
        try:
            chunk = port.control.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            log.warning("bad request on port %d's control connection (%d bytes ignored)",
                        port.number, len(chunk))
            return
        self._remove_port(port, "disconnect")
        self.write_state("running")

    def _remove_port(self, port: Port, reason: str) -> None:
        self._ports = tuple(p for p in self._ports if p is not port)
        if port.addr is not None:
            self._ports_by_addr.pop(port.addr, None)
        if port.control is not None:
            self._control_conns.pop(port.control.fileno(), None)
            self._unwatch(port.control.fileno())
            port.control.close()
        if port.sock is not None:
            self._ports_by_data_fd.pop(port.sock.fileno(), None)
            try:
                self._data_epoll.unregister(port.sock.fileno())
            except (OSError, ValueError):
                pass
            port.sock.close()
        if port.fd is not None:
            self._unwatch(port.fd)
            os.close(port.fd)
            port.fd = None
        for mac in [mac for mac, owner in self._mac_port.copy().items() if owner is port]:
            del self._mac_port[mac]
            self._mac_seen.pop(mac, None)
        log.info("port %d: %s", port.number, reason)

    def _free_port_number(self) -> int:
        used = {port.number for port in self._ports}
        number = 1
        while number in used:
            number += 1
        return number

    # ---- management ---------------------------------------------------------------------

    def _on_mgmt_accept(self, fd: int, mask: int) -> None:
        while True:
            try:
                conn, _ = self._mgmt_listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                log.warning("accept on management socket: %s", error)
                return
            conn.setblocking(False)
            self._mgmt_conns[conn.fileno()] = (conn, bytearray())
            self._watch(conn.fileno(), self._on_mgmt_readable)

    def _on_mgmt_readable(self, fd: int, mask: int) -> None:
        conn, pending = self._mgmt_conns[fd]
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close_mgmt(fd)
            return
        pending += chunk
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            if not self._answer(conn, self.handle_request(line)):
                self._close_mgmt(fd)
                return
        if len(pending) > MGMT_LINE_LIMIT:
            self._answer(conn, _error_reply(UmlguiError(
                f"management request longer than {MGMT_LINE_LIMIT} bytes",
                "send one JSON object per line")))
            self._close_mgmt(fd)

    def _answer(self, conn: socket.socket, reply: dict) -> bool:
        try:
            conn.setblocking(True)
            conn.settimeout(2.0)
            conn.sendall(json.dumps(reply).encode() + b"\n")
            conn.setblocking(False)
            return True
        except OSError:
            return False

    def _close_mgmt(self, fd: int) -> None:
        conn, _ = self._mgmt_conns.pop(fd)
        self._unwatch(fd)
        conn.close()

    def handle_request(self, line: bytes) -> dict:
        """Answer one management request (a JSON object with "op")."""
        try:
            request = json.loads(line)
        except ValueError:
            return _error_reply(UmlguiError("management request is not valid JSON",
                                            'send e.g. {"op": "status"}'))
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return _error_reply(UmlguiError('management request has no "op"',
                                            'send e.g. {"op": "status"}'))
        handler = {
            "status": self._op_status,
            "set_port": self._op_set_port,
            "capture_start": self._op_capture_start,
            "capture_stop": self._op_capture_stop,
            "quit": self._op_quit,
        }.get(request["op"])
        if handler is None:
            return _error_reply(UmlguiError(
                f"unknown operation {request['op']!r}",
                "use one of status, set_port, capture_start, capture_stop, quit"))
        try:
            reply = handler(request)
        except UmlguiError as error:
            return _error_reply(error)
        return {"ok": True, **reply}

    def _op_status(self, request: dict) -> dict:
        return self.status()

    def status(self) -> dict:
        now = time.monotonic()
        macs_by_port: dict[int, list[str]] = {}
        table = []
        for mac, port in self._mac_port.copy().items():
            text = proto.format_mac(mac)
            macs_by_port.setdefault(port.number, []).append(text)
            table.append({"mac": text, "port": port.number,
                          "age": round(now - self._mac_seen.get(mac, now), 3)})
        ports = [{
            "number": port.number, "kind": port.kind, "peer_pid": port.peer_pid,
            "label": port.label, "up": port.up, "connected": port.connected,
            "macs": sorted(macs_by_port.get(port.number, [])),
            "counters": port.counters(), "impairments": port.impairments(),
        } for port in self._ports]
        capture = None
        if self._capture is not None:
            capture = {"file": str(self._capture.path), "port": self._capture_port,
                       "frames": self._capture.frames}
        return {"name": self.name, "pid": os.getpid(), "hub": self.hub, "tap": self.tap,
                "control": str(self.control_path), "aging": self.aging,
                "started": self.started, "ports": ports,
                "macs": sorted(table, key=lambda entry: entry["mac"]),
                "capture": capture, "capture_failure": self._capture_failure}

    def _op_set_port(self, request: dict) -> dict:
        port = self._port_by_number(request.get("port"))
        changes = {key: request[key] for key in ("up", *IMPAIRMENT_LIMITS) if key in request
                   and request[key] is not None}
        self.set_port(port, **changes)
        return {"port": port.number, "up": port.up, "impairments": port.impairments()}

    def set_port(self, port: Port, **changes) -> None:
        """Apply `up` and impairment changes after checking all of them."""
        if "up" in changes and not isinstance(changes["up"], bool):
            raise ConfigError(f"'up' must be true or false, not {changes['up']!r}",
                              'send "up": true or "up": false')
        for key, (low, high) in IMPAIRMENT_LIMITS.items():
            if key not in changes:
                continue
            value = changes[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                unit = "%" if key in ("loss", "duplicate") else " ms"
                raise ConfigError(f"{key} must be a number from {low:g} to {high:g}{unit}, not {value!r}",
                                  f"give {key} within {low:g}–{high:g}")
        for key, value in changes.items():
            setattr(port, key, float(value) if key != "up" else value)
        port.impaired = bool(port.loss or port.delay_ms or port.jitter_ms or port.duplicate)
        self._refresh_fast()
        log.info("port %d: up=%s impairments=%s", port.number, port.up, port.impairments())

    def _port_by_number(self, number) -> Port:
        if isinstance(number, bool) or not isinstance(number, int):
            raise ConfigError(f"'port' must be a port number, not {number!r}",
                              "see the port numbers in the switch's status")
        for port in self._ports:
            if port.number == number:
                return port
        raise NotFoundError(f"switch {self.name} has no port {number}",
                            "see the connected ports in the switch's status")

    def _op_capture_start(self, request: dict) -> dict:
        if self._capture is not None:
            raise StateError(f"switch {self.name} is already capturing to {self._capture.path}",
                             "stop that capture first (capture_stop)")
        path = request.get("file")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ConfigError(f"capture file must be an absolute path, not {path!r}",
                              "give the full path of the .pcap file to write")
        number = request.get("port")
        port = self._port_by_number(number) if number is not None else None
        capture = PcapWriter(path)
        self._capture_failure = None
        with self._capture_lock:
            self._capture = capture
        self._capture_all = port is None
        self._capture_port = None if port is None else port.number
        if port is not None:
            port.captured = True
        self._refresh_fast()
        log.info("capturing %s to %s", f"port {number}" if port else "all ports", path)
        return {"file": path, "port": self._capture_port}

    def _op_capture_stop(self, request: dict) -> dict:
        capture = self._stop_capture()
        if capture is None:
            return {"file": None, "frames": 0}
        log.info("capture to %s stopped after %d frames", capture.path, capture.frames)
        return {"file": str(capture.path), "frames": capture.frames}

    def _stop_capture(self) -> PcapWriter | None:
        with self._capture_lock:
            capture, self._capture = self._capture, None
            if capture is not None:
                capture.close()
        self._capture_all = False
        self._capture_port = None
        for port in self._ports:
            port.captured = False
        self._refresh_fast()
        return capture

    def _op_quit(self, request: dict) -> dict:
        self.stop()
        return {}

    # ---- state file ---------------------------------------------------------------------

    def write_state(self, state: str) -> None:
        """Record running/stopped in the state JSON, so the state survives the process."""
        record = {"name": self.name, "state": state, "pid": os.getpid(), "hub": self.hub,
                  "tap": self.tap, "control": str(self.control_path), "mgmt": str(self.mgmt_path),
                  "aging": self.aging, "started": self.started, "updated": time.time(),
                  "ports": len(self._ports)}
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.state_path.with_name(self.state_path.name + ".tmp")
            temporary.write_text(json.dumps(record, indent=1) + "\n")
            temporary.replace(self.state_path)
        except OSError as error:
            log.warning("cannot write state file %s: %s", self.state_path, error)


# ---- helpers --------------------------------------------------------------------------


def _error_reply(error: UmlguiError) -> dict:
    return {"ok": False, "error": error.problem, "fix": error.fix, "kind": type(error).__name__}


def _address_key(name: bytes):
    """The form recvfrom() reports for the peer: bytes for abstract names, str for paths."""
    if name[:1] == b"\0":
        return name
    return os.fsdecode(name.split(b"\0", 1)[0])


def _port_data_socket(name: bytes) -> socket.socket | None:
    """A port's data socket: bound to a fresh abstract name (padded like uml_switch's) and
    connected to the card's data socket `name`; None (logged) when that socket is gone.

    Being connected, it accepts frames from that card only, and the card's sends to it are not
    held to max_dgram_qlen. Frames to the card leave through it too: UML reads them without
    looking at the sender.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        _bind_unique_name(sock)
        sock.connect(name if name[:1] == b"\0" else _address_key(name))
    except OSError as error:
        sock.close()
        log.warning("a card asked to join with a data socket that cannot be reached (%s); refused",
                    error.strerror)
        return None
    _grow_buffers(sock)
    return sock


def _bind_unique_name(sock: socket.socket) -> None:
    while True:
        try:
            sock.bind(proto.abstract_name(os.getpid(), int.from_bytes(os.urandom(3), "little")))
            return
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise


def _peer_pid(conn: socket.socket) -> int | None:
    try:
        credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", credentials)[0] or None
    except OSError:
        return None


def _grow_buffers(sock: socket.socket) -> None:
    # Room for bursts towards the card; a limit, not an allocation.
    for force, plain in ((getattr(socket, "SO_SNDBUFFORCE", 32), socket.SO_SNDBUF),
                         (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except OSError:
            try:
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
            except OSError:
                pass


def _daemonize(log_file: Path) -> int:
    """Detach (double fork, setsid); return a pipe fd on which the daemon reports readiness.

    The launching process waits for that report, so it exits only once the switch serves.
    """
    ready_r, ready_w = os.pipe()
    if os.fork() > 0:
        os.close(ready_w)
        report = os.read(ready_r, 64)
        if report:
            sys.stdout.write(report.decode())
            sys.stdout.flush()
        os._exit(0 if report else 1)
    os.close(ready_r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    output = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    return ready_w


def _configure_logging(log_file: Path | None, verbose: bool) -> None:
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("umlgui")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m umlgui.net.switch",
        description="A uml_switch-compatible virtual switch with counters, impairments and capture.")
    parser.add_argument("--name", required=True, help="switch name (for logs and status)")
    parser.add_argument("--control", required=True, help="control socket path (ethN=daemon,,unix,PATH)")
    parser.add_argument("--hub", action="store_true", help="flood every frame to every port")
    parser.add_argument("--tap", metavar="DEV", help="also attach existing host tap DEV as a port")
    parser.add_argument("--aging", type=float, default=DEFAULT_AGING, metavar="SECONDS",
                        help="forget a learned MAC after this long without traffic (default 100)")
    parser.add_argument("--daemon", action="store_true", help="detach and keep running in the background")
    parser.add_argument("--log", metavar="FILE", help="log file (default with --daemon: CONTROL.log)")
    parser.add_argument("--state", metavar="FILE", help="state JSON (default CONTROL.state.json)")
    parser.add_argument("--pid-file", metavar="FILE", help="pid file (default CONTROL.pid)")
    parser.add_argument("--verbose", action="store_true", help="log MAC aging too")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    control = Path(args.control).absolute()
    log_file = Path(args.log) if args.log else (Path(f"{control}.log") if args.daemon else None)
    pid_file = Path(args.pid_file) if args.pid_file else Path(f"{control}.pid")
    switch = Switch(args.name, control, hub=args.hub, tap=args.tap, aging=args.aging,
                    state_path=args.state)
    try:
        switch.open()
    except UmlguiError as error:
        print(f"switch {args.name}: {error}", file=sys.stderr)
        switch.close()
        return 1
    ready = _daemonize(log_file) if args.daemon else None
    _configure_logging(log_file, args.verbose)
    pid_file.write_text(f"{os.getpid()}\n")
    switch.install_signal_handlers()
    switch.write_state("running")  # before reporting ready: a starter may read it at once
    if ready is not None:
        os.write(ready, f"switch {args.name} running, pid {os.getpid()}, control {control}\n".encode())
        os.close(ready)
    try:
        switch.serve_forever()
    finally:
        switch.close()
        unlink_quietly(pid_file)
    return 0

if __name__ == "__main__":
    sys.exit(main())
