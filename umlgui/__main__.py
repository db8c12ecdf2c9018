import sys

from umlgui.cli import main

sys.exit(main())
