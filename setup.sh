#!/bin/sh
# Install everything umlgui needs on Debian/Ubuntu (system packages included), build the
# busybox template, create a ready-to-boot machine, and open the window.
#   ./setup.sh            install and start the GUI
#   ./setup.sh --no-gui   install only (what ./test.sh and CI use)
set -eu
cd "$(dirname "$0")"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

APT_PACKAGES="
  python3 python3-venv python3-pip
  user-mode-linux uml-utilities busybox-static e2fsprogs slirp iproute2 debootstrap openssl proot
  libegl1 libgl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libfontconfig1 libdbus-1-3 fonts-dejavu-core
  vde2 xvfb iperf3 procps psmisc tcpdump nftables
"

missing=""
for pkg in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "umlgui: installing system packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/umlgui template build busybox
.venv/bin/umlgui list --json | grep -q '"name"' || .venv/bin/umlgui create demo --template busybox

if [ "${1:-}" != "--no-gui" ]; then
    if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
        echo "umlgui: installed. No display here; on a desktop run: .venv/bin/umlgui"
        exit 0
    fi
    exec .venv/bin/umlgui
fi
