#!/bin/bash
# boot.sh: boot one kernel on one root image under qemu, console to a
# log file, with a hard time limit. Used by test-kernels.sh (init= a test
# script) and meant for a systemd boot too (no init=: /sbin/init).
#
#   boot.sh -k KDIR -r ROOT.img -l LOG [-d DISK.img]... [-a 'ARGS'] [-t SECS] [-q SECS] [-w] [-v]
#
#   -k KDIR  a kernel directory from fetch-kernel.sh + mkinitrd.sh
#            (vmlinuz, initrd.img)
#   -r IMG   root file system image, /dev/vda (root=/dev/vda rw)
#   -d IMG   another disk, /dev/vdb, /dev/vdc, ... in order; repeatable
#   -a ARGS  more kernel command line, e.g. 'init=/sbin/vmtest-init';
#            it comes last, so loglevel=7 here overrides the 4 of boot.sh
#   -l LOG   the serial console (kernel, init and test output) goes here
#   -t SECS  qemu is killed after this long (default 600): exit 124
#   -q SECS  qemu is killed when the console is still empty after this
#            long (default 30; a kernel prints within seconds, even
#            emulated): exit 125, with one line on stderr
#   -w       write to the images; by default writes go to a throwaway
#            snapshot, so an image is never changed and can be shared
#   -v       also show the console on stdout as it is written
#   -m MiB   memory (2048), -c CPUs (2)
#
# The accelerator is VM_ACCEL (kvm or tcg) when set, as test-kernels.sh
# and test-service.sh set it once per run; else accel.sh chooses.
#
# Exit status: qemu's, which is 0 when the guest powered off (or the
# kernel panicked: panic=-1 with -no-reboot ends qemu too; tell them
# apart by what the guest printed), 124 on timeout, 125 when the guest
# printed nothing.
set -euo pipefail
kdir='' root='' log='' append='' timeout=600 silence=30 snapshot=on verbose='' mem=2048 cpus=2
disks=()
while getopts k:r:d:a:l:t:q:wvm:c: opt; do
	case $opt in
	k) kdir=$OPTARG ;;
	r) root=$OPTARG ;;
	d) disks+=("$OPTARG") ;;
	a) append=$OPTARG ;;
	l) log=$OPTARG ;;
	t) timeout=$OPTARG ;;
	q) silence=$OPTARG ;;
	w) snapshot=off ;;
	v) verbose=1 ;;
	m) mem=$OPTARG ;;
	c) cpus=$OPTARG ;;
	*) sed -n '2,/^set/p' "$0" | sed '$d' >&2; exit 2 ;;
	esac
done
if [ -z "$kdir" ] || [ -z "$root" ] || [ -z "$log" ]; then
	echo "boot.sh: -k, -r and -l are required" >&2
	exit 2
fi

# TCG with one host thread for all virtual CPUs: with a thread each,
# kernels died at boot now and then (an int3 of the kernel's live code
# patching seen as an Oops, one CPU running code another had just
# rewritten), more so when the host was busy; one thread was no slower
# for these tests. No five-level paging (la57), which no target machine
# has.
here=$(cd "$(dirname "$0")" && pwd)
VM_ACCEL=$("$here/accel.sh" "$kdir")
if [ "$VM_ACCEL" = kvm ]; then
	accel=(-accel kvm -cpu host)
else
	accel=(-accel 'tcg,thread=single' -cpu 'max,la57=off')
fi
drives=()
for d in "$root" "${disks[@]}"; do
	drives+=(-drive "file=$d,format=raw,if=virtio,snapshot=$snapshot")
done
mkdir -p "$(dirname "$log")"
: >"$log"

# timeout(1) runs qemu in a process group of its own, out of reach of the
# terminal's Ctrl-C: pass on INT and TERM, and never leave it behind. Set
# before qemu starts, so that no signal can come between; $! covers the
# moment between its start and qemu=.
qemu=''
# shellcheck disable=SC2317 # called by the traps
stop() {
	local pid=${qemu:-${!:-}}
	[ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
}
trap 'stop; wait; exit 130' INT TERM
trap stop EXIT

# panic=-1 and -no-reboot: a kernel panic ends qemu at once instead of
# waiting for the time limit. No network device: the tests build their
# own namespaces and veth pairs inside.
timeout -k 10 "$timeout" "${QEMU:-qemu-system-x86_64}" "${accel[@]}" -smp "$cpus" -m "$mem" \
	-display none -monitor none -serial "file:$log" -no-reboot -nodefaults \
	-kernel "$kdir/vmlinuz" -initrd "$kdir/initrd.img" \
	-append "console=ttyS0 root=/dev/vda rw panic=-1 loglevel=4 $append" \
	"${drives[@]}" </dev/null &
qemu=$!
if [ -n "$verbose" ]; then
	tail -n +1 -f --pid=$qemu "$log" &
fi
# A guest that prints nothing at all is not booting slowly: its CPU does
# not run (a broken accelerator), and waiting for the time limit would
# only hide that.
waited=0
while [ ! -s "$log" ] && [ $waited -lt "$silence" ] && kill -0 $qemu 2>/dev/null; do
	sleep 1
	waited=$((waited + 1))
done
if [ ! -s "$log" ] && kill -0 $qemu 2>/dev/null; then
	stop
	wait $qemu || true
	echo "boot.sh: no console output in $silence s ($VM_ACCEL): accelerator?" >&2
	exit 125
fi
rc=0
wait $qemu || rc=$?
exit $rc
