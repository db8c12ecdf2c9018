# Under the tt engine busybox init is PID 1, not systemd: poweroff and friends go to it.
if [ ! -d /run/systemd/system ]; then
    alias poweroff='busybox poweroff' reboot='busybox reboot' halt='busybox halt'
fi
