#!/bin/bash
# test-service.sh [NAME...]: the Debian package's life under a real
# systemd, in one VM per kernel of kernels.conf (default: $KERNELS, else
# "6.1 5.10"), then one PASS or FAIL line per kernel with its wall time.
# Exit status 1 when any kernel failed, could not be fetched or did not
# boot. Needs root (the VM images are root's); `make test-service-guest`.
#
# Each VM boots the shared root image of mkroot.sh (Debian 12) without
# init=, so systemd is PID 1 and brings up multi-user.target as on a real
# host; writes go to qemu's throwaway snapshot. The kernel command line
# has systemd run service-guest.sh from a payload disk: the package `make
# deb` builds, and the test binary of e2e/packaging with
# service_guest_test.go (build tag serviceguest), which asserts each step. Console: $VM/logs/service-NAME.log.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export VM=${VM:-$(dirname "$here")/build/vm}
# The time limit of one VM, boot to power off.
TIMEOUT=${TIMEOUT:-900}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

if [ "$(id -u)" != 0 ]; then
	echo "test-service: needs root (sudo make test-service-guest)" >&2
	exit 2
fi
names=("$@")
[ ${#names[@]} -gt 0 ] || read -ra names <<<"${KERNELS:-6.1 5.10}"
now() { date +%s; }
out=$VM/service
mkdir -p "$VM/logs" "$out"

"$here/vm-tools.sh" test-service || exit 1

# Kernels, root tree and root.img as test-kernels.sh makes them.
# shellcheck source=vmtest/prepare-kernels.sh
. "$here/prepare-kernels.sh"
prepare_kernels "${names[@]}" || exit $?

# The payload disk, built afresh from this tree. make deb's binary is left
# out: the package holds it. Static (no cgo), like the package's.
payload=$out/payload
rm -rf "$payload"
mkdir -p "$payload"
if ! { make -C "$here/.." --no-print-directory deb DIST="$payload" GO="$GO" &&
	(cd "$here/.." && CGO_ENABLED=0 "$GO" test -c -tags serviceguest -o "$payload/service.test" ./e2e/packaging); } >"$out/build.log" 2>&1; then
	cat "$out/build.log" >&2
	exit 1
fi
rm -f "$payload/collector"
install -m 755 "$here/service-guest.sh" "$payload/run"
mke2fs -q -F -t ext4 -L payload -d "$payload" "$out/payload.img" \
	"$(($(du -sm "$payload" | cut -f1) + 32))M" >/dev/null || exit 1

# systemd.run: the run generator makes kernel-command-line.service, which
# mounts the payload and runs it, then powers off whatever the result.
# The generator would also make its own target the default one; booting
# multi-user.target instead (systemd.unit), with that service wanted by it
# (systemd.wants), brings the guest up as a host with the package. agetty
# on the serial console is masked: it would hang up the port the test
# writes to.
cmdline='systemd.unit=multi-user.target systemd.wants=kernel-command-line.service'
cmdline+=' systemd.run="/bin/mount -o ro /dev/vdb /mnt" systemd.run=/mnt/run'
cmdline+=' systemd.run_success_action=poweroff systemd.run_failure_action=poweroff'
cmdline+=' systemd.mask=serial-getty@ttyS0.service systemd.show_status=error'

# boot.sh stops its qemu on TERM; a background job of a script ignores
# the terminal's Ctrl-C, so pass INT and TERM on to it.
boot=''
trap '[ -z "$boot" ] || kill -TERM "$boot" 2>/dev/null; wait; exit 130' INT TERM
for n in "${fetched[@]}"; do
	release=$(kernel_label "$n")
	log=$VM/logs/service-$n.log
	echo "test-service: booting $release (console: $log)"
	start=$(now)
	"$here/boot.sh" -k "$VM/kernels/$n" -r "$VM/root.img" -d "$out/payload.img" \
		-a "$cmdline" -t "$TIMEOUT" -l "$log" &
	boot=$!
	wait "$boot"
	rc=$?
	boot=''
	secs=$(($(now) - start))
	clean=$(tr -d '\r' <"$log")
	trc=$(sed -n 's/^VMTEST service rc=\([0-9]*\).*/\1/p' <<<"$clean" | tail -n1)

	if ! grep -q '^VMTEST-START service' <<<"$clean"; then
		why="did not boot"
		[ "$rc" = 124 ] && why="did not boot within $TIMEOUT s"
		[ "$rc" = 125 ] && why="no console output ($VM_ACCEL): accelerator? (VM_ACCEL=tcg forces emulation)"
		result[$n]="FAIL  $release  $why  $secs s"
		echo "---- $release: end of console log"
		tail -n 30 "$log"
		continue
	fi
	if [ "$trc" = 0 ]; then
		result[$n]="PASS  $release  $secs s"
		continue
	fi
	# Why, and the step that failed as go test -v names it (the test's
	# own FAIL line comes first and names no step).
	why=$(grep -m1 -oE -- '--- FAIL: [^ ]+/[^ ]+|^panic: .*' <<<"$clean" | sed 's/^--- FAIL: //')
	if [ "$rc" = 124 ]; then
		why="timed out after $TIMEOUT s${why:+ in $why}"
	elif [ -z "$trc" ]; then
		why="no result (qemu status $rc)${why:+ in $why}"
	fi
	result[$n]="FAIL  $release  ${why:-see log}  $secs s"
	# The failed step's own output holds its error; the journal of the
	# unit follows it in the log.
	step=$(grep -m1 -oE -- '--- FAIL: [^ ]+/[^ ]+' <<<"$clean" | sed 's/^--- FAIL: //')
	echo "---- $release: ${step:-end of the console}"
	if [ -n "$step" ]; then
		awk -v s="=== RUN   $step" '$0 == s { on = 1; print; next } on && /^=== / { exit } on' <<<"$clean"
	else
		tail -n 40 <<<"$clean"
	fi
done

echo
echo "==== package under systemd (logs in $VM/logs)"
status=0
for n in "${names[@]}"; do
	echo "${result[$n]}"
	[[ ${result[$n]} == PASS* ]] || status=1
done
exit $status
