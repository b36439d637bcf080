#!/bin/sh
# Refreshes the vendored copy of uPlot, the dashboard's chart library, from
# npm: the minified browser build, its stylesheet and its licence, and
# records the version. The dashboard embeds them, so it works offline and
# loads nothing from a CDN.
#
#   web/dashboard/update-uplot.sh            # the version in VERSION again
#   web/dashboard/update-uplot.sh 1.6.33     # another version
#
# npm pack checks the tarball against the registry's integrity hash.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dest=$here/static/vendor/uplot
version=${1:-$(cat "$dest/VERSION")}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "uplot@$version" >/dev/null)
tar -xzf "$work/uplot-$version.tgz" -C "$work"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$dest/"
echo "$version" >"$dest/VERSION"
echo "uplot $version -> $dest"
