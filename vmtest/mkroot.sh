#!/bin/bash
# mkroot.sh: the Debian 12 root tree every VM boots, in $VM/rootfs,
# built once with debootstrap from Debian's packages (needs root). It is
# rebuilt only when the package list below changes. The kernels' modules
# are added to it by mkimage.sh, not here.
#
# minbase keeps it small; the tools the tests call (ip, tc, ethtool,
# sqlite3, modprobe) are added, and systemd-sysv, dbus and udev so the
# same root can boot with systemd as PID 1 for the package tests.
# busybox-static provides the initramfs's only binary (see mkinitrd.sh),
# zstd unpacks modules for it should a kernel ship .ko.zst.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
VM=${VM:-$(dirname "$here")/build/vm}
MIRROR=${MIRROR:-http://deb.debian.org}
SUITE=bookworm
PACKAGES=iproute2,ethtool,kmod,sqlite3,procps,systemd-sysv,dbus,udev,busybox-static,xz-utils,zstd

# One builder at a time: test-kernels.sh and other runs share $VM.
mkdir -p "$VM"
exec 9>"$VM/.lock"
flock 9
root=$VM/rootfs
want="$SUITE $PACKAGES"
if [ -f "$root/.vmtest-packages" ] && [ "$(cat "$root/.vmtest-packages")" = "$want" ]; then
	exit 0
fi

mkdir -p "$VM"
rm -rf "$root" "$root.tmp"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root.tmp" "$MIRROR/debian" \
	>"$VM/debootstrap.log" 2>&1 || { tail -n 30 "$VM/debootstrap.log" >&2; exit 1; }

# A console login for debugging a systemd boot: root without a password,
# on a throwaway image that has no network.
chroot "$root.tmp" passwd -d root >/dev/null
echo vmtest >"$root.tmp/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root.tmp/etc/fstab"
# The packages' downloads are not needed in the image.
rm -rf "$root.tmp"/var/cache/apt/archives/*.deb "$root.tmp"/var/lib/apt/lists/*_Packages
echo "$want" >"$root.tmp/.vmtest-packages"
mv "$root.tmp" "$root"
