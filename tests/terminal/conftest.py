"""Terminal tests run headless and never touch the user's real settings."""

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# QSettings("umlgui", "terminal") writes under XDG_CONFIG_HOME: keep it out of $HOME.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="umlgui-term-settings-")

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
