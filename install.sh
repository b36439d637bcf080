#!/usr/bin/env bash
# Install collector: the binary, the systemd unit, and /etc/collector.env
# when there is none yet (an existing one is never overwritten). Run as
# root from a checkout (after `make build`) or a release directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${1:-}

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
[ -x "$here/collector" ] || { echo "install.sh: $here/collector is missing; run make build first" >&2; exit 1; }

install -D -m 0755 "$here/collector" "$root/usr/local/bin/collector"
install -D -m 0644 "$here/collector.service" "$root/etc/systemd/system/collector.service"
install -d -m 0750 "$root/var/lib/collector"

env_file="$root/etc/collector.env"
if [ -e "$env_file" ]; then
	echo "keeping $env_file"
else
	iface=$(ip -o route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit }}')
	install -D -m 0644 /dev/null "$env_file"
	cat >"$env_file" <<CONF
# collector settings; see README.md for every setting and its default.
INTERFACE="${iface}"
SQLITE_PATH="/var/lib/collector/collector.db"
PORT_SIA_CONSENSUS="9981"
PORT_RHP4_SIAMUX="9984"
PORT_RHP4_QUIC="9984"
PINNED_MAPS="1"
CONF
	echo "wrote $env_file (INTERFACE=${iface:-unset})"
fi

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable collector.service
	systemctl restart collector.service
	echo "collector is running: journalctl -u collector -f"
fi
