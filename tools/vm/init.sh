#!/bin/sh
# PID 1 of the vivid VM (see vivid_vm.py): mount what the host shares, load vivid, run the
# host's command in the project, hand its exit code back over 9p and power off.
export PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb

say() { echo "vivid-vm: $*"; }
# Without /result the host cannot be told anything: it reports the missing exit code.
stop() { [ -d /result ] && { echo "$1" >/result/exit-code; sync; }; busybox poweroff -f; }
fail() { say "$*"; stop 125; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
hostname vivid-vm

# No udev here: the virtio transport first, then what sits on it.
modprobe -a virtio_pci virtio_net virtio_rng 9pnet_virtio 9p overlay || fail "modprobe failed"
p9="trans=virtio,version=9p2000.L,msize=262144"
mount -t 9p -o "$p9" result /result || fail "cannot mount the result share"
mount -t 9p -o "$p9,ro" project /mnt/project || fail "cannot mount the project share"
# The project is shared read-only; an overlay takes the guest's writes (the editable
# install's egg-info, bytecode, caches) in memory, so the host's tree never changes.
mkdir -p /run/overlay/upper /run/overlay/work
mount -t overlay overlay \
    -o lowerdir=/mnt/project,upperdir=/run/overlay/upper,workdir=/run/overlay/work /project \
    || fail "cannot mount the project overlay"

busybox ip link set lo up
if [ -e /sys/class/net/eth0 ]; then  # slirp's fixed guest address, for the port forward
    busybox ip link set eth0 up
    busybox ip addr add 10.0.2.15/24 dev eth0
fi

modprobe vivid || fail "cannot load vivid"  # options: /etc/modprobe.d/vivid.conf
[ -e /dev/video0 ] || fail "vivid loaded but /dev/video0 is missing"

# The project's code comes from the share, installed the way the host installs it; the
# dependencies are in the image already, so this needs no network.
pip install -q --no-index --no-deps --no-build-isolation -e /project >/tmp/pip.log 2>&1 \
    || { cat /tmp/pip.log; fail "pip install -e /project failed"; }

say "ready after $(cut -d' ' -f1 /proc/uptime) s; running: $(tail -n1 /result/command.sh)"
cd /project && sh /result/command.sh
rc=$?
say "exit code $rc after $(cut -d' ' -f1 /proc/uptime) s"
stop "$rc"
