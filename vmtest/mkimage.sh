#!/bin/bash
# mkimage.sh NAME...: put each kernel's modules (and vmtest-init) into
# the root tree, build each kernel's initramfs, and make $VM/root.img from
# the tree with mke2fs -d (no mounting, no loop device). One image serves
# every kernel: the modules of each sit in their own /lib/modules/RELEASE.
# Nothing is redone when nothing changed. Needs root (chroot, and the
# tree's files are root's).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
VM=${VM:-$(dirname "$here")/build/vm}
# One builder at a time: test-kernels.sh and other runs share $VM.
mkdir -p "$VM"
exec 9>"$VM/.lock"
flock 9
root=$VM/rootfs
img=$VM/root.img
changed=''
[ -f "$img" ] || changed=1

for name in "$@"; do
	k=$VM/kernels/$name
	release=$(cat "$k/release")
	if [ ! -d "$root/usr/lib/modules/$release" ]; then
		mkdir -p "$root/usr/lib/modules"
		cp -a "$k/lib/modules/$release" "$root/usr/lib/modules/$release.tmp"
		mv "$root/usr/lib/modules/$release.tmp" "$root/usr/lib/modules/$release"
		# The package's postinst would run depmod: do it with the root's
		# own kmod, the one that will read the result.
		chroot "$root" depmod "$release"
		changed=1
	fi
	if [ ! -s "$k/initrd.img" ] || [ "$here/initrd-init.sh" -nt "$k/initrd.img" ] ||
		[ "$here/mkinitrd.sh" -nt "$k/initrd.img" ]; then
		"$here/mkinitrd.sh" "$name"
	fi
done

# Modules of a kernel no longer fetched (a newer one replaced it) go.
for dir in "$root"/usr/lib/modules/*; do
	[ -e "$dir" ] || continue
	if ! grep -qxF "$(basename "$dir")" "$VM"/kernels/*/release; then
		rm -rf "$dir"
		changed=1
	fi
done

if ! cmp -s "$here/guest-init.sh" "$root/sbin/vmtest-init"; then
	install -m 755 "$here/guest-init.sh" "$root/sbin/vmtest-init"
	changed=1
fi
[ "$root/.vmtest-packages" -nt "$img" ] && changed=1
[ -n "$changed" ] || exit 0

# Room for what a boot adds (a package installed, logs): writes go to a
# snapshot anyway unless boot.sh -w, and the image file is sparse.
size=$(($(du -sm "$root" | cut -f1) + 1024))
rm -f "$img.tmp"
# orphan_file (e2fsprogs 1.47) is unknown to kernels before 5.15, which
# then refuse to mount the file system read-write; older mke2fs do not
# know the option, hence the second try.
mke2fs -q -F -t ext4 -O ^orphan_file -L vmroot -d "$root" "$img.tmp" "${size}M" >/dev/null 2>&1 ||
	mke2fs -q -F -t ext4 -L vmroot -d "$root" "$img.tmp" "${size}M" >/dev/null
mv "$img.tmp" "$img"
