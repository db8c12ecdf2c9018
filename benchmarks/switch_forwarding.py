"""The switch alone, without guests: CPU per forwarded frame and burst loss, ours vs. `uml_switch`.

`benchmarks/network.py` measures what users see (TCP between two UMLs) but takes minutes and
swings with the guests' scheduling. This one isolates the switch, for working on its data
path. Two fake cards (the daemon protocol, as UML speaks it) join each switch in turn:

  steady  card A sends 1514-byte frames to card B at a fixed rate (--rate, frames/s, in bursts
          of 10) for --seconds; a second process reads B's socket. Figures: frames delivered,
          and the switch's CPU time per frame (from /proc, user + system).
  burst   A sends --burst frames back to back without blocking, as UML's driver does, while B
          is not reading; then B reads what arrived. Figures: frames A could hand over (the
          rest failed with EAGAIN, lost as UML loses them) and frames B got.

Run as: python3 benchmarks/switch_forwarding.py [--rate 25000] [--seconds 4] [--burst 200]
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from network import _cpu_seconds, start_our_switch, start_uml_switch  # noqa: E402

from umlgui.net.daemon import DaemonPeer, ethernet_frame, parse_mac  # noqa: E402

MAC_A, MAC_B = parse_mac("fe:fd:00:00:00:01"), parse_mac("fe:fd:00:00:00:02")
FRAME = ethernet_frame(MAC_B, MAC_A, b"x" * 1500)


def count_frames(sock: socket.socket, results) -> None:
    """B's reader: frames until the link has been quiet for half a second."""
    sock.settimeout(0.5)
    buffer = bytearray(2048)
    frames = 0
    results.put("ready")
    try:
        while True:
            sock.recv_into(buffer)
            frames += 1
    except socket.timeout:
        pass
    results.put(frames)


def joined_pair(control: Path) -> tuple[DaemonPeer, DaemonPeer]:
    """Cards A and B on the switch, each address learned (one frame each way)."""
    a, b = DaemonPeer.connect(control), DaemonPeer.connect(control)
    b.send(ethernet_frame(MAC_A, MAC_B))
    a.send(ethernet_frame(MAC_B, MAC_A))
    time.sleep(0.2)
    a.recv_all(0.1)
    b.recv_all(0.1)
    return a, b


def steady(switch_pid: int, control: Path, rate: float, seconds: float) -> dict:
    a, b = joined_pair(control)
    results = multiprocessing.Queue()
    reader = multiprocessing.Process(target=count_frames, args=(b.data, results))
    reader.start()
    results.get()
    cpu_before = _cpu_seconds(switch_pid)
    started = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - started < seconds:
        due = started + sent / rate
        if now < due:
            time.sleep(due - now)
        for _ in range(10):
            a.data.sendto(FRAME, a.switch_name)
        sent += 10
    delivered = results.get()
    reader.join()
    cpu = _cpu_seconds(switch_pid) - cpu_before
    a.close()
    b.close()
    return {"sent": sent, "delivered": delivered, "cpu_us_per_frame": round(cpu / sent * 1e6, 2)}


def burst(control: Path, frames: int) -> dict:
    a, b = joined_pair(control)
    a.data.setblocking(False)
    handed = 0
    for _ in range(frames):
        try:
            a.data.sendto(FRAME, a.switch_name)
            handed += 1
        except BlockingIOError:
            pass  # UML's driver drops the frame here
    time.sleep(0.3)
    received = len(b.recv_all(0.3))
    a.close()
    b.close()
    return {"handed_over": handed, "received": received}


def measure(kind: str, args, work: Path) -> dict:
    control = work / f"{kind}.ctl"
    switch = (start_our_switch if kind == "switch" else start_uml_switch)(control)
    try:
        time.sleep(0.3)
        return {**steady(switch.pid, control, args.rate, args.seconds), **burst(control, args.burst)}
    finally:
        os.killpg(switch.pid, signal.SIGTERM)
        switch.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=25000, help="frames per second, steady test")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--burst", type=int, default=200, help="frames in the burst test")
    args = parser.parse_args()
    if not shutil.which("uml_switch"):
        print("needs uml_switch (uml-utilities)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="umsf", dir="/tmp"))
    results = {}
    try:
        for kind in ("switch", "uml_switch"):
            results[kind] = figures = measure(kind, args, work)
            print(f"{kind:10s}: steady {figures['delivered']}/{figures['sent']} frames delivered, "
                  f"{figures['cpu_us_per_frame']} us switch CPU per frame; burst of {args.burst}: "
                  f"{figures['handed_over']} handed over, {figures['received']} received", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({f"{kind}_{key}": value for kind, figures in results.items()
                      for key, value in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
