import sys

from umlgui.worker.daemon import main

sys.exit(main(sys.argv[1:]))
