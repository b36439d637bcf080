#!/bin/busybox sh
# shellcheck shell=dash
# /init of the initramfs mkinitrd.sh builds: Debian's cloud kernels have
# virtio_blk (and, before 6.12, virtio_pci) as modules, so something must
# load them before the root disk exists. It loads the modules listed in
# /modules in order, mounts root= and hands over to init= (default
# /sbin/init, i.e. systemd), like Debian's own initramfs in miniature.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

root=/dev/vda init=/sbin/init opts=rw
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case $arg in
	root=*) root=${arg#root=} ;;
	init=*) init=${arg#init=} ;;
	ro) opts=ro ;;
	esac
done

while read -r m; do
	insmod "$m" || echo "initrd: insmod $m failed"
done </modules

# The disk appears asynchronously after virtio_blk probes it.
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if ! mount -t ext4 -o "$opts" "$root" /newroot; then
	echo "initrd: cannot mount $root; modules: $(cut -d' ' -f1 /proc/modules)"
	poweroff -f
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot "$init"
