"""`umlgui` on the command line. Without arguments it opens the window.

Exit codes: 0 success, 1 a problem the message explains, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import sys
import termios
import time
import tty

from umlgui import __version__
from umlgui.errors import UmlguiError
from umlgui.jobs import Cancelled, console_progress
from umlgui.model import library
from umlgui.model.units import format_size, human_size
from umlgui.worker import client
from umlgui.worker import state as st

DETACH_KEY = b"\x1d"    # Ctrl-]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="umlgui", description="Manage User-Mode Linux machines.")
    parser.add_argument("--version", action="version", version=f"umlgui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("gui", help="open the window (the default)")
    p = sub.add_parser("list", help="list machines and their states")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("create", help="create a machine")
    p.add_argument("name")
    p.add_argument("--template", default="busybox", help="template to build from (default busybox); "
                   "'none' for a machine made only of --disk images")
    p.add_argument("--mem", help="memory, e.g. 128M")
    p.add_argument("--engine", choices=("linux", "tt"), default="linux")
    p.add_argument("--disk", action="append", default=[], metavar="FILE",
                   help="attach an existing image as the next free ubd (repeatable)")
    p.add_argument("--kernel", default="linux.uml", help="UML kernel binary (default linux.uml)")
    p.add_argument("--autologin", action="store_true", help="log in as root on con0 without a prompt")
    p.add_argument("--monitor", action="store_true", help="tt engine: log every guest syscall")

    p = sub.add_parser("monitor", help="tt engine: turn the syscall monitor on/off, or show its log")
    p.add_argument("name")
    switch = p.add_mutually_exclusive_group()
    switch.add_argument("--on", action="store_true", help="log syscalls from the next boot on")
    switch.add_argument("--off", action="store_true")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new syscalls")
    p.add_argument("--filter", default="", help="only syscalls whose name, pid, command or arguments match")

    p = sub.add_parser("import", help="create a machine from a UML command line: import [NAME] -- linux ubd0=... mem=...")
    p.add_argument("--name")
    p.add_argument("argv", nargs=argparse.REMAINDER)

    p = sub.add_parser("show", help="show a machine's definition and command line")
    p.add_argument("name")

    p = sub.add_parser("boot", help="boot a machine")
    p.add_argument("name")
    p.add_argument("--wait", action="store_true", help="return once a login or shell prompt shows on con0")
    p.add_argument("--timeout", type=float, default=120.0)

    for verb, text in (("halt", "halt a machine (sync, then mconsole halt)"),
                       ("reboot", "reboot a machine"),
                       ("kill", "kill a machine's whole process group")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("name")
        if verb == "halt":
            p.add_argument("--wait", action="store_true", help="return once the machine has stopped")

    p = sub.add_parser("console", help="attach to a console (Ctrl-] detaches)")
    p.add_argument("name")
    p.add_argument("console", nargs="?", default="con0")
    p.add_argument("--no-replay", action="store_true", help="do not replay earlier output")

    p = sub.add_parser("mconsole", help="send an mconsole command (version, sysrq s, proc meminfo, ...)")
    p.add_argument("name")
    p.add_argument("words", nargs=argparse.REMAINDER)

    p = sub.add_parser("log", help="print a machine's console log")
    p.add_argument("name")
    p.add_argument("console", nargs="?", default="con0")
    p.add_argument("--kernel", action="store_true", help="the kernel's own stderr instead")

    p = sub.add_parser("rm", help="delete a machine (never its template's shared base)")
    p.add_argument("name")

    p = sub.add_parser("template", help="list, build or remove templates")
    tsub = p.add_subparsers(dest="template_command", metavar="ACTION")
    tsub.add_parser("list")
    tp = tsub.add_parser("build")
    tp.add_argument("name")
    tp.add_argument("--force", action="store_true", help="rebuild even if built")
    tp.add_argument("--mirror", help="Debian mirror URL (debian template; default: the host's apt mirror)")
    tp = tsub.add_parser("rm")
    tp.add_argument("name")

    p = sub.add_parser("disk", help="create, inspect, layer and merge disk images")
    dsub = p.add_subparsers(dest="disk_command", metavar="ACTION")
    dp = dsub.add_parser("create", help="a new sparse image, ext4 unless --fs none")
    dp.add_argument("path")
    dp.add_argument("size", help="e.g. 1G")
    dp.add_argument("--fs", default="ext4", choices=("ext4", "none"))
    dp.add_argument("--label")
    dp = dsub.add_parser("cow", help="a COW file over a read-only backing image (like uml_mkcow)")
    dp.add_argument("cow")
    dp.add_argument("backing")
    dp = dsub.add_parser("inspect", help="size, allocation, filesystem and backing chain")
    dp.add_argument("path")
    dp = dsub.add_parser("merge", help="merge a COW into a new image, or into its backing file with --in-place")
    dp.add_argument("cow")
    dp.add_argument("output", nargs="?")
    dp.add_argument("--in-place", action="store_true")

    # --- lab (topology) commands: umlgui/model/lab.py, umlgui/net/netkit.py, lab_runner.py ---
    p = sub.add_parser("lab", help="labs: list, show, import/export Netkit labs, up, down")
    lsub = p.add_subparsers(dest="lab_command", metavar="ACTION")
    lsub.add_parser("list", help="labs with their machines' states")
    lp = lsub.add_parser("show", help="a lab's nodes, links and start order")
    lp.add_argument("name")
    lp = lsub.add_parser("import", help="a Netkit/Kathará lab directory (lab.conf) as a new lab")
    lp.add_argument("directory")
    lp.add_argument("name", nargs="?")
    lp.add_argument("--template", default="busybox", help="template of its machines (default busybox)")
    lp = lsub.add_parser("export", help="write a lab as a Netkit lab (lab.conf, lab.dep, files)")
    lp.add_argument("name")
    lp.add_argument("directory")
    lp = lsub.add_parser("up", help="start switches, then machines in waves (lab.dep order)")
    lp.add_argument("name")
    lp.add_argument("--wave", type=int, help="machines booted at once (default: CPUs, at least 2)")
    lp.add_argument("--timeout", type=float, default=120.0, help="seconds each wave may take to boot")
    lp = lsub.add_parser("down", help="halt the lab's machines, then stop its switches")
    lp.add_argument("name")
    # --- end of lab commands ---

    from umlgui.net.cli import add_switch_parser

    add_switch_parser(sub)

    p = sub.add_parser("terminal", help="open the terminal widget on a local command: terminal -- CMD")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "gui"
    try:
        if command == "switch":
            return args.func(args)
        return COMMANDS[command](args)
    except UmlguiError as exc:
        print(f"umlgui: {exc.problem}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Cancelled):
        print("umlgui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`umlgui log X | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def cmd_gui(args) -> int:
    try:
        from umlgui.gui.app import main as gui_main
    except ImportError as exc:
        raise UmlguiError(f"the window cannot start: {exc}",
                          "install the Qt bindings: pip install PySide6-Essentials") from None
    return gui_main([])


def cmd_list(args) -> int:
    rows = []
    for name in library.list_names():
        machine = library.load(name)
        state = client.machine_state(name)
        rows.append({"name": name, "state": state.state, "engine": machine.engine,
                     "memory": format_size(machine.memory), "uptime": state.uptime(),
                     "exit_code": state.exit_code, "template": machine.template,
                     "message": state.message})
    if args.json:
        import json
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no machines yet: umlgui create NAME")
        return 0
    print(f"{'NAME':<20} {'STATE':<10} {'ENGINE':<7} {'MEMORY':<7} UPTIME/EXIT")
    for row in rows:
        extra = _duration(row["uptime"]) if row["uptime"] else (
            f"exit {row['exit_code']}" if row["exit_code"] is not None else "")
        print(f"{row['name']:<20} {row['state']:<10} {row['engine']:<7} {row['memory']:<7} {extra}")
        if row["message"] and not row["uptime"]:
            print(f"{'':<20} {row['message']}")      # why it stopped, under its row
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def cmd_create(args) -> int:
    template = None if args.template == "none" else args.template
    machine = library.new_machine(args.name, template=template, memory=args.mem, engine=args.engine,
                                  disks=args.disk, kernel=args.kernel, progress=console_progress())
    if args.autologin or args.monitor:
        machine.autologin = args.autologin
        machine.monitor = args.monitor
        library.save(machine)
    print(f"created {machine.name} ({machine.engine}, {format_size(machine.memory)}"
          f"{', template ' + machine.template if machine.template else ''})")
    return 0


def cmd_import(args) -> int:
    from umlgui.model.cmdline import from_argv

    words = [w for w in args.argv if w != "--"] if args.argv[:1] == ["--"] else args.argv
    if not words:
        raise UmlguiError("no command line to import", "umlgui import [--name NAME] -- linux ubd0=root_fs mem=128M")
    result = from_argv(words, name=args.name)
    if library.exists(result.machine.name):
        raise UmlguiError(f"a machine named {result.machine.name!r} already exists",
                          "pick another with --name")
    for warning in result.warnings:
        print(f"umlgui: warning: {warning}", file=sys.stderr)
    result.machine.validate(check_files=False)
    library.save(result.machine)
    print(f"imported {result.machine.name}")
    return 0


def cmd_show(args) -> int:
    from umlgui.model.cmdline import to_shell

    machine = library.load(args.name)
    print(library.paths.machine_file(args.name).read_text(), end="")
    print(f"\n# command line\n{to_shell(machine)}")
    return 0


def cmd_boot(args) -> int:
    state = client.start(args.name)
    print(f"{args.name}: {state.state} (kernel pid {state.kernel_pid})")
    if args.wait:
        client.wait_until_ready(args.name, args.timeout)
        print(f"{args.name}: running, prompt on con0")
    return 0


def cmd_halt(args) -> int:
    client.halt(args.name)
    if getattr(args, "wait", False):
        _wait_stopped(args.name)
    print(f"{args.name}: halting")
    return 0


def _wait_stopped(name: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while client.is_running(name):
        if time.time() > deadline:
            raise UmlguiError(f"{name} did not stop within {timeout:.0f} s", f"umlgui kill {name}")
        time.sleep(0.1)


def cmd_reboot(args) -> int:
    client.reboot(args.name)
    print(f"{args.name}: rebooting")
    return 0


def cmd_kill(args) -> int:
    client.kill(args.name)
    print(f"{args.name}: killed")
    return 0


def cmd_mconsole(args) -> int:
    if not args.words:
        raise UmlguiError("no mconsole command given", "e.g. umlgui mconsole NAME version")
    reply = client.mconsole(args.name, " ".join(args.words))
    text = reply.get("text", "")
    ok = reply.get("err", 0) == 0
    print(("OK " if ok else "ERR ") + text)
    return 0 if ok else 1


def cmd_log(args) -> int:
    name = "kernel" if args.kernel else args.console
    path = library.paths.logs_dir(args.name) / f"{name}.log"
    library.load(args.name)
    if not path.exists():
        raise UmlguiError(f"{args.name} has no {name} log yet", f"boot it: umlgui boot {args.name}")
    with open(path, "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer)
    return 0


def cmd_rm(args) -> int:
    library.delete(args.name, client.is_running)
    print(f"removed {args.name}")
    return 0


def cmd_template(args) -> int:
    from umlgui.templates.base import catalogue, get_template

    action = args.template_command or "list"
    if action == "list":
        for template in catalogue().values():
            built = "built" if template.is_built() else (
                f"not built (≈{template.download_mb} MB download)" if template.download_mb else "not built")
            print(f"{template.name:<12} {built:<30} {template.description}")
        return 0
    template = get_template(args.name)
    if action == "build" and args.mirror:
        if not hasattr(template, "mirror"):
            raise UmlguiError(f"template {args.name} takes no mirror", "drop --mirror")
        template = type(template)(mirror=args.mirror)
    if action == "build":
        built = template.build(console_progress(), force=args.force)
        print(f"template {built.name} ready in {built.directory}")
    elif action == "rm":
        template.remove()
        print(f"removed template {args.name}")
    return 0


def cmd_monitor(args) -> int:
    from umlgui.kernel.tt_engine import monitor_log
    from umlgui.model.syscalls import SyscallLogReader

    machine = library.load(args.name)
    if args.on or args.off:
        machine.monitor = bool(args.on)
        library.save(machine)
        when = " from its next boot" if client.is_running(args.name) else ""
        print(f"{args.name}: syscall monitor {'on' if args.on else 'off'}{when}")
        return 0
    reader = SyscallLogReader(monitor_log(args.name))
    if not reader.path.exists():
        raise UmlguiError(f"{args.name} has no syscall log",
                          f"turn the monitor on (umlgui monitor {args.name} --on) and boot it")
    while True:
        for event in reader.read_new():
            if event.matches(args.filter):
                print(event.line())
        if not args.follow:
            return 0
        sys.stdout.flush()
        time.sleep(0.25)


def cmd_disk(args) -> int:
    from umlgui.host import cow, images

    action = args.disk_command
    if action == "create":
        images.create_image(args.path, args.size, fs=None if args.fs == "none" else args.fs, label=args.label)
        print(f"created {args.path}")
    elif action == "cow":
        cow.create_cow(args.cow, args.backing)
        print(f"created {args.cow} over {args.backing}")
    elif action == "inspect":
        info = images.inspect(args.path)
        print(f"file:        {info.path}\nsize:        {human_size(info.guest_size)} ({info.guest_size} bytes)")
        print(f"allocated:   {human_size(info.allocated_bytes)}\nfilesystem:  {info.filesystem or 'none found'}")
        if info.cow:
            print(f"COW:         version {info.cow.version}, {human_size(info.cow_changed_bytes or 0)} changed")
            for backing in info.backing_chain:
                print(f"backing:     {backing}")
            print(f"backing ok:  {'yes' if info.backing_ok else 'NO: ' + str(info.backing_problem)}")
    elif action == "merge":
        if not args.output and not args.in_place:
            raise UmlguiError("merge needs an output image, or --in-place",
                              "umlgui disk merge COW NEW.img  (or --in-place: changes the shared base!)")
        progress = console_progress()
        cow.merge(args.cow, args.output, progress=progress.bytes_callback("merging"),
                  cancel=lambda: progress.cancelled)
        print(f"merged {args.cow} into {args.output or 'its backing file'}")
    else:
        raise UmlguiError("no disk action given", "umlgui disk create|cow|inspect|merge ...")
    return 0


def cmd_terminal(args) -> int:
    from umlgui.terminal.app import main as terminal_main

    words = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    return terminal_main(words or [os.environ.get("SHELL", "/bin/sh")])


def cmd_console(args) -> int:
    """Raw attach: our terminal becomes the guest's console until Ctrl-]."""
    interactive = sys.stdin.isatty()
    cols, rows = shutil.get_terminal_size()
    sock = client.attach(args.name, args.console, replay=not args.no_replay, cols=cols, rows=rows)
    if interactive:
        print(f"[attached to {args.name} {args.console}; Ctrl-] detaches]\r", file=sys.stderr)
    saved = termios.tcgetattr(sys.stdin) if interactive else None
    try:
        if interactive:
            tty.setraw(sys.stdin.fileno())
        _pump(sock, interactive)
    finally:
        if saved:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)
        sock.close()
    if interactive:
        print(f"\n[detached from {args.name}]", file=sys.stderr)
    return 0


