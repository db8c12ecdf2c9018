"""Follows a lab while it is shown: node states and per-link traffic, once a second, off the GUI thread.

States come from the workers' state files, traffic from each running switch's status (its
per-port counters), so the canvas never waits on a socket.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field

from PySide6.QtCore import QThread, Signal

from umlgui.errors import UmlguiError
from umlgui.model.lab import Lab
from umlgui.net import lab_runner

POLL_INTERVAL_S = 1.0


@dataclass
class LabSnapshot:
    states: dict[str, str] = field(default_factory=dict)               # node -> state
    traffic: dict[tuple[str, str], float] = field(default_factory=dict)  # (machine, card) -> packets/s
    plugged: set[tuple[str, str]] = field(default_factory=set)         # links with a live switch port
    problems: dict[str, str] = field(default_factory=dict)             # network node -> why no status
    capture_failures: dict[str, dict] = field(default_factory=dict)    # network node -> error, fix


class LabPoller(QThread):
    polled = Signal(object)         # LabSnapshot

    def __init__(self, lab: Lab, interval: float = POLL_INTERVAL_S):
        super().__init__()
        self.interval = interval
        self._lab = copy.deepcopy(lab)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._last_counts: dict[tuple[str, str], tuple[float, int]] = {}

    def set_lab(self, lab: Lab) -> None:
        with self._lock:
            self._lab = copy.deepcopy(lab)
        self.poke()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self.wait(5000)

    def run(self) -> None:
        while not self._stop:
            with self._lock:
                lab = self._lab
            try:
                self.polled.emit(self.poll_once(lab))
            except Exception:       # a poll must never end the thread; the next one retries
                pass
            self._wake.wait(self.interval)
            self._wake.clear()

    def poll_once(self, lab: Lab) -> LabSnapshot:
        snapshot = LabSnapshot(states=lab_runner.node_states(lab))
        for node in lab.networks():
            if not node.has_ports or snapshot.states.get(node.name) != "running":
                continue
            try:
                status = lab_runner.switch_status(lab, node.name)
            except UmlguiError as error:
                snapshot.problems[node.name] = str(error)
                continue
            self._read_traffic(lab, node.name, status, snapshot)
            if status.get("capture_failure"):
                snapshot.capture_failures[node.name] = status["capture_failure"]
        return snapshot

    def _read_traffic(self, lab: Lab, network: str, status: dict, snapshot: LabSnapshot) -> None:
        ports = {port["number"]: port for port in status.get("ports", [])}
        now = time.monotonic()
        for link in lab.links:
            if link.network != network:
                continue
            number = lab_runner.port_of_link(lab, link, status)
            if number is None or number not in ports:
                continue
            key = (link.machine, link.card)
            snapshot.plugged.add(key)
            counters = ports[number]["counters"]
            count = counters["rx_packets"] + counters["tx_packets"]
            before = self._last_counts.get(key)
            self._last_counts[key] = (now, count)
            if before and now > before[0] and count >= before[1]:
                snapshot.traffic[key] = (count - before[1]) / (now - before[0])
