#!/bin/bash
# fetch-kernel.sh NAME: download the Debian kernel package kernels.conf
# names for NAME and unpack it into $VM/kernels/NAME/ (vmlinuz, config,
# lib/modules/<release>, and a file "release"). A kernel already unpacked
# is not fetched again (unless its line in kernels.conf changed): delete
# its directory to take a newer one.
#
# apt runs with a private configuration (APT_CONFIG) whose Dir::Etc,
# Dir::State and Dir::Cache all point under $VM/apt/NAME, so the host's
# sources, lists and package database are neither read nor changed, and
# no root is needed for this step.
set -euo pipefail
name=${1:?usage: fetch-kernel.sh NAME}
here=$(cd "$(dirname "$0")" && pwd)
VM=${VM:-$(dirname "$here")/build/vm}
MIRROR=${MIRROR:-http://deb.debian.org}
KEYRING=${KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

spec=$(awk -v n="$name" '$1 == n { print $2, $3 }' "$here/kernels.conf")
read -r suites pattern <<<"$spec"
if [ -z "${pattern:-}" ]; then
	echo "fetch-kernel: no kernel '$name' in kernels.conf" >&2
	exit 2
fi
# One builder at a time: test-kernels.sh and other runs share $VM.
mkdir -p "$VM"
exec 9>"$VM/.lock"
flock 9
out=$VM/kernels/$name
if [ -s "$out/release" ] && [ "$(cat "$out/spec" 2>/dev/null)" = "$spec" ]; then
	echo "fetch-kernel: $name: $(paste -sd' ' "$out/packages") (cached; delete $out for the mirror's newest)"
	exit 0
fi

apt=$VM/apt/$name
mkdir -p "$apt"/etc/{apt.conf.d,preferences.d,sources.list.d,trusted.gpg.d} \
	"$apt"/state/lists/partial "$apt"/cache/archives/partial "$VM/debs" "$VM/kernels"
touch "$apt/state/status"
cat >"$apt/apt.conf" <<CONF
Dir::Etc "$apt/etc/";
Dir::State "$apt/state/";
Dir::State::status "$apt/state/status";
Dir::Cache "$apt/cache/";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
// The _apt user may not reach a build tree under a home directory.
APT::Sandbox::User "root";
Acquire::Languages "none";
CONF
: >"$apt/etc/sources.list"
IFS=, read -ra list <<<"$suites"
for s in "${list[@]}"; do
	archive=debian
	[[ $s == *-security ]] && archive=debian-security
	# check-valid-until=no: a mirror frozen at a snapshot serves Release
	# files past their Valid-Until; the signatures are still checked.
	echo "deb [check-valid-until=no signed-by=$KEYRING] $MIRROR/$archive $s main" >>"$apt/etc/sources.list"
done
export APT_CONFIG=$apt/apt.conf
apt-get -q update >"$apt/update.log" 2>&1 || { cat "$apt/update.log" >&2; exit 1; }

# Newest by name: the ABI number or upstream version in the name orders them.
pkg=$(apt-cache pkgnames linux-image- | grep -E "^${pattern}\$" | sort -V | tail -n1)
if [ -z "$pkg" ]; then
	echo "fetch-kernel: nothing in $suites matches $pattern" >&2
	exit 1
fi
version=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2 }')
# Newer kernels (sid) split the image into linux-binary-, linux-modules-
# and linux-base- packages of the same release, which it depends on.
release=${pkg#linux-image-}
pkgs=("$pkg=$version")
for dep in $(apt-cache depends "$pkg=$version" | awk '/Depends: linux-/ { print $2 }'); do
	[[ $dep == *"$release" ]] && pkgs+=("$dep=$version")
done
echo "fetch-kernel: $name: ${pkgs[*]}"
(cd "$VM/debs" && apt-get -q download "${pkgs[@]}" >/dev/null)

tmp=$(mktemp -d "$VM/kernels/.$name.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for p in "${pkgs[@]}"; do
	dpkg-deb -x "$VM/debs/${p%%=*}_${version/:/%3a}_amd64.deb" "$tmp/x"
done
# usr-merged packages (sid) ship /usr/lib/modules.
x=$tmp/x
[ -d "$x/lib/modules/$release" ] || x=$tmp/x/usr
mkdir -p "$tmp/lib/modules"
mv "$x/lib/modules/$release" "$tmp/lib/modules/"
# The image and its config are in /boot, or (sid) in the modules directory.
for f in vmlinuz config; do
	if [ -e "$tmp/x/boot/$f-$release" ]; then
		mv "$tmp/x/boot/$f-$release" "$tmp/$f"
	else
		cp "$tmp/lib/modules/$release/$f" "$tmp/$f"
	fi
done
printf '%s\n' "${pkgs[@]}" >"$tmp/packages"
echo "$release" >"$tmp/release"
echo "$spec" >"$tmp/spec"
rm -rf "$tmp/x" "$out"
mv "$tmp" "$out"
trap - EXIT
