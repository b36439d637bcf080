#!/usr/bin/env bash
# Remove collector: stop the service, remove the binary and the unit.
# The database in /var/lib/collector and /etc/collector.env are kept
# unless --purge is given.
set -euo pipefail
purge=0
[ "${1:-}" = "--purge" ] && { purge=1; shift; }
root=${1:-}

[ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run as root" >&2; exit 1; }

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl disable --now collector.service 2>/dev/null || true
fi
rm -f "$root/usr/local/bin/collector" "$root/etc/systemd/system/collector.service"
# Pinned maps outlive the daemon; without it nothing reads them.
rm -rf "$root/sys/fs/bpf/collector"
[ -z "$root" ] && [ -d /run/systemd/system ] && systemctl daemon-reload
if [ "$purge" -eq 1 ]; then
	rm -rf "$root/var/lib/collector" "$root/etc/collector.env"
	echo "removed collector, its data and its settings"
else
	echo "removed collector; kept /var/lib/collector and /etc/collector.env (--purge removes them)"
fi
