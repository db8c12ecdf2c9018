"""Boot-to-shell time through umlgui against bare linux.uml with the same command line,
alternating runs; and the host RSS of an idle busybox machine (mem=256M) and of its worker.

    python3 benchmarks/boot.py [--runs 5]

Last line: one JSON object with umlgui_boot_s, bare_boot_s, added_s, vm_rss_mb, vm_pss_mb,
worker_rss_mb. Runs in a throw-away UMLGUI_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = re.compile(rb"# ?(\x1b\[6n)?$")


def umlgui_boot(name: str) -> float:
    from umlgui.worker import client

    start = time.perf_counter()
    client.start(name)
    client.wait_until_ready(name, timeout=60)
    elapsed = time.perf_counter() - start
    return elapsed


def stop(name: str) -> None:
    from umlgui.worker import client

    client.kill(name)
    deadline = time.time() + 10
    while client.is_running(name) and time.time() < deadline:
        time.sleep(0.05)


def bare_boot(argv: list[str], workdir: Path) -> float:
    """linux.uml with the worker's own command line, con0 on a pty we read."""
    master, slave = os.openpty()
    uml_dir = workdir / "bare"
    uml_dir.mkdir(exist_ok=True)
    argv = [re.sub(r"^uml_dir=.*", f"uml_dir={uml_dir}/", a) for a in argv]
    argv = [re.sub(r"^(con\d+)=fd:\d+,fd:\d+", rf"\1=fd:{slave},fd:{slave}", a) for a in argv]
    argv = [a for a in argv if not a.startswith("mconsole=")]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, pass_fds=(slave,))
    output = b""
    try:
        while time.perf_counter() - start < 60:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                output += os.read(master, 65536)
                if PROMPT.search(output.rstrip(b"\r\n")[-200:]):
                    return time.perf_counter() - start
        raise RuntimeError("bare boot showed no prompt: " + output[-300:].decode(errors="replace"))
    finally:
        _kill_tree(proc.pid, f"uml_dir={uml_dir}/")
        proc.wait()
        os.close(master)
        os.close(slave)
        shutil.rmtree(uml_dir / argv_umid(argv), ignore_errors=True)


def argv_umid(argv: list[str]) -> str:
    return next(a[5:] for a in argv if a.startswith("umid="))


def _kill_tree(pid: int, marker: str) -> None:
    from umlgui.host.process import kill_tree

    kill_tree(pid, marker)


def rss_mb(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) in MB summed over pids: RSS over-counts UML's shared guest RAM, PSS does not."""
    rss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        rss += int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1))
        pss += int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1))
    return rss / 1024, pss / 1024


def measure_memory(name: str) -> dict:
    from umlgui.host.process import descendants
    from umlgui.model import library
    from umlgui.worker import client

    machine = library.load(name)
    machine.memory = 256 << 20
    library.save(machine)
    client.start(name)
    state = client.wait_until_ready(name, timeout=60)
    time.sleep(3)    # let the guest go idle
    kernel_tree = [state.kernel_pid] + descendants(state.kernel_pid)
    vm_rss, vm_pss = rss_mb(kernel_tree)
    worker_rss, _ = rss_mb([state.worker_pid])
    stop(name)
    return {"vm_rss_mb": round(vm_rss, 1), "vm_pss_mb": round(vm_pss, 1),
            "worker_rss_mb": round(worker_rss, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="umlgui-bench-"))
    os.environ["UMLGUI_HOME"] = str(home)
    os.environ["UMLGUI_RUNTIME"] = tempfile.mkdtemp(prefix="ubr", dir="/tmp")
    from umlgui import paths
    from umlgui.model import library

    try:
        machine = library.new_machine("bench")
        machine.autologin = True      # boot-to-shell: a root shell prompt on con0
        library.save(machine)
        umlgui_times, bare_times = [], []
        for run in range(args.runs):
            umlgui_times.append(umlgui_boot("bench"))
            argv = (paths.run_dir("bench") / "cmdline").read_text().split()
            stop("bench")
            bare_times.append(bare_boot(argv, home))
            print(f"run {run + 1}: umlgui {umlgui_times[-1]:.3f} s   bare linux.uml {bare_times[-1]:.3f} s")
        result = {"umlgui_boot_s": round(statistics.median(umlgui_times), 3),
                  "bare_boot_s": round(statistics.median(bare_times), 3)}
        result["added_s"] = round(result["umlgui_boot_s"] - result["bare_boot_s"], 3)
        result.update(measure_memory("bench"))
        print(f"median boot-to-shell: umlgui {result['umlgui_boot_s']} s, bare {result['bare_boot_s']} s, "
              f"added {result['added_s']} s (goal <= 0.3 s)")
        print(f"idle busybox machine, mem=256M: RSS {result['vm_rss_mb']} MB (PSS {result['vm_pss_mb']} MB); "
              f"worker RSS {result['worker_rss_mb']} MB (goal < 20 MB)")
        print(json.dumps(result))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
