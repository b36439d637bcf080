#!/bin/bash
# accel.sh KDIR: print the qemu accelerator the VMs of this run use, kvm
# or tcg, on stdout; on stderr, one line saying why when it is not kvm
# although a KVM device is there. test-kernels.sh and test-service.sh run
# it once per run (boot.sh when run alone) and pass the answer to every
# boot as VM_ACCEL.
#
# KVM is chosen by what works, not by the device node: a writable
# /dev/kvm is not enough (seen: a 2-vCPU cloud VM without the vmx flag
# whose /dev/kvm opens, where KVM stops every guest at once with "KVM
# internal error ... emulation failure" and qemu then sits silent). So
# the kernel in KDIR (vmlinuz) is booted under KVM with no root and no
# initramfs: a kernel that works reaches "Kernel panic - not syncing"
# (no root file system) in a second or two, and panic=-1 with -no-reboot
# ends qemu. Anything else within PROBE_TIMEOUT seconds is a KVM that
# cannot run guests here, and the run falls back to software emulation.
#
#   VM_ACCEL=kvm|tcg   use that one, without a probe
#   KVM_DEVICE         the device to look for (/dev/kvm)
#   QEMU               the qemu binary (qemu-system-x86_64)
#   PROBE_TIMEOUT      seconds the probe guest has (20)
#
# Exit status 2 when VM_ACCEL holds anything else; otherwise 0.
set -uo pipefail
kdir=${1:?usage: accel.sh KDIR}
KVM_DEVICE=${KVM_DEVICE:-/dev/kvm}
QEMU=${QEMU:-qemu-system-x86_64}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-20}

case ${VM_ACCEL:-} in
kvm | tcg)
	echo "$VM_ACCEL"
	exit 0
	;;
'') ;;
*)
	echo "accel: VM_ACCEL=$VM_ACCEL; accepted: kvm, tcg, or unset to probe" >&2
	exit 2
	;;
esac
if [ ! -w "$KVM_DEVICE" ]; then
	# No KVM at all is the common case of a cloud VM: nothing to say.
	echo tcg
	exit 0
fi

tmp=$(mktemp -d)
qemu=''
trap '[ -z "$qemu" ] || kill "$qemu" 2>/dev/null; rm -rf "$tmp"' EXIT
"$QEMU" -accel kvm -cpu host -smp 1 -m 256 \
	-display none -monitor none -serial "file:$tmp/console" -no-reboot -nodefaults \
	-kernel "$kdir/vmlinuz" -append 'console=ttyS0 panic=-1 loglevel=4' \
	</dev/null >"$tmp/qemu.out" 2>&1 &
qemu=$!
# Done when the guest reaches its panic or qemu ends; a KVM that fails
# says so on stderr at once and then leaves qemu paused, so that ends the
# wait too.
SECONDS=0
while [ "$SECONDS" -lt "$PROBE_TIMEOUT" ]; do
	if grep -q 'Kernel panic' "$tmp/console" 2>/dev/null; then
		echo kvm
		exit 0
	fi
	kill -0 "$qemu" 2>/dev/null || break
	grep -q 'KVM internal error' "$tmp/qemu.out" && break
	sleep 0.1
done
secs=$SECONDS
grep -q 'Kernel panic' "$tmp/console" 2>/dev/null && { echo kvm; exit 0; }

# Why, in one line: what qemu said first, else how the guest ended.
said=$(grep -m1 -v '^[[:space:]]*$' "$tmp/qemu.out" | cut -c1-160)
if [ -n "$said" ]; then
	why="qemu: $said"
elif ! kill -0 "$qemu" 2>/dev/null; then
	rc=0
	wait "$qemu" || rc=$?
	why="qemu ended with status $rc before the guest's end"
elif [ ! -s "$tmp/console" ]; then
	why="no console output in $secs s"
else
	why="the probe guest did not reach its end in $secs s"
fi
echo "accel: $KVM_DEVICE is there but KVM cannot run a guest ($why): software emulation (tcg) instead; VM_ACCEL=kvm forces KVM" >&2
echo tcg
