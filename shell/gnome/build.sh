#!/usr/bin/env bash
# Builds the extension for both module systems from the one source in src/:
#   OUT/legacy/<uuid>/   + OUT/<uuid>.v43-44.shell-extension.zip   (GNOME 43-44, `imports`)
#   OUT/esm/<uuid>/      + OUT/<uuid>.v45.shell-extension.zip      (GNOME 45+, ES modules)
# Usage: build.sh [OUT]   (default: shell/gnome/build). Needs glib-compile-schemas and zip
# (scripts/install-deps.sh installs both).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/build}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
uuid="$(sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p' "$here/src/metadata.json")"

# The ES-module zip declares 45 up to the newest shell a test runs on (tested-shells).
newest=$(sed -e 's/#.*//' "$here/tested-shells" | awk 'NF {print $1}' | sort -n | tail -1)
[ "$newest" -ge 45 ] || { echo "build: no tested shell of 45 or later in tested-shells" >&2; exit 1; }
esm_versions=$(seq 45 "$newest" | sed 's/.*/"&"/' | paste -sd, | sed 's/,/, /g')

# variant  shell-versions                    entry point
variants=(
  'legacy|["43", "44"]|extension-legacy.js|v43-44'
  "esm|[$esm_versions]|extension-esm.js|v45"
)
for v in "${variants[@]}"; do
  IFS='|' read -r name versions entry tag <<<"$v"
  dir="$out/$name/$uuid"
  rm -rf "$dir"
  mkdir -p "$dir/schemas"
  sed "s/\"@SHELL_VERSIONS@\"/$versions/" "$here/src/metadata.json" >"$dir/metadata.json"
  cp "$here/src/$entry" "$dir/extension.js"
  cp "$here/src/stylesheet.css" "$dir/"
  cp "$here/src/schemas/"*.gschema.xml "$dir/schemas/"
  if [ "$name" = legacy ]; then
    # Legacy modules export their top-level `var`s and functions; classes need a `var`.
    sed -e 's/^export class \([A-Za-z_][A-Za-z0-9_]*\)/var \1 = class \1/' \
        -e 's/^export function /function /' "$here/src/zerocast.js" >"$dir/zerocast.js"
    if grep -nE '^(export|import) ' "$dir/zerocast.js"; then
      echo "build: module syntax left in the legacy zerocast.js" >&2
      exit 1
    fi
  else
    cp "$here/src/zerocast.js" "$dir/"
  fi
  # 43 needs the compiled schema in the extension (44+ compile it themselves but accept it).
  glib-compile-schemas --strict "$dir/schemas"
  zip="$out/$uuid.$tag.shell-extension.zip"
  rm -f "$zip"
  (cd "$dir" && zip -qr -X "$zip" .)
  echo "$zip"
done
