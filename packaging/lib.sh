# shellcheck shell=sh disable=SC2154 # root and bin come from the caller
# What install.sh, uninstall.sh and the Debian package's maintainer scripts
# share, so that installing by hand and with dpkg cannot drift apart.
# Sourced, never run; POSIX sh because dpkg runs maintainer scripts with
# /bin/sh. Callers set:
#   root  "" for this machine, or the directory of a staged install, where
#         nothing on this machine (systemd, the kernel) may be touched
#   bin   the collector binary's path on the target, e.g. /usr/bin/collector

unit=collector.service

on_this_machine() { [ -z "$root" ]; }

# parse_options USAGE ARG...: the options of install.sh and uninstall.sh.
# --root DIR sets root (/ is this machine); --purge sets purge=1 where
# USAGE offers it. Installing on this machine needs root.
# shellcheck disable=SC2034 # uninstall.sh reads purge
parse_options() {
	usage=$1
	shift
	root=""
	purge=0
	while [ $# -gt 0 ]; do
		case $1 in
		--root)
			if [ $# -ge 2 ]; then
				root=$(realpath -m "$2")
				[ "$root" != / ] || root=""
				shift 2
				continue
			fi
			;;
		--purge)
			case $usage in *--purge*)
				purge=1
				shift
				continue
				;;
			esac
			;;
		-h | --help)
			echo "$usage"
			exit 0
			;;
		esac
		echo "$usage" >&2
		exit 2
	done
	if on_this_machine && [ "$(id -u)" -ne 0 ]; then
		script=${usage#usage: }
		echo "${script%% *}: run as root" >&2
		exit 1
	fi
}

# systemd_running: systemd is PID 1 here (the test sd_booted(3) uses), so
# the service can be started and stopped; enabling works without it.
systemd_running() { on_this_machine && [ -d /run/systemd/system ]; }

# setting_defaults BINARY: NAME=default for every setting BINARY knows,
# read from its help text, so the env file lists exactly the settings of
# the binary it is installed with.
setting_defaults() {
	# -h exits non-zero by design; finding no setting is the real failure.
	defaults=$({ "$1" run -h 2>&1 || true; } | sed -n 's/.*(env \([A-Z][A-Z0-9_]*\), default "\(.*\)")$/\1=\2/p')
	if [ -z "$defaults" ]; then
		echo "cannot read the settings of $1 from its -h output" >&2
		return 1
	fi
	printf '%s\n' "$defaults"
}

# env_file_new BINARY IFACE: /etc/collector.env for a new install. Every
# setting is listed; the ones left at their default are commented out.
# INTERFACE is IFACE, or the default route's interface at each start when
# IFACE is empty; PINNED_MAPS=1 keeps counting while the service restarts
# or is upgraded.
env_file_new() {
	defaults=$(setting_defaults "$1") || return 1
	echo "# collector settings, read when the service starts. A line starting"
	echo "# with '#' shows a setting's default; remove the '#' to change it."
	echo "# \`collector help settings\` explains every setting."
	printf '%s\n' "$defaults" | while IFS= read -r line; do
		case $line in
		INTERFACE=*) if [ -n "$2" ]; then echo "INTERFACE=$2"; else echo "#$line"; fi ;;
		PINNED_MAPS=*) echo "PINNED_MAPS=1" ;;
		*) echo "#$line" ;;
		esac
	done
}

# env_file_missing BINARY FILE: the commented default of every setting
# FILE does not mention, set or commented out, so that appending them
# twice adds nothing the second time.
env_file_missing() {
	defaults=$(setting_defaults "$1") || return 1
	printf '%s\n' "$defaults" | while IFS= read -r line; do
		grep -q "^[#[:space:]]*${line%%=*}=" "$2" || echo "#$line"
	done
}

# service_start: enable collector at boot and, where systemd runs, load
# the new unit and binary and (re)start it once `collector check` passes;
# a restart with pinned links keeps counting throughout. Where the check
# fails, leave the unit disabled, so that a machine it cannot run on does
# not start it at every boot, and say what to do. Without systemd (an
# image being built) the check would judge the wrong machine: enable only.
service_start() {
	on_this_machine || return 0
	if ! systemd_running; then
		systemctl enable --quiet "$unit"
		echo "systemd is not running here: collector is enabled for the next boot, not started"
		return 0
	fi
	systemctl daemon-reload
	if ! "$bin" check; then
		if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
			systemctl disable --quiet "$unit"
		fi
		echo "collector is installed but not enabled: fix what collector check reports above, then: systemctl enable --now collector" >&2
		return 1
	fi
	systemctl enable --quiet "$unit"
	systemctl restart "$unit"
	echo "collector is running: journalctl -u collector -f"
}

# service_remove: stop collector in whatever state it is, a restart that
# is pending included (`systemctl is-active` does not count that one),
# then remove what outlives it (pinned programs and maps, a TC qdisc or
# filter it added) with `collector detach`, and disable it.
service_remove() {
	on_this_machine || return 0
	if systemd_running; then
		state=$(systemctl show --property ActiveState --value "$unit" 2>/dev/null || true)
		if [ -n "$state" ] && [ "$state" != inactive ]; then
			systemctl stop "$unit"
			echo "stopped collector (it was $state)"
		fi
		# A unit that failed stays listed as failed until this.
		systemctl reset-failed "$unit" 2>/dev/null || true
	fi
	if [ -x "$bin" ]; then
		"$bin" detach || echo "collector detach failed (above); its programs may still be attached" >&2
	fi
	if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
		systemctl disable --quiet "$unit"
	fi
	remove_pin_dir
}

# remove_pin_dir: the unit's bpffs directory, which ExecStartPre creates
# even with pinning off; `collector detach` removes it when it holds pins.
remove_pin_dir() {
	on_this_machine || return 0
	if [ -d /sys/fs/bpf/collector ]; then
		rm -rf /sys/fs/bpf/collector
	fi
}

# purge_data: the database, and anything else collector stored.
purge_data() {
	if [ -e "$root/var/lib/collector" ]; then
		rm -rf "$root/var/lib/collector"
		echo "removed /var/lib/collector"
	fi
}
