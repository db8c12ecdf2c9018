"""`python -m umlgui.kernel.tt WORDS...`: boot a tt machine (see kernel.py)."""

import sys

from umlgui.kernel.tt.kernel import main

sys.exit(main(sys.argv[1:]))
