"""umlgui: a desktop manager for User-Mode Linux virtual machines.

Layers, each importing only the ones below it:
  model      machines, disks, consoles, networks, labs (pure data, TOML)
  host       host interfaces: mconsole, COW, images, ptys, switch, tap (the only place for sockets/ioctls)
  kernel     guest kernel engines: `linux` (linux.uml) and `tt` (ptrace)
  worker     one detached process per running machine; clients talk to it over a unix socket
  terminal, widgets, gui   the Qt application (the only layer that imports Qt)
"""

__version__ = "0.1.0"
