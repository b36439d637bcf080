#!/bin/sh
# service-guest.sh: /mnt/run in a VM that test-service.sh boots with
# systemd as PID 1. systemd's run generator starts it from the kernel
# command line (systemd.run=) once the payload disk is mounted on /mnt,
# as kernel-command-line.service, and powers off when it ends. It waits
# for the rest of the boot to multi-user.target, as on a machine the
# package is installed on, runs the Go test of the package's life
# (e2e/packaging/service_guest_test.go), and prints "VMTEST service
# rc=N" for test-service.sh.
#
# Straight to the serial port: the unit's journal+console would prefix
# every line, and the console is what test-service.sh reads.
exec >/dev/ttyS0 2>&1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
# CI: a kernel test fails rather than skips. COLLECTOR_SERVICE_GUEST: the
# test may change this machine.
export CI=true COLLECTOR_SERVICE_GUEST=1
COLLECTOR_DEB=$(ls /mnt/collector_*.deb)
export COLLECTOR_DEB

echo "VMTEST-START service"
start=$(date +%s)
# multi-user.target is ordered after the units it wants, this one among
# them, so it cannot be reached while the test runs. Wait instead until
# this start job is the only one running: the rest of the boot is done,
# but for the jobs that wait on this one.
i=0
while [ "$(systemctl list-jobs --no-legend | awk '$4 == "running"' | wc -l)" -gt 1 ]; do
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "the boot did not settle in 300 s; going on"
		break
	fi
	sleep 1
done
echo "boot settled after $(($(date +%s) - start)) s, $(systemctl --version | head -n1); jobs left:"
systemctl list-jobs --no-legend --no-pager

cd /tmp || exit 1
/mnt/service.test -test.v -test.count=1 -test.timeout=5m -test.run '^TestServiceGuest$'
rc=$?
echo
echo "VMTEST service rc=$rc secs=$(($(date +%s) - start))"
