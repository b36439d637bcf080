#!/usr/bin/env bash
# Build the Debian package with dpkg-deb from a built binary; `make deb`
# runs it. The package holds the binary, the unit, /etc/collector.env as a
# conffile, and maintainer scripts made of lib.sh (shared with install.sh)
# and deb/{postinst,prerm,postrm}.
#
#   packaging/build-deb.sh BINARY VERSION OUTDIR
#
# VERSION is what `git describe --always --dirty` printed; it becomes a
# Debian version that sorts upwards: v1.2.0-3-gabc1234 -> 1.2.0+3.gabc1234,
# and without a tag abc1234 -> 0.0.0+git<commits>.abc1234.
set -euo pipefail
# The modes of the directories in the package come from this umask.
umask 022
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 3 ] || { echo "usage: build-deb.sh BINARY VERSION OUTDIR" >&2; exit 2; }
binary=$1 version=$2 out=$3

case $version in
v[0-9]* | [0-9]*.*) deb_version=$(echo "${version#v}" | sed 's/-/+/; s/-/./g') ;;
*) deb_version="0.0.0+git$(git -C "$here" rev-list --count HEAD 2>/dev/null || echo 0).${version//-/.}" ;;
esac
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
install -D -m 0755 "$binary" "$stage/usr/bin/collector"
install -D -m 0644 "$here/../collector.service" "$stage/lib/systemd/system/collector.service"
# shellcheck source=packaging/lib.sh
. "$here/lib.sh"
# No interface in the package's env file: a conffile must not be edited by
# the maintainer scripts, so the daemon takes the default route's
# interface at each start until INTERFACE is set.
mkdir "$stage/etc"
env_file_new "$binary" "" >"$stage/etc/collector.env"
# It may hold secrets: a webhook token, the PostgreSQL password.
chmod 0600 "$stage/etc/collector.env"

mkdir -m 0755 "$stage/DEBIAN"
echo /etc/collector.env >"$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
	{
		printf '#!/bin/sh\nset -e\nroot=""\nbin=/usr/bin/collector\n'
		cat "$here/lib.sh" "$here/deb/$script"
	} >"$stage/DEBIAN/$script"
	chmod 0755 "$stage/DEBIAN/$script"
done
(cd "$stage" && find usr lib etc -type f -exec md5sum {} + | sort -k 2) >"$stage/DEBIAN/md5sums"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: collector
Version: $deb_version
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-back2basic <back2basic@users.noreply.github.com>}
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f 1)
Section: net
Priority: optional
Homepage: https://github.com/back2basic/collector
Description: per-client traffic accounting for Sia hosts
 An XDP program on ingress and a TC program on egress count the bytes and
 packets each remote address exchanges with a Sia host on its consensus,
 siamux and QUIC ports; a daemon stores them minute by minute in SQLite.
 Needs Linux 5.10 or newer (tested on 5.10, 6.1 and 6.12).
CONTROL

mkdir -p "$out"
deb="$out/collector_${deb_version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
