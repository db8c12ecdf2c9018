"""python -m umlgui.terminal [--] CMD...: try the terminal widget on a local pty."""

import sys

from .app import main

sys.exit(main(sys.argv[1:]))
