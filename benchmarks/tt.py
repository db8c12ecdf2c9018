"""Benchmark the tt engine against native (chroot), Debian's PRoot and the linux engine.

    python3 benchmarks/tt.py [--repeat N] [--no-linux]

Workloads, all run inside the same guest root (the busybox tree plus a copy of the host's
/usr/include, 7 000+ files):

  walk   busybox find /usr/include -name '*.h'            (metadata-heavy)
  exec   busybox sh loop of 300 fork+exec of /bin/true     (exec-heavy)
  cpu    busybox awk arithmetic loop                        (CPU-bound, no syscalls)
  trap   stat("/etc/hostname") in a loop: microseconds per trapped syscall (slope between
         10k and 60k calls, so start-up cancels out); getuid likewise (an emulated call)

Each workload is timed inside the guest by a small static program (tt_guest_bench.c), so
boot time is excluded. Medians of --repeat runs. The last line of output is one JSON object.
PRoot "with seccomp" is not packaged by Debian (its build disables seccomp), so it is not
measured here; the engine's own figures are compared with it in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CACHE = Path(os.environ.get("TT_BENCH_DIR", "/var/tmp/umlgui-tt-bench"))
WORKLOADS = """
for r in $(seq {repeat}); do
  /bench time walk find /usr/include -name '*.h' >/tmp/walk.out
  /bench time exec sh -c 'i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done'
  /bench time cpu awk 'BEGIN{{for(i=0;i<1500000;i++)s+=i*i; print s}}' >/tmp/cpu.out
  /bench loop trap stat
  /bench loop trapid getuid
done
"""


def build_root() -> Path:
    """The benchmark's guest root (built once and cached in CACHE)."""
    root = CACHE / "root"
    stamp = CACHE / "ready"
    if stamp.exists():
        return root
    from umlgui.templates.busybox import build_tree

    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    build_tree(root)
    include = root / "usr/include"
    if subprocess.run(["cp", "-al", "/usr/include", str(include)],
                      capture_output=True).returncode != 0:
        shutil.copytree("/usr/include", include, symlinks=True)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(root / "bench"),
                    str(REPO / "benchmarks/tt_guest_bench.c")], check=True)
    stamp.write_text("")
    return root


def write_script(root: Path, repeat: int, poweroff: bool) -> str:
    name = "bench-run-halt" if poweroff else "bench-run"
    script = root / name
    script.write_text("#!/bin/sh\nexport PATH=/bin:/sbin:/usr/bin:/usr/sbin\n"
                      + WORKLOADS.format(repeat=repeat)
                      + ("/sbin/poweroff -f\n" if poweroff else ""))
    script.chmod(0o755)
    return "/" + name


def parse_results(text: str) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    for line in text.replace("\r", "").splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "RESULT":
            results.setdefault(words[1], []).append(float(words[2]))
    return results


def run_native(root: Path, script: str) -> dict[str, list[float]]:
    result = subprocess.run(["chroot", str(root), script], capture_output=True, text=True,
                            check=True)
    return parse_results(result.stdout + result.stderr)


def run_proot(root: Path, script: str) -> dict[str, list[float]]:
    if shutil.which("proot") is None:
        return {}
    result = subprocess.run(["proot", "-w", "/", "-r", str(root), script],
                            capture_output=True, text=True)
    return parse_results(result.stdout + result.stderr)


def _read_console(master: int, process: subprocess.Popen, timeout: float) -> str:
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    return output.decode(errors="replace")


def run_tt(root: Path, script: str, timeout: float = 600) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="ttb", dir="/tmp"))
    master, slave = pty.openpty()
    try:
        argv = [sys.executable, "-m", "umlgui.kernel.tt", "umid=bench", f"uml_dir={work}/",
                "mem=1G", "hostname=bench", f"ttroot={root}", f"ttcow={work}/cow",
                "con=none", "ssl=none", f"con0=fd:{slave},fd:{slave}", f"init={script}"]
        process = subprocess.Popen(argv, pass_fds=(slave,), stdout=subprocess.DEVNULL,
                                   env=dict(os.environ, PYTHONPATH=str(REPO)))
        os.close(slave)
        text = _read_console(master, process, timeout)
        process.wait(30)
        return parse_results(text)
    finally:
        os.close(master)
        shutil.rmtree(work, ignore_errors=True)


def run_linux(root: Path, script: str, timeout: float = 600) -> dict[str, list[float]]:
    """The linux engine (linux.uml) booted on an ext4 image of the same tree."""
    if shutil.which("linux.uml") is None or shutil.which("mkfs.ext4") is None:
        return {}
    image = CACHE / "root.img"
    image.unlink(missing_ok=True)           # rebuilt each run: it must hold this run's script
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-d", str(root),
                    str(image), "400M"], check=True)
    work = Path(tempfile.mkdtemp(prefix="ttl", dir="/tmp"))
    try:
        cow = work / "root.cow"
        argv = ["linux.uml", "umid=benchl", f"uml_dir={work}/", "mem=512M",
                f"ubd0={cow},{image}", "root=/dev/ubda", "rw", f"init={script}", "con=null",
                "ssl=null", "con0=fd:0,fd:1", "quiet"]
        process = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                 timeout=timeout, env=dict(os.environ, TMPDIR="/tmp"))
        return parse_results(process.stdout.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        return {}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def median(values: list[float] | None) -> float | None:
    return round(statistics.median(values), 4) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-linux", action="store_true")
    args = parser.parse_args()
    root = build_root()
    plain = write_script(root, args.repeat, poweroff=False)
    halting = write_script(root, args.repeat, poweroff=True)
    runs = {"native": run_native(root, plain), "proot": run_proot(root, plain),
            "tt": run_tt(root, halting)}
    if not args.no_linux:
        runs["linux"] = run_linux(root, halting)
    print(f"{'':8}{'walk s':>10}{'exec s':>10}{'cpu s':>10}{'stat µs':>10}{'getuid µs':>11}")
    for name, results in runs.items():
        cells = [median(results.get(key)) for key in ("walk", "exec", "cpu", "trap", "trapid")]
        print(f"{name:8}" + "".join(f"{'-' if c is None else c:>10}" for c in cells))
    summary = {}
    for name, results in runs.items():
        for key, label in (("walk", "walk_s"), ("exec", "exec_s"), ("cpu", "cpu_s"),
                           ("trap", "trap_us"), ("trapid", "trap_getuid_us")):
            summary[f"{label}_{name}"] = median(results.get(key))
    native, tt = summary.get("walk_s_native"), summary.get("walk_s_tt")
    if native and tt:
        print(f"tt/native: walk {tt / native:.1f}x, "
              f"exec {summary['exec_s_tt'] / summary['exec_s_native']:.2f}x, "
              f"cpu {summary['cpu_s_tt'] / summary['cpu_s_native']:.3f}x")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
