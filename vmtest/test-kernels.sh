#!/bin/bash
# test-kernels.sh [NAME...]: the kernel tests in a VM for each kernel of
# kernels.conf (all of them when none is named), one after the other,
# then one PASS or FAIL line per kernel. Exit status 1 when any kernel
# failed, could not be fetched or did not boot. Needs root (debootstrap,
# chroot, and the root tree's files are root's) and the payload that
# mkpayload.sh built in $VM/payload (`make test-kernels` does both).
#
# Steps, each skipped when its result is cached under $VM:
#   vm tools (apt-get) > kernels (fetch-kernel.sh) > root tree (mkroot.sh)
#   > modules, initramfs, root.img (mkimage.sh) > payload.img > boot.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export VM=${VM:-$(dirname "$here")/build/vm}
# The time limit of one VM, boot to power off, and the time its kernel
# has to reach vmtest-init (some 5 s when all goes well). A VM takes 150-
# 330 s under software emulation; on a machine busy with other work, 6.12
# once took over 420 s without anything wrong.
TIMEOUT=${TIMEOUT:-900}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}

if [ "$(id -u)" != 0 ]; then
	echo "test-kernels: needs root (sudo make test-kernels)" >&2
	exit 2
fi
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
	mapfile -t names < <(awk '!/^#/ && NF { print $1 }' "$here/kernels.conf")
fi
mapfile -t pkgs < <(awk '!/^#/ && $1 != "flags:" && NF { print $1 }' "$here/tests.conf")
mkdir -p "$VM/logs"
now() { date +%s; }

"$here/vm-tools.sh" test-kernels || exit 1

# shellcheck source=vmtest/prepare-kernels.sh
. "$here/prepare-kernels.sh"
prepare_kernels "${names[@]}" || exit $?
payload=$VM/payload
if [ ! -x "$payload/run" ]; then
	echo "test-kernels: no $payload/run: run vmtest/mkpayload.sh $payload first" >&2
	exit 1
fi
rm -f "$VM/payload.img"
mke2fs -q -F -t ext4 -L payload -d "$payload" "$VM/payload.img" \
	"$(($(du -sm "$payload" | cut -f1) + 64))M" >/dev/null || exit 1

# One section of a console log: what package $2 printed.
section() {
	tr -d '\r' <"$1" | sed -n "/^VMTEST-START $2\$/,/^VMTEST $2 rc=/p"
}

# boot.sh runs in the background so that a TERM is acted on at once (a
# script waits for a foreground command before it runs a trap); such a
# job ignores the terminal's Ctrl-C, so INT and TERM are passed on, and
# boot.sh stops its qemu.
boot=''
trap '[ -z "$boot" ] || kill -TERM "$boot" 2>/dev/null; wait; exit 130' INT TERM
for n in "${fetched[@]}"; do
	release=$(kernel_label "$n")
	log=$VM/logs/$n.log
	echo "test-kernels: booting $release (console: $log)"
	start=$(now)
	retried=''
	for try in 1 2; do
		# No earlier run's log may be read as this one's.
		rm -f "$log"
		"$here/boot.sh" -k "$VM/kernels/$n" -r "$VM/root.img" -d "$VM/payload.img" \
			-a 'loglevel=7 init=/sbin/vmtest-init' -t "$TIMEOUT" -l "$log" &
		boot=$!
		# A kernel that has not reached vmtest-init in BOOT_TIMEOUT s
		# is stopped rather than left to use up TIMEOUT.
		waited=0
		while kill -0 "$boot" 2>/dev/null && [ $waited -lt "$BOOT_TIMEOUT" ] &&
			! grep -q VMTEST "$log" 2>/dev/null; do
			sleep 1
			waited=$((waited + 1))
		done
		hung=''
		if ! grep -q VMTEST "$log" 2>/dev/null && kill -TERM "$boot" 2>/dev/null; then
			hung=" in $BOOT_TIMEOUT s"
		fi
		wait "$boot"
		rc=$?
		boot=''
		clean=$(tr -d '\r' <"$log")
		# A kernel that died or hung before reaching init (seen under
		# emulation: 6.12.95 in the slab allocator) gets a second boot;
		# one that ran tests does not, nor one that printed nothing at
		# all (boot.sh's 125): that is the accelerator, not the kernel.
		if [ "$try" = 2 ] || [ "$rc" = 125 ] || grep -q VMTEST <<<"$clean"; then
			break
		fi
		cp "$log" "$log.boot1"
		retried=' (booted on the second try)'
		echo "test-kernels: $release did not reach init; booting again (first console: $log.boot1)"
	done
	secs=$(($(now) - start))

	# Each package's result is its test binary's exit status, which the
	# guest prints as "VMTEST NAME rc=N".
	parts=() first='' failed=()
	for pkg in "${pkgs[@]}"; do
		prc=$(sed -n "s/.*VMTEST $pkg rc=\([0-9]*\).*/\1/p" <<<"$clean" | tail -n1)
		if [ "$prc" = 0 ]; then
			parts+=("$pkg ok")
			continue
		fi
		failed+=("$pkg")
		if [ -z "$prc" ]; then
			parts+=("$pkg no result")
		else
			parts+=("$pkg FAIL")
		fi
		if [ -z "$first" ]; then
			first=$(section "$log" "$pkg" | grep -m1 -oE -- '--- FAIL: [^ ]+|^panic: .*' | sed 's/^--- FAIL: //')
			[ -n "$first" ] && first="$pkg: $first"
		fi
	done
	summary=$(printf '%s, ' "${parts[@]}")
	summary="(${summary%, })"

	if ! grep -q '^VMTEST-START ' <<<"$clean"; then
		why="did not boot (twice)$hung"
		grep -q '^VMTEST-INIT' <<<"$clean" && why="booted, but ran no test"
		[ "$rc" = 124 ] && why="$why within $TIMEOUT s"
		[ "$rc" = 125 ] && why="no console output ($VM_ACCEL): accelerator? (VM_ACCEL=tcg forces emulation)"
		result[$n]="FAIL  $release  $why  $secs s"
		echo "---- $release: end of console log"
		tail -n 30 "$log"
		continue
	fi
	if [ ${#failed[@]} -eq 0 ] && grep -q '^VMTEST-DONE rc=0' <<<"$clean"; then
		result[$n]="PASS  $release  $summary $secs s$retried"
		continue
	fi
	[ "$rc" = 124 ] && first="timed out after $TIMEOUT s${first:+; $first}"
	result[$n]="FAIL  $release  ${first:-see log}  $summary $secs s$retried"
	for pkg in "${failed[@]}"; do
		echo "---- $release: $pkg, failed tests and end of output"
		section "$log" "$pkg" | grep -E -- '--- FAIL' | head -n 20
		echo "...."
		section "$log" "$pkg" | tail -n 40
	done
	# A package that never finished: what the console said last.
	grep -q '^VMTEST-DONE' <<<"$clean" || { echo "---- $release: end of console log"; tail -n 20 "$log"; }
done

echo
echo "==== kernel tests (logs in $VM/logs)"
status=0
for n in "${names[@]}"; do
	echo "${result[$n]}"
	[[ ${result[$n]} == PASS* ]] || status=1
done
exit $status
