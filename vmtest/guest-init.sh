#!/bin/sh
# /sbin/vmtest-init: PID 1 for a test boot (init=/sbin/vmtest-init), in
# place of systemd. It sets up what systemd would that the tests need
# (proc, sys, bpffs, tmpfs /tmp and /run, loopback), mounts the second
# disk (the payload mkpayload.sh builds) at /vmtest, runs /vmtest/run
# with its output on the console, prints "VMTEST-DONE rc=N" and powers
# off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
# Tells the host the kernel came up to here.
echo "VMTEST-INIT $(uname -r)"
# The boot's messages are in the log (loglevel=7, for a boot that hangs);
# from here on only warnings, which would otherwise interleave with the
# tests' output (each veth pair the tests make logs a few lines).
echo 4 >/proc/sys/kernel/printk
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
# ip netns keeps its namespaces under /run/netns.
mkdir -p /run/netns /vmtest
ip link set lo up
# The locked-memory limit a Debian login session has (systemd's default,
# 8 MiB), where `sudo make test` runs; the kernel's own for PID 1 before
# 5.16 is 64 KiB, which BPF maps are charged to before 5.11.
# shellcheck disable=SC3045 # dash, Debian's sh, has ulimit -l
ulimit -l 8192
hostname vmtest
# Modules by alias (veth, sch_ingress, cls_bpf...) are loaded by the
# kernel calling modprobe as needed: make sure it is ours.
echo /sbin/modprobe >/proc/sys/kernel/modprobe

rc=1
if mount /dev/vdb /vmtest && [ -x /vmtest/run ]; then
	/vmtest/run
	rc=$?
else
	echo "vmtest-init: no /vmtest/run on /dev/vdb"
fi
echo
echo "VMTEST-DONE rc=$rc"
umount /vmtest 2>/dev/null
# Read-only before the power goes, so the root's (snapshot) writes end cleanly.
mount -o remount,ro / 2>/dev/null
sync
echo o >/proc/sysrq-trigger
sleep 60
