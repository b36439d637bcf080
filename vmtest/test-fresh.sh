#!/bin/bash
# test-fresh.sh: the README's commands on a fresh Debian 12 machine. A
# pristine Debian 12 root (debootstrap minbase with make, git and
# ca-certificates; apt's sources bookworm, bookworm-updates and
# bookworm-security), with this machine's /usr/local/go copied in (all a
# fresh machine of ours has besides) and a clean clone of this
# repository's HEAD in /src, is entered with chroot as root, with no sudo
# in it, to run `make demo`, then `make test-here`: `make deps` has to
# install all the rest. Uncommitted changes are not tested.
#
# The root gets what a machine has mounted: proc, sysfs, bpffs, /dev (a
# bind of this machine's), /dev/pts, and tmpfs on /dev/shm, /run and /tmp.
# This machine's /etc/resolv.conf and the certificate authorities in its
# /usr/local/share/ca-certificates (a TLS-inspecting proxy's, if any) are
# copied in, and GOPROXY, GOSUMDB and GOFLAGS are its `go env`: they are
# the network's, which a fresh machine on it would be given too. The root
# shares this machine's network namespace, as it would on a machine: the
# demo and the tests build namespaces and veth links of their own. On
# exit, also on a failure or Ctrl-C, whatever still runs in the root is
# killed and everything is unmounted.
#
# Needs root (debootstrap, mount, chroot) and the network (Debian's
# mirror, the Go module proxy). Under build/fresh/ (FRESH): base.tar, the
# debootstrapped tree, made once and again only when the package list or
# MIRROR changes; root/, a copy of it for one run, replaced by the next;
# logs/{debootstrap,demo,test-here}.log, and the packages each make
# installed in logs/{demo,test-here}.packages. Ends with the packages each
# make installed, whether a service was left running in the root (a
# package's service started despite make deps' policy-rc.d), each step's
# wall time and test-here's "N passed, M failed, K skipped" line. Exit
# status 1 when either make failed or a service was left running.
# `make test-fresh`.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
FRESH=${FRESH:-$src/build/fresh}
MIRROR=${MIRROR:-http://deb.debian.org}
SUITE=bookworm
PACKAGES=make,git,ca-certificates
# Where a fresh machine of ours has Go; copied into the root.
HOST_GO=${HOST_GO:-/usr/local/go}
# The time limits of the two makes, deps install included.
DEMO_TIMEOUT=${DEMO_TIMEOUT:-1800}
TEST_TIMEOUT=${TEST_TIMEOUT:-3600}

if [ "$(id -u)" != 0 ]; then
	echo "test-fresh: needs root (sudo make test-fresh)" >&2
	exit 2
fi
if [ ! -x "$HOST_GO/bin/go" ]; then
	echo "test-fresh: no Go in $HOST_GO, where a fresh machine of ours has it" >&2
	exit 2
fi
mkdir -p "$FRESH/logs" || exit 1
FRESH=$(cd "$FRESH" && pwd -P)
# The root holds Go's own sources (its test/ has no go.mod): a module of
# its own here keeps them out of `go vet ./...` and `go test ./...` in the
# repository, which would otherwise try to build them.
[ -f "$FRESH/go.mod" ] || printf '%s\n' \
	'// Not Go: keeps the Debian trees of vmtest/test-fresh.sh out of the' \
	"// repository's ./... patterns." 'module testfresh' >"$FRESH/go.mod" || exit 1
logs=$FRESH/logs
root=$FRESH/root
base=$FRESH/base.tar

# One run at a time: they share root/.
exec 9>"$FRESH/.lock"
if ! flock -n 9; then
	echo "test-fresh: another run holds $FRESH/.lock" >&2
	exit 1
fi

# mounts_under DIR: the mount points at or under DIR, innermost first.
mounts_under() {
	findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1' | sort -r
}

# chroot_pids: the processes whose root is the chroot's, also those that
# entered a mount namespace of their own in it (ip netns exec).
chroot_pids() {
	local p
	for p in /proc/[0-9]*; do
		if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] || [ "$p/root/" -ef "$root/" ]; then
			echo "${p#/proc/}"
		fi
	done
}

