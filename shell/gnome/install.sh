#!/usr/bin/env bash
# Installs the zerocast extension for the GNOME Shell on this machine: the 43-44 zip (legacy
# imports) or the 45+ one (ES modules), chosen by `gnome-shell --version`. Builds them first
# when missing. Then enable it: gnome-extensions enable zerocast@zerocast.github.io
# (after logging out and in on Wayland).
# Usage: install.sh [--print]   (--print: only say which zip would be installed)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${ZEROCAST_EXTENSION_BUILD:-$here/build}"
uuid="$(sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p' "$here/src/metadata.json")"

version="$(gnome-shell --version 2>/dev/null | sed -n 's/^GNOME Shell \([0-9]*\).*/\1/p')"
if [ -z "$version" ]; then
  echo "install: gnome-shell not found (is this a GNOME session?)" >&2
  exit 1
fi
if [ "$version" -lt 43 ]; then
  echo "install: GNOME Shell $version is too old (43 or newer needed)" >&2
  exit 1
elif [ "$version" -le 44 ]; then
  tag=v43-44
else
  tag=v45
fi
zip="$out/$uuid.$tag.shell-extension.zip"
[ -f "$zip" ] || "$here/build.sh" "$out" >/dev/null
if [ "${1:-}" = --print ]; then
  echo "$zip"
  exit 0
fi
gnome-extensions install --force "$zip"
echo "install: installed $uuid for GNOME Shell $version ($tag); enable it with:"
echo "  gnome-extensions enable $uuid"
