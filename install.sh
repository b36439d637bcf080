#!/usr/bin/env bash
# Install collector from a checkout (after `make build`) or a release
# directory: the binary, the systemd unit and /etc/collector.env, then
# enable it and, where systemd runs, start it once `collector check`
# passes. Running it again changes only what differs and says so. An
# existing /etc/collector.env is never overwritten; settings it does not
# mention are appended as comments with their defaults.
#
#   ./install.sh              install on this machine (as root)
#   ./install.sh --root DIR   stage the files under DIR; nothing on this
#                             machine is enabled, checked or started
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=/usr/local/bin/collector
# shellcheck source=packaging/lib.sh
. "$here/packaging/lib.sh"
parse_options "usage: install.sh [--root DIR]" "$@"

new="$here/collector"
[ -x "$new" ] || { echo "install.sh: $new is missing; run make build first" >&2; exit 1; }
version=$("$new" version | sed -n '1s/^collector //p')

changed=0
# install_file SRC DEST MODE: install SRC as DEST unless DEST has the same
# content and mode already.
install_file() {
	if cmp -s "$1" "$2" && [ "$(stat -c %a "$2")" = "${3#0}" ]; then
		return
	fi
	install -D -m "$3" "$1" "$2"
	echo "installed ${2#"$root"}"
	changed=1
}

# default_route_interface: the interface the daemon itself would pick with
# INTERFACE unset (config.DefaultRouteInterface): the first IPv4 default
# route, else the first IPv6 one; nothing when there is none.
default_route_interface() {
	local iface dest mask dlen
	# Iface Destination Gateway Flags RefCnt Use Metric Mask ...
	while read -r iface dest _ _ _ _ _ mask _; do
		if [ "$dest" = 00000000 ] && [ "$mask" = 00000000 ]; then
			echo "$iface"
			return
		fi
	done </proc/net/route
	[ -r /proc/net/ipv6_route ] || return 0
	# dest dest_len src src_len next_hop metric refcnt use flags iface
	while read -r dest dlen _ _ _ _ _ _ _ iface; do
		if [ -z "${dest//0/}" ] && [ "$dlen" = 00 ] && [ "$iface" != lo ]; then
			echo "$iface"
			return
		fi
	done </proc/net/ipv6_route
}

install_file "$new" "$root$bin" 0755
install_file "$here/collector.service" "$root/etc/systemd/system/$unit" 0644

env_file=$root/etc/collector.env
if [ ! -e "$env_file" ]; then
	iface=$(default_route_interface)
	mkdir -p "$(dirname "$env_file")"
	# Written beside and renamed, so a failure leaves no half file that
	# the next run would keep.
	tmp=$(mktemp "$env_file.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	env_file_new "$new" "$iface" >"$tmp"
	# It may hold secrets: a webhook token, the PostgreSQL password.
	chmod 0600 "$tmp"
	mv "$tmp" "$env_file"
	echo "wrote /etc/collector.env (INTERFACE=${iface:-unset, so the default route of each start})"
	changed=1
else
	missing=$(env_file_missing "$new" "$env_file")
	if [ -n "$missing" ]; then
		printf '# Added by install.sh for collector %s: settings this file did not mention, with their defaults.\n%s\n' \
			"$version" "$missing" >>"$env_file"
		names=$(printf '%s\n' "$missing" | sed 's/^#//; s/=.*//' | paste -s -d ' ')
		echo "kept /etc/collector.env; added the settings it did not mention, commented out: $names"
		changed=1
	fi
fi

if ! on_this_machine; then
	if [ "$changed" -eq 1 ]; then
		echo "staged collector $version under $root"
	else
		echo "nothing to do: collector $version is staged under $root already"
	fi
	exit 0
fi
if [ "$changed" -eq 0 ] && { ! systemd_running || systemctl is-active --quiet "$unit"; }; then
	echo "nothing to do: collector $version is installed$(systemd_running && echo " and running")"
	exit 0
fi
service_start