# kill_chroot: stop what still runs in the chroot as Ctrl-C would (the
# demo removes its lab then), TERM what is left 15 s later, KILL it 10 s
# after that.
kill_chroot() {
	local pids sig wait
	mapfile -t pids < <(chroot_pids)
	[ ${#pids[@]} -gt 0 ] || return 0
	echo "test-fresh: stopping ${#pids[@]} process(es) left in the root: ${pids[*]}" >&2
	for sig in INT:15 TERM:10 KILL:5; do
		kill -"${sig%:*}" "${pids[@]}" 2>/dev/null
		for ((wait = ${sig#*:}; wait > 0; wait--)); do
			mapfile -t pids < <(chroot_pids)
			[ ${#pids[@]} -gt 0 ] || return 0
			sleep 1
		done
	done
	echo "test-fresh: still running in the root: ${pids[*]}" >&2
}

# unmount_all DIR: unmount everything at or under DIR; lazily what is busy.
unmount_all() {
	local m
	while IFS= read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" || echo "test-fresh: cannot unmount $m" >&2
	done < <(mounts_under "$1")
}

# remove_tree DIR: rm -rf, but never through a mount (a bind of /dev).
remove_tree() {
	unmount_all "$1"
	if [ -n "$(mounts_under "$1")" ]; then
		echo "test-fresh: still mounted under $1, not removing it:" >&2
		mounts_under "$1" >&2
		exit 1
	fi
	rm -rf --one-file-system "$1"
}

cleanup() {
	trap - EXIT INT TERM
	kill_chroot
	# The make of run, and its log, to their end.
	wait
	# What the lab left behind: names of network namespaces in the
	# root's /run (unmounting them ends the namespaces and their veths).
	local left=("$root"/run/netns/*)
	if [ -e "${left[0]}" ]; then
		echo "test-fresh: network namespaces left in the root's /run/netns: ${left[*]##*/}" >&2
	fi
	unmount_all "$root"
	unmount_all "$FRESH/base.tmp"
	if [ -n "$(mounts_under "$FRESH")" ]; then
		echo "test-fresh: still mounted:" >&2
		mounts_under "$FRESH" >&2
	fi
}
trap cleanup EXIT
trap 'echo "test-fresh: interrupted" >&2; exit 130' INT TERM

secs() { echo "$((EPOCHSECONDS - $1))"; }

# debootstrap itself, and Debian's archive keys for it.
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if [ ${#missing[@]} -gt 0 ]; then
	echo "test-fresh: installing ${missing[*]}"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}"; } >"$logs/apt-install.log" 2>&1 ||
		{ cat "$logs/apt-install.log" >&2; exit 1; }
fi

# 1. The debootstrapped tree, once, kept as a tarball.
want="$SUITE $PACKAGES $MIRROR"
t_debootstrap=cached
if [ ! -f "$base" ] || [ "$(cat "$base.want" 2>/dev/null)" != "$want" ]; then
	echo "test-fresh: debootstrap $SUITE with $PACKAGES (log: $logs/debootstrap.log)"
	start=$EPOCHSECONDS
	tmp=$FRESH/base.tmp
	remove_tree "$tmp"
	rm -f "$base" "$base.want"
	debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$MIRROR/debian" \
		>"$logs/debootstrap.log" 2>&1 || { tail -n 30 "$logs/debootstrap.log" >&2; exit 1; }
	# apt's sources, as this machine's: the release, its updates and
	# its security updates; no lists yet, as for sources just changed.
	rm -f "$tmp/etc/apt/sources.list"
	cat >"$tmp/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: $MIRROR/debian
		Suites: $SUITE $SUITE-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

		Types: deb
		URIs: $MIRROR/debian-security
		Suites: $SUITE-security
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/cache/apt/*.bin "$tmp"/var/lib/apt/lists/*
	tar -C "$tmp" --numeric-owner --xattrs --xattrs-include='*' -cf "$base.tmp" . &&
		mv "$base.tmp" "$base" || exit 1
	echo "$want" >"$base.want"
	remove_tree "$tmp"
	t_debootstrap="$(secs "$start") s"
fi

# 2. A pristine copy, this machine's Go, and HEAD's clone.
start=$EPOCHSECONDS
remove_tree "$root"
mkdir -p "$root" &&
	tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$base" &&
	cp -a "$HOST_GO" "$root/usr/local/go" &&
	cp -L /etc/resolv.conf "$root/etc/resolv.conf" || exit 1
# This machine's own certificate authorities, as resolv.conf.
local_cas=(/usr/local/share/ca-certificates/*.crt)
if [ -e "${local_cas[0]}" ]; then
	if ! { cp "${local_cas[@]}" "$root/usr/local/share/ca-certificates/" &&
		chroot "$root" update-ca-certificates >/dev/null 2>&1; }; then
		echo "test-fresh: cannot add this machine's CAs: ${local_cas[*]}" >&2
		exit 1
	fi
fi
head=$(git -C "$src" rev-parse --short HEAD) || exit 1
dirty=''
[ -z "$(git -C "$src" status --porcelain --untracked-files=no)" ] || dirty=' (uncommitted changes are not in it)'
git clone -q --no-hardlinks "$src" "$root/src" || exit 1
echo "test-fresh: root ready in $(secs "$start") s: Debian $(cat "$root/etc/debian_version"), $("$HOST_GO/bin/go" version | cut -d' ' -f3), $head$dirty in /src"
if chroot "$root" /bin/sh -c 'command -v sudo' >/dev/null; then
	echo "test-fresh: the fresh root has sudo" >&2
	exit 1
fi

# 3. What a machine has mounted. The root is a private mount of its own
# first, so nothing mounted in it propagates anywhere else; so is the
# bind of /dev, or the mounts on its pts and shm would show on this
# machine's.
mnt() {
	mount "$@" || { echo "test-fresh: mount $* failed" >&2; exit 1; }
}
mnt --bind "$root" "$root"
mnt --make-private "$root"
mnt -t proc proc "$root/proc"
mnt -t sysfs sysfs "$root/sys"
mnt -t bpf bpf "$root/sys/fs/bpf"
mnt --bind /dev "$root/dev"
mnt --make-private "$root/dev"
mnt --bind /dev/pts "$root/dev/pts"
mnt -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
mnt -t tmpfs -o mode=0755,nosuid,nodev run "$root/run"
mnt -t tmpfs -o mode=1777,nosuid,nodev tmp "$root/tmp"

env=(HOME=/root USER=root LOGNAME=root TERM=dumb LANG=C.UTF-8
	PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
for v in GOPROXY GOSUMDB GOFLAGS; do
	env+=("$v=$("$HOST_GO/bin/go" env "$v")")
done

# What this machine's network namespace and its own netns names are, to
# see that the run left them as they were.
links_before=$(ip -o link show | awk -F': ' '{ print $2 }' | sort)
netns_before=$(ip netns list 2>/dev/null | sort)

# 4. run NAME LIMIT: make NAME in /src as root in the root, its output
# to logs/NAME.log. The commands make echoes that start a step (go, the
# collector, promtool's unpacking) go to logs/NAME.marks, each with the
# seconds since the start (go test is not echoed). In the background, so that a TERM or Ctrl-C
# is acted on at once; cleanup stops what runs in the root.
run() {
	local name=$1 limit=$2
	rm -f "$logs/$name.log" "$logs/$name.marks"
	(
		start=$EPOCHSECONDS
		timeout -k 30 "$limit" chroot "$root" /usr/bin/env -i "${env[@]}" \
			/bin/bash -c "cd /src && make $name" </dev/null 2>&1 | {
			# The log outlives a Ctrl-C: what the make prints as it
			# stops is logged, and no write of it meets a closed pipe.
			trap '' INT TERM
			while IFS= read -r line || [ -n "$line" ]; do
				printf '%s\n' "$line"
				if [[ $line =~ ^(/usr/local/go/bin/go\ |\./collector\ |dpkg-deb\ ) ]]; then
					printf '%s\t%s\n' "$((EPOCHSECONDS - start))" "$line" >>"$logs/$name.marks"
				fi
			done >"$logs/$name.log"
		}
		exit "${PIPESTATUS[0]}"
	) &
	wait $!
}

# at NAME PREFIX: the seconds into make NAME at which a command starting
# with PREFIX was echoed; ? if it was not.
at() {
	local s
	s=$(awk -F'\t' -v p="$2" 'index($2, p) == 1 { print $1; exit }' "$logs/$1.marks" 2>/dev/null)
	echo "${s:-?}"
}
# between FROM TO: TO - FROM seconds, ? if either is unknown.
between() {
	if [ "$1" = '?' ] || [ "$2" = '?' ]; then echo '?'; else echo "$(($2 - $1))"; fi
}

# packages: the root's installed packages, one per line.
# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
packages() { chroot "$root" dpkg-query -W -f '${binary:Package}\n' | sort; }
# installed_by NAME BEFORE: what make NAME installed (BEFORE is packages'
# list before it), as "N packages: a b c", into logs/NAME.packages too.
installed_by() {
	local new
	new=$(comm -13 <(echo "$2") <(packages))
	echo "$new" | sed '/^$/d' >"$logs/$1.packages"
	echo "$(wc -l <"$logs/$1.packages") packages: $(paste -sd' ' "$logs/$1.packages")"
}
# services_left NAME: a make has ended, so nothing it started may still
# run in the root: a process left there is a service a package started
# (make deps installs with a policy-rc.d that refuses them). It is
# named, and killed by the cleanup.
services_left() {
	local pids p
	mapfile -t pids < <(chroot_pids)
	if [ ${#pids[@]} -eq 0 ]; then
		echo "no service started"
		return 0
	fi
	for p in "${pids[@]}"; do
		printf '%s ' "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-60)"
	done | sed 's/^/STARTED: /'
	echo
	return 1
}

echo "test-fresh: make demo (log: $logs/demo.log)"
start=$EPOCHSECONDS
before=$(packages)
run demo "$DEMO_TIMEOUT"
demo_rc=$?
demo_packages=$(installed_by demo "$before")
services_started=''
demo_services=$(services_left) || services_started=1
t_demo=$(secs "$start")
demo_build=$(at demo '/usr/local/go/bin/go build')
demo_run=$(at demo './collector demo')
if [ $demo_rc -ne 0 ]; then
	echo "test-fresh: make demo failed (exit status $demo_rc); its end:" >&2
	tail -n 40 "$logs/demo.log" >&2
fi

echo "test-fresh: make test-here (log: $logs/test-here.log)"
start=$EPOCHSECONDS
before=$(packages)
run test-here "$TEST_TIMEOUT"
test_rc=$?
test_packages=$(installed_by test-here "$before")
test_services=$(services_left) || services_started=1
t_test=$(secs "$start")
test_vet=$(at test-here '/usr/local/go/bin/go vet')
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$logs/test-here.log" | tail -n 1)
if [ $test_rc -ne 0 ]; then
	echo "test-fresh: make test-here failed (exit status $test_rc):" >&2
	if grep -q -- '--- FAIL' "$logs/test-here.log"; then
		grep -- '--- FAIL' "$logs/test-here.log" >&2
	else
		tail -n 40 "$logs/test-here.log" >&2
	fi
fi

cleanup
links_after=$(ip -o link show | awk -F': ' '{ print $2 }' | sort)
netns_after=$(ip netns list 2>/dev/null | sort)
if [ "$links_before" != "$links_after" ]; then
	echo "test-fresh: this machine's links changed:" >&2
	diff <(echo "$links_before") <(echo "$links_after") >&2
fi
if [ "$netns_before" != "$netns_after" ]; then
	echo "test-fresh: this machine's netns names changed:" >&2
	diff <(echo "$netns_before") <(echo "$netns_after") >&2
fi

echo "test-fresh: make demo installed $demo_packages"
echo "test-fresh: make demo: $demo_services"
echo "test-fresh: make test-here installed $test_packages"
echo "test-fresh: make test-here: $test_services"
echo "test-fresh: debootstrap    $t_debootstrap"
echo "test-fresh: make demo      $t_demo s: deps $demo_build s, go build $(between "$demo_build" "$demo_run") s, demo $(between "$demo_run" "$t_demo") s (rc=$demo_rc)"
echo "test-fresh: make test-here $t_test s: deps and promtool $test_vet s, go vet and go test $(between "$test_vet" "$t_test") s (rc=$test_rc)"
echo "test-fresh: test-here: ${summary:-no summary line}"
if [ $demo_rc -ne 0 ] || [ $test_rc -ne 0 ] || [ -n "$services_started" ]; then
	echo "test-fresh: FAIL"
	exit 1
fi
echo "test-fresh: PASS"
