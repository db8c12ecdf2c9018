"""The tt kernel's command line, in UML's style (docs/architecture.md, "The kernel process
contract").

    umid=NAME uml_dir=DIR/ mem=SIZE hostname=NAME ttroot=BASE ttcow=COW [ttmonitor=LOG]
    [hostfs=DIR] [ttcpu=N|all] [init=/sbin/init] con=null ssl=null con0=fd:3,fd:3 [ssl0=fd:4,fd:4]
    mconsole=notify:PATH [other words]

Like Linux, words the kernel does not know go to init: `name=value` into its environment,
plain words into its argv.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from umlgui.errors import ConfigError

KNOWN_FLAGS = {"rw", "ro", "quiet", "debug", "noreboot", "single"}
_CHANNEL = re.compile(r"^(con|ssl)(\d*)$")
_SIZE = re.compile(r"^(\d+)([KkMmGg]?)$")


@dataclass
class BootConfig:
    umid: str = ""
    uml_dir: str = ""
    memory_bytes: int = 256 << 20
    hostname: str = "(none)"
    ttroot: str = ""
    ttcow: str = ""
    monitor_path: str | None = None
    hostfs: str | None = None
    init: str | None = None
    notify_path: str | None = None
    noreboot: bool = False
    cpu: str = ""                                                  # ttcpu=N|all
    channels: dict[str, str] = field(default_factory=dict)       # "con0" -> "fd:3,fd:3"
    default_channels: dict[str, str] = field(default_factory=dict)  # "con" -> "null"
    init_env: dict[str, str] = field(default_factory=dict)
    init_args: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)                 # all, for /proc/cmdline

    @property
    def instance_dir(self) -> str:
        return os.path.join(self.uml_dir, self.umid)


def parse_size(text: str) -> int:
    match = _SIZE.match(text.strip())
    if not match:
        raise ConfigError(f"mem={text} is not a size", "write it like mem=256M or mem=1G")
    number, unit = match.groups()
    return int(number) << {"": 0, "k": 10, "m": 20, "g": 30}[unit.lower()]


def parse(words: list[str]) -> BootConfig:
    """Parse the command line; raises ConfigError naming a bad word."""
    config = BootConfig(words=list(words))
    for word in words:
        key, equals, value = word.partition("=")
        channel = _CHANNEL.match(key)
        if channel and equals:
            if channel.group(2):
                config.channels[key] = value
            else:
                config.default_channels[key] = value
        elif key == "umid":
            config.umid = value
        elif key == "uml_dir":
            config.uml_dir = value
        elif key == "mem":
            config.memory_bytes = parse_size(value)
        elif key == "hostname":
            config.hostname = value
        elif key == "ttroot":
            config.ttroot = value
        elif key == "ttcow":
            config.ttcow = value
        elif key == "ttmonitor":
            config.monitor_path = value
        elif key == "ttcpu":
            config.cpu = value
        elif key == "hostfs":
            config.hostfs = value
        elif key == "init":
            config.init = value
        elif key == "mconsole":
            if value.startswith("notify:"):
                config.notify_path = value[len("notify:"):]
        elif word == "noreboot":
            config.noreboot = True
        elif word in KNOWN_FLAGS or key in ("root", "ubd0", "ubda", "console", "panic",
                                            "loglevel") or "." in key:
            continue
        elif equals:
            config.init_env[key] = value
        else:
            config.init_args.append(word)
    _check(config)
    return config


def _check(config: BootConfig) -> None:
    if not config.ttroot:
        raise ConfigError("the tt kernel needs ttroot=BASE_DIR (the guest's root tree)",
                          "pass ttroot= with a template's root/ directory")
    if not os.path.isdir(config.ttroot):
        raise ConfigError(f"ttroot={config.ttroot} is not a directory",
                          "build the template first, e.g. umlgui template build busybox")
    if not config.ttcow:
        raise ConfigError("the tt kernel needs ttcow=DIR (the machine's copy-on-write layer)",
                          "pass ttcow= with a directory the machine may write")
    if not config.umid:
        config.umid = "tt" + os.urandom(3).hex()
    if not config.uml_dir:
        config.uml_dir = os.path.join(os.path.expanduser("~"), ".uml")
