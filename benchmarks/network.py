"""Throughput and round-trip time between two busybox UMLs: our switch vs. the C `uml_switch`.

Each round boots two linux.uml guests (mem=64M) on one switch: B runs `iperf3 -s -1`, A first
pings B (median of --pings echo replies, 0.1 s apart), then runs `iperf3 -c B -t SECONDS`
(TCP, receiver bitrate). Rounds alternate between the two switches; figures are medians over
rounds. Goals (issue #6): switch_mbps >= 0.9 x uml_switch_mbps, switch_rtt_ms <= 1.5 x
uml_switch_rtt_ms, impairments off.

Run as: python3 benchmarks/network.py [--rounds 2] [--seconds 10] [--pings 50]
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "net"))

from netguest import Guest, build_base_image  # noqa: E402

MAC_A, MAC_B = "fe:fd:00:00:00:01", "fe:fd:00:00:00:02"
IP_A, IP_B = "10.0.0.1", "10.0.0.2"


def start_our_switch(control: Path):
    process = subprocess.Popen(
        [sys.executable, "-m", "umlgui.net.switch", "--name", "bench", "--control", str(control)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, cwd=ROOT)
    _wait_for_socket(control)
    return process


def start_uml_switch(control: Path):
    process = subprocess.Popen(["uml_switch", "-unix", str(control)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    _wait_for_socket(control)
    return process


def _wait_for_socket(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"switch socket {path} did not appear")
        time.sleep(0.02)


def run_round(kind: str, base: Path, work: Path, seconds: int, pings: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    control = work / f"{kind}.ctl"
    switch = (start_our_switch if kind == "switch" else start_uml_switch)(control)
    cpu_before = _cpu_seconds(switch.pid)
    guests = []
    try:
        server = Guest(f"{kind}-b", base, work, cards=[f"eth0=daemon,{MAC_B},unix,{control}"],
                       ip=IP_B, script="iperf3 -s -1 >/dev/null")
        guests.append(server)
        client_script = (f"ping -c 3 -w 30 {IP_B} >/dev/null; "
                         f"ping -c {pings} -i 0.1 {IP_B}; "
                         f"iperf3 -c {IP_B} -t {seconds} -f m")
        client = Guest(f"{kind}-a", base, work, cards=[f"eth0=daemon,{MAC_A},unix,{control}"],
                       ip=IP_A, script=client_script)
        guests.append(client)
        output = client.wait(seconds + pings * 0.1 + 90)
        cpu = _cpu_seconds(switch.pid) - cpu_before
    finally:
        for guest in guests:
            guest.kill()
        os.killpg(switch.pid, signal.SIGTERM)
        switch.wait(10)
    rtts = [float(value) for value in re.findall(r"time=([\d.]+) ms", output)]
    receiver = re.search(r"([\d.]+) Mbits/sec\s+(?:\d+\s+)?receiver", output)
    retransmits = re.search(r"Mbits/sec\s+(\d+)\s+sender", output)
    if not rtts or not receiver:
        raise RuntimeError(f"{kind}: no figures in the guest output:\n{output[-2000:]}")
    return {"mbps": float(receiver.group(1)), "rtt_ms": statistics.median(rtts),
            "retransmits": int(retransmits.group(1)) if retransmits else None,
            "switch_cpu_s": round(cpu, 2)}


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10, help="iperf3 duration")
    parser.add_argument("--pings", type=int, default=50)
    args = parser.parse_args()
    if not shutil.which("uml_switch") or not shutil.which("iperf3"):
        print("needs uml_switch (uml-utilities) and iperf3", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="umnb", dir="/tmp"))
    results: dict[str, list[dict]] = {"switch": [], "uml_switch": []}
    try:
        base = build_base_image(work, with_iperf=True)
        for round_number in range(args.rounds):
            for kind in ("switch", "uml_switch"):
                figures = run_round(kind, base, work / f"r{round_number}", args.seconds, args.pings)
                results[kind].append(figures)
                print(f"round {round_number + 1} {kind:10s}: {figures['mbps']:7.1f} Mbit/s  "
                      f"rtt median {figures['rtt_ms']:.3f} ms  retransmits {figures['retransmits']}  "
                      f"switch cpu {figures['switch_cpu_s']} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for kind, rounds in results.items():
        summary[f"{kind}_mbps"] = round(statistics.median(r["mbps"] for r in rounds), 1)
        summary[f"{kind}_rtt_ms"] = round(statistics.median(r["rtt_ms"] for r in rounds), 3)
    throughput_ratio = summary["switch_mbps"] / summary["uml_switch_mbps"]
    rtt_ratio = summary["switch_rtt_ms"] / summary["uml_switch_rtt_ms"]
    print(f"throughput: ours {summary['switch_mbps']} vs uml_switch {summary['uml_switch_mbps']} Mbit/s "
          f"({throughput_ratio:.0%}, goal >= 90%)")
    print(f"median RTT: ours {summary['switch_rtt_ms']} vs uml_switch {summary['uml_switch_rtt_ms']} ms "
          f"({rtt_ratio:.2f}x, goal <= 1.5x)")
    print(json.dumps({"switch_mbps": summary["switch_mbps"], "uml_switch_mbps": summary["uml_switch_mbps"],
                      "switch_rtt_ms": summary["switch_rtt_ms"],
                      "uml_switch_rtt_ms": summary["uml_switch_rtt_ms"],
                      "throughput_ratio": round(throughput_ratio, 3), "rtt_ratio": round(rtt_ratio, 3),
                      "rounds": args.rounds, "iperf_seconds": args.seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
