#!/bin/sh
# PID 1 of the lab guest (busybox sh). Mounts what vmchan reads, loads the virtio-serial modules, optionally makes
# the /dev/virtio-ports/NAME links udev would make, then runs the command agent on the control port.
# If the agent dies, this script exits: the kernel panics, panic=-1 reboots at once and QEMU's -no-reboot turns that
# into QEMU exiting, so a broken guest ends the lab quickly instead of hanging it.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
# PTYs, for logins through a PTY (vmchan getty on a serial port).
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts

ctl= links=0 ports=0
for w in $(cat /proc/cmdline); do
  case $w in
    lab.ctl=*) ctl=${w#lab.ctl=} ;;
    lab.links=1) links=1 ;;
    lab.ports=*) ports=${w#lab.ports=} ;;
  esac
done

while read -r m; do
  insmod "/lib/modules/lab/$m.ko" || echo "lab-init: insmod $m failed"
done </lib/modules/lab/order

# sysfs publishes a port's name 10-20 ms after the port appears: wait (at most 20 s) until all
# lab.ports ports have one, so links and the first listing see every port.
named() { n=0; for f in /sys/class/virtio-ports/*/name; do [ -s "$f" ] && n=$((n + 1)); done; echo $n; }
i=0
while [ "$(named)" -lt "$ports" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(named)" -lt "$ports" ] && echo "lab-init: only $(named) of $ports ports have a name"

if [ "$links" = 1 ]; then
  mkdir -p /dev/virtio-ports
  for p in /sys/class/virtio-ports/*; do
    n=$(cat "$p/name" 2>/dev/null)
    # udev's link is relative, like this one.
    [ -n "$n" ] && ln -sf "../${p##*/}" "/dev/virtio-ports/$n"
  done
fi

echo "lab-init: ready, starting the agent on \"$ctl\""
/lab/agent "$ctl" &
agent=$!
# 'wait' also reaps orphans re-parented to PID 1, so killed jobs leave no zombies behind.
while kill -0 $agent 2>/dev/null; do wait; done
echo "lab-init: the agent exited"
exit 1
