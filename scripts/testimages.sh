#!/usr/bin/env bash
# Build the root filesystems of the test images: the Kubernetes stand-in's (tests/kubeworld) and the
# container world's (tests/testworld/containers.py, imported into podman). Needs the apt mirror,
# so scripts/test.sh runs it BEFORE it enters the no-route network namespace. Cached outside the repository, in
# $STYX_TESTWORLD_CACHE (default /var/cache/styx-testworld/), and built only when missing.
#
#   nopython-bookworm/   `styx-test/nopython:bookworm`: Debian 12 minbase (sh, tar, coreutils),
#                        no Python and no rsync; ~53 s to build, ~120 MB.
#
# Without root or without the mirror it prints why and exits 0: the tests that need an image skip
# with that reason. Usage: bash scripts/testimages.sh
set -euo pipefail
cache="${STYX_TESTWORLD_CACHE:-/var/cache/styx-testworld}"
dest="$cache/nopython-bookworm"
if [ -f "$dest.complete" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "testimages: not root, so no test images (the tests that need one will skip)." >&2
  exit 0
fi

# The first Debian mirror that serves bookworm, from one-line or deb822 apt sources.
mirror=""
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror="$(awk '
    /^deb[ \t]/ { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { if ($(i+1) == "bookworm") { print $i; exit } break } }
    /^URIs:/ { uris = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm" && uris != "") { print uris; exit } }
    /^$/ { uris = "" }
  ' "$f")"
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ]; then
  echo "testimages: no bookworm mirror in /etc/apt/sources.list*, so no test images." >&2
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "testimages: installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq debootstrap >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; } || {
    echo "testimages: could not install debootstrap, so no test images." >&2; exit 0; }
fi

mkdir -p "$cache"
tmp="$cache/.nopython-bookworm.$$"
trap 'rm -rf "$tmp"' EXIT
echo "testimages: building styx-test/nopython:bookworm from $mirror (about a minute)"
if ! debootstrap --variant=minbase bookworm "$tmp" "$mirror" >"$cache/nopython-bookworm.log" 2>&1; then
  echo "testimages: debootstrap failed (see $cache/nopython-bookworm.log), so no test images." >&2
  exit 0
fi
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
# What the tests rely on: tar and sh are there, python3 and rsync are not.
for must in usr/bin/tar bin/sh usr/bin/env; do
  [ -e "$tmp/$must" ] || { echo "testimages: $must is missing from the image" >&2; exit 1; }
done
if compgen -G "$tmp/usr/bin/python*" >/dev/null || [ -e "$tmp/usr/bin/rsync" ]; then
  echo "testimages: the nopython image has python or rsync in it" >&2
  exit 1
fi
rm -rf "$dest" "$dest.complete"
mv "$tmp" "$dest"
touch "$dest.complete"  # beside it: the image itself stays as debootstrap made it
echo "testimages: styx-test/nopython:bookworm ready in $dest"
