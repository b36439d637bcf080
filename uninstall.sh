#!/usr/bin/env bash
# Remove what install.sh installed: stop collector, remove its programs,
# pins and any TC qdisc or filter it added (`collector detach`), then the
# binary and the unit. The database in /var/lib/collector and
# /etc/collector.env are kept unless --purge is given. Running it again
# changes nothing and says so.
#
#   ./uninstall.sh [--purge]              on this machine (as root)
#   ./uninstall.sh [--purge] --root DIR   from a staged install under DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=/usr/local/bin/collector
# shellcheck source=packaging/lib.sh
. "$here/packaging/lib.sh"
parse_options "usage: uninstall.sh [--purge] [--root DIR]" "$@"

changed=0
remove_file() {
	if [ -e "$1" ] || [ -L "$1" ]; then
		rm -f "$1"
		echo "removed ${1#"$root"}"
		changed=1
	fi
}

# Detach needs the binary, so it goes first.
service_remove
remove_file "$root$bin"
remove_file "$root/etc/systemd/system/$unit"
if [ "$changed" -eq 1 ] && systemd_running; then
	systemctl daemon-reload
fi
if [ "$purge" -eq 1 ]; then
	remove_file "$root/etc/collector.env"
	[ ! -e "$root/var/lib/collector" ] || changed=1
	purge_data
elif [ "$changed" -eq 1 ]; then
	echo "kept /var/lib/collector and /etc/collector.env (uninstall.sh --purge removes them)"
fi
[ "$changed" -eq 1 ] || echo "nothing to do: collector is not installed${root:+ under $root}"