def _pump(sock, interactive: bool) -> None:
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    watched = [sock, stdin]
    while True:
        readable, _, _ = select.select(watched, [], [])
        if sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            os.write(stdout, data)
        if stdin in readable:
            data = os.read(stdin, 4096)
            if not data:
                watched.remove(stdin)   # piped input ended: keep showing output
                continue
            if interactive and DETACH_KEY in data:
                data = data.split(DETACH_KEY, 1)[0]
                if data:
                    sock.sendall(data)
                return
            sock.sendall(data)


# --- lab commands (see build_parser) -------------------------------------------------------

def cmd_lab(args) -> int:
    from umlgui.model import lab as labs
    from umlgui.net import lab_runner, netkit

    action = args.lab_command
    if action in (None, "list"):
        names = labs.list_names()
        if not names:
            print("no labs yet: umlgui lab import DIR, or draw one in the window")
        for name in names:
            lab = labs.load(name)
            states = lab_runner.node_states(lab)
            running = sum(1 for node in lab.machines() if states[node.name] in st.LIVE_STATES)
            print(f"{name:<20} {len(lab.machines())} machines, {len(lab.networks())} networks, "
                  f"{running} running  {lab.description}")
    elif action == "show":
        lab = labs.load(args.name)
        states = lab_runner.node_states(lab)
        print(f"{lab.name}: {lab.description}")
        for node in lab.nodes.values():
            extra = format_size(node.memory) if node.is_machine else f"{node.ports} ports"
            print(f"  {node.name:<12} {node.kind:<9} {states[node.name]:<9} {extra}")
        for link in lab.links:
            print(f"  link {link.label()}")
        print("  start order: " + " | ".join(", ".join(wave) for wave in lab.start_waves()))
    elif action == "import":
        lab, warnings = netkit.import_lab(args.directory, args.name, args.template)
        for warning in warnings:
            print(f"umlgui: warning: {warning}", file=sys.stderr)
        print(f"imported lab {lab.name}: {len(lab.machines())} machines, {len(lab.networks())} "
              f"switches, in {lab.directory}")
    elif action == "export":
        for warning in netkit.export_lab(labs.load(args.name), args.directory):
            print(f"umlgui: warning: {warning}", file=sys.stderr)
        print(f"exported lab {args.name} to {args.directory}")
    elif action == "up":
        report = lab_runner.up(labs.load(args.name), console_progress(), args.wave, args.timeout)
        print(f"lab {args.name} is up: booted {', '.join(report.booted) or 'nothing'}"
              + (f"; already running: {', '.join(report.already_running)}" if report.already_running else ""))
    elif action == "down":
        halted = lab_runner.down(labs.load(args.name), console_progress())
        print(f"lab {args.name} is down (halted {', '.join(halted) or 'nothing'})")
    return 0

# --- end of lab commands ---


COMMANDS = {
    "gui": cmd_gui, "list": cmd_list, "create": cmd_create, "import": cmd_import, "show": cmd_show,
    "boot": cmd_boot, "halt": cmd_halt, "reboot": cmd_reboot, "kill": cmd_kill,
    "console": cmd_console, "mconsole": cmd_mconsole, "log": cmd_log, "rm": cmd_rm,
    "template": cmd_template, "terminal": cmd_terminal, "disk": cmd_disk, "monitor": cmd_monitor,
    "lab": cmd_lab,
}


if __name__ == "__main__":
    sys.exit(main())
