# shellcheck shell=bash
# prepare-kernels.sh is sourced by test-kernels.sh and test-service.sh.
#
# prepare_kernels NAME... fetches each kernel package (fetch-kernel.sh),
# builds the root tree (mkroot.sh) and each fetched kernel's modules,
# initramfs and root.img (mkimage.sh); each step is skipped when its
# result is cached under $VM. The names whose package came are left in
# the array fetched; for the others result[NAME] holds a FAIL line.
# Returns non-zero when the root tree or an image cannot be made.
#
# Then it chooses the accelerator once for every boot of the run
# (accel.sh, with the first fetched kernel as the probe guest) and
# exports it as VM_ACCEL; it returns 2 when VM_ACCEL is not accepted.

# result maps a kernel name to its line in the caller's summary; the
# callers read it.
# shellcheck disable=SC2034
declare -A result=()
fetched=()

prepare_kernels() {
	local dir n t0 t1 t2
	dir=$(dirname "${BASH_SOURCE[0]}")
	t0=$(date +%s)
	for n in "$@"; do
		if "$dir/fetch-kernel.sh" "$n"; then
			fetched+=("$n")
		else
			result[$n]="FAIL  $n  could not fetch the kernel package"
		fi
	done
	t1=$(date +%s)
	"$dir/mkroot.sh" || return 1
	t2=$(date +%s)
	if [ ${#fetched[@]} -gt 0 ]; then
		"$dir/mkimage.sh" "${fetched[@]}" || return 1
	fi
	echo "$(basename "$0" .sh): kernels $((t1 - t0)) s, root tree $((t2 - t1)) s, images $(($(date +%s) - t2)) s"
	[ ${#fetched[@]} -gt 0 ] || return 0
	VM_ACCEL=$("$dir/accel.sh" "$VM/kernels/${fetched[0]}") || return 2
	export VM_ACCEL
	echo "$(basename "$0" .sh): accelerator $VM_ACCEL"
}

# kernel_label NAME: the kernel's release and the version of the package
# it came from, which the mirror decided when it was fetched.
kernel_label() {
	local version
	version=$(sed -n '1s/.*=//p' "$VM/kernels/$1/packages" 2>/dev/null)
	echo "$(cat "$VM/kernels/$1/release") (${version:-version unknown})"
}
