#!/bin/bash
# vm-tools.sh NAME: install what the VMs need from Debian's packages when
# it is missing (qemu, debootstrap, mke2fs, dpkg-deb, the archive keyring);
# test-kernels.sh and test-service.sh run it first. NAME prefixes the
# messages; apt's output goes to $VM/apt-install.log and is shown on a
# failure.
set -uo pipefail
missing=()
for t in qemu-system-x86_64:qemu-system-x86 debootstrap:debootstrap mke2fs:e2fsprogs \
	dpkg-deb:dpkg gzip:gzip; do
	command -v "${t%%:*}" >/dev/null || missing+=("${t##*:}")
done
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
[ ${#missing[@]} -gt 0 ] || exit 0
echo "$1: installing ${missing[*]}"
mkdir -p "$VM"
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends "${missing[@]}"; } >"$VM/apt-install.log" 2>&1 ||
	{ cat "$VM/apt-install.log" >&2; exit 1; }
