#!/bin/bash
# mkinitrd.sh NAME: $VM/kernels/NAME/initrd.img, a tiny initramfs with
# the static busybox of the root tree, the kernel's modules needed to
# reach an ext4 root on virtio (those not built in, with their
# dependencies, in load order, decompressed so busybox insmod takes
# them) and initrd-init.sh as /init. Needs the modules installed in the
# root tree (mkimage.sh) and root, for chroot.
set -euo pipefail
name=${1:?usage: mkinitrd.sh NAME}
here=$(cd "$(dirname "$0")" && pwd)
VM=${VM:-$(dirname "$here")/build/vm}
root=$VM/rootfs
k=$VM/kernels/$name
release=$(cat "$k/release")
bb=$root/bin/busybox

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$bb" "$tmp/bin/busybox"
cp "$here/initrd-init.sh" "$tmp/init"
chmod 755 "$tmp/init"
: >"$tmp/modules"
# "insmod PATH" lines in dependency order; built-in ones print "builtin".
chroot "$root" modprobe -a -S "$release" --show-depends virtio_pci virtio_blk ext4 |
	awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++' |
	while read -r path; do
		base=$(basename "$path")
		base=${base%.xz}
		base=${base%.zst}
		case $path in
		*.xz) "$bb" xz -dc "$root$path" >"$tmp/lib/modules/$base" ;;
		*.zst) chroot "$root" zstd -qdc "$path" >"$tmp/lib/modules/$base" ;;
		*) cp "$root$path" "$tmp/lib/modules/$base" ;;
		esac
		echo "/lib/modules/$base" >>"$tmp/modules"
	done
(cd "$tmp" && find . | "$bb" cpio -o -H newc 2>/dev/null | gzip -1) >"$k/initrd.img.tmp"
mv "$k/initrd.img.tmp" "$k/initrd.img"
