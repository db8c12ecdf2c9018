#!/bin/sh
# Run the whole test suite, the real UML kernel included (installs what it needs first).
#   ./test.sh [pytest arguments]
set -eu
cd "$(dirname "$0")"
./setup.sh --no-gui
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest -q -rfEs "$@"
