"""`umlgui switch ...` subcommands, for the lead's argparse to mount.

    umlgui switch start NAME [--hub] [--tap DEV] [--aging SECONDS]
    umlgui switch stop NAME
    umlgui switch list
    umlgui switch status NAME [--json]
    umlgui switch port NAME PORT [--up|--down] [--loss PCT] [--delay MS] [--jitter MS] [--duplicate PCT]
    umlgui switch capture NAME FILE [--port PORT]        (runs until Ctrl-C, then stops the capture)
    umlgui switch capture-stop NAME

Wire it with `add_switch_parser(subparsers)`; the parsed namespace's `func` is `cli_switch`,
which returns the exit status and raises UmlguiError for the caller to print.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from umlgui.net.client import (SwitchClient, control_path, list_switches, mgmt_path_for,
                               start_switch, stop_switch)


def add_switch_parser(subparsers) -> argparse.ArgumentParser:
    """Add `switch` and its subcommands to an argparse subparsers object."""
    parser = subparsers.add_parser("switch", help="virtual switches and hubs")
    commands = parser.add_subparsers(dest="switch_command", required=True)

    start = commands.add_parser("start", help="start a switch in the background")
    start.add_argument("name")
    start.add_argument("--hub", action="store_true", help="flood every frame (a hub)")
    start.add_argument("--tap", metavar="DEV", help="also connect existing host tap DEV")
    start.add_argument("--aging", type=float, metavar="SECONDS", help="MAC aging time (default 100)")
    start.add_argument("--uml-switch", action="store_true",
                       help="run Debian's C uml_switch on the same socket instead (no counters, "
                            "impairments or capture)")

    commands.add_parser("stop", help="stop a switch").add_argument("name")
    commands.add_parser("list", help="switches on this machine")

    status = commands.add_parser("status", help="ports, counters, MAC table")
    status.add_argument("name")
    status.add_argument("--json", action="store_true")

    port = commands.add_parser("port", help="port up/down and impairments")
    port.add_argument("name")
    port.add_argument("port", type=int)
    state = port.add_mutually_exclusive_group()
    state.add_argument("--up", dest="up", action="store_const", const=True)
    state.add_argument("--down", dest="up", action="store_const", const=False)
    port.add_argument("--loss", type=float, metavar="PCT")
    port.add_argument("--delay", type=float, metavar="MS")
    port.add_argument("--jitter", type=float, metavar="MS")
    port.add_argument("--duplicate", type=float, metavar="PCT")

    capture = commands.add_parser("capture", help="capture to a pcap file until Ctrl-C")
    capture.add_argument("name")
    capture.add_argument("file")
    capture.add_argument("--port", type=int)

    commands.add_parser("capture-stop", help="stop a running capture").add_argument("name")
    parser.set_defaults(func=cli_switch)
    return parser


def cli_switch(args: argparse.Namespace, out=None) -> int:
    """Run one parsed `switch` subcommand; returns the exit status."""
    out = out or sys.stdout
    command = args.switch_command
    if command == "start" and args.uml_switch:
        from umlgui.net.client import start_uml_switch

        pid = start_uml_switch(args.name, hub=args.hub)
        print(f"uml_switch {args.name} running (pid {pid}) on {control_path(args.name)}", file=out)
        return 0
    if command == "start":
        handle = start_switch(args.name, hub=args.hub, tap=args.tap, aging=args.aging)
        print(f"switch {handle.name} running (pid {handle.pid})", file=out)
        print(f"connect a machine with: {handle.card_argument(0)}", file=out)
        return 0
    if command == "stop":
        print(f"switch {args.name} {'stopped' if stop_switch(args.name) else 'was not running'}", file=out)
        return 0
    if command == "list":
        for info in list_switches():
            kind = "hub" if info.hub else "switch"
            state = f"running (pid {info.pid})" if info.running else "stopped"
            print(f"{info.name:20s} {kind:6s} {state:22s} {info.control}", file=out)
        return 0
    client = SwitchClient(mgmt_path_for(control_path(args.name)), args.name)
    if command == "status":
        status = client.status()
        print(json.dumps(status, indent=1) if args.json else format_status(status), file=out)
    elif command == "port":
        reply = client.set_port(args.port, up=args.up, loss=args.loss, delay_ms=args.delay,
                                jitter_ms=args.jitter, duplicate=args.duplicate)
        print(f"port {reply['port']}: {'up' if reply['up'] else 'down'}, "
              f"{_impairment_text(reply['impairments'])}", file=out)
    elif command == "capture":
        return _capture_until_interrupted(client, args, out)
    elif command == "capture-stop":
        reply = client.capture_stop()
        print(f"capture stopped: {reply['frames']} frames in {reply['file']}", file=out)
    return 0


def format_status(status: dict) -> str:
    """Human-readable status: one line per port, then the MAC table."""
    kind = "hub" if status["hub"] else "switch"
    lines = [f"{kind} {status['name']} (pid {status['pid']}), control {status['control']}"]
    for port in status["ports"]:
        counters = port["counters"]
        who = port["label"] or (f"pid {port['peer_pid']}" if port["peer_pid"] else "?")
        lines.append(
            f"  port {port['number']:3d} {port['kind']:6s} {who:12s} {'up' if port['up'] else 'DOWN':4s} "
            f"rx {counters['rx_packets']}/{counters['rx_bytes']}B tx {counters['tx_packets']}/"
            f"{counters['tx_bytes']}B queued {counters.get('tx_queued', 0)} "
            f"drop {counters['tx_dropped'] + counters['impair_dropped']}  "
            f"{_impairment_text(port['impairments'])}  {' '.join(port['macs'])}")
    if status.get("capture"):
        capture = status["capture"]
        lines.append(f"  capturing {'port ' + str(capture['port']) if capture['port'] else 'all ports'}"
                     f" to {capture['file']} ({capture['frames']} frames)")
    elif status.get("capture_failure"):
        failure = status["capture_failure"]
        lines.append(f"  {failure['error']} (fix: {failure['fix']})")
    return "\n".join(lines)


def _impairment_text(impairments: dict) -> str:
    parts = []
    if impairments["loss"]:
        parts.append(f"loss {impairments['loss']:g}%")
    if impairments["delay_ms"] or impairments["jitter_ms"]:
        parts.append(f"delay {impairments['delay_ms']:g}±{impairments['jitter_ms']:g} ms")
    if impairments["duplicate"]:
        parts.append(f"duplicate {impairments['duplicate']:g}%")
    return ", ".join(parts) or "no impairments"


def _capture_until_interrupted(client: SwitchClient, args, out) -> int:
    reply = client.capture_start(args.file, port=args.port)
    print(f"capturing to {reply['file']}; press Ctrl-C to stop", file=out, flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the capture on TERM too
    try:
        while True:
            time.sleep(1.0)
            status = client.status()
            if status["capture"] is None:  # ended by itself (a full disk) or stopped elsewhere
                failure = status.get("capture_failure")
                if failure:
                    print(f"error: {failure['error']}\n  fix: {failure['fix']}", file=sys.stderr)
                    return 1
                print(f"the capture to {reply['file']} was stopped elsewhere", file=out)
                return 0
    except KeyboardInterrupt:
        pass
    stopped = client.capture_stop()
    print(f"{stopped['frames']} frames written to {stopped['file']}", file=out)
    return 0
