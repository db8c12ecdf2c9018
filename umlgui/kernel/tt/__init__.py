"""The `tt` engine: UML's tracing-thread design rebuilt in Python with ptrace and seccomp.

The kernel process (`python -m umlgui.kernel.tt`, kernel.py) is the guest's kernel: it
starts the guest's /sbin/init as pid 1 in fresh namespaces and serves the syscalls that make
a machine out of a directory tree. Layout, in the style of UML and gVisor:

  os_linux/    the host mechanisms: ptrace, seccomp-bpf, process_vm_readv/writev, spawning
  syscalls/    one module per syscall family; table.py names every handled syscall
  vfs/         the guest root: base + copy-on-write layer, path resolution, side table
  tracer.py    the waitpid loop           guest.py   state shared by the handlers
  kernel.py    the kernel process contract (instance dir, mconsole, halt/reboot/panic)
  monitor.py   the optional syscall monitor (ttmonitor=)

docs/tt-engine.md describes what is supported and what is not.
"""
