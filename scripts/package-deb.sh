#!/usr/bin/env bash
# package-deb.sh [RELEASE...] — Debian binary packages of zerocast, each built against its
# release's libraries:
#   bookworm (Debian 12): on this host (Debian 12 with bookworm-backports' PipeWire 1.4)
#   trixie   (Debian 13): inside the Debian 13 root of scripts/platform.sh
# (default: both). Output in target/deb/out/:
#   zerocast_<ver>-1+deb<N>_amd64.deb               binaries, D-Bus/systemd/desktop files, icons,
#                                                    man pages, completions, docs
#   gnome-shell-extension-zerocast_<ver>-1+deb<N>_all.deb   the extension for that release's
#                                                    GNOME Shell (43-44 legacy / 45+ ESM)
# Version from the workspace (Cargo.toml). Reproducible: the binaries are built with the
# checkout and cargo paths remapped, every file gets SOURCE_DATE_EPOCH (default: the last
# commit's time) as its time, and dpkg-deb writes root-owned, sorted archives — two runs give
# byte-identical .debs (scripts/test-deb.sh checks it).
#
# Environment: CARGO_TARGET_DIR is not used (builds go to target/deb/<release>);
# ZEROCAST_DEB_NO_BUILD=1 packages the binaries built before (no cargo run);
# ZEROCAST_PLATFORM_SH: another platform.sh for the Debian 13 root (default scripts/platform.sh);
# ZEROCAST_PLATFORM_DIR as for platform.sh. Needs root for the Debian 13 root (platform.sh).
#
# Internal: `package-deb.sh --here RELEASE` does the zerocast package in the current system
# (platform.sh runs it inside the Debian 13 root).
set -euo pipefail

WS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# ZEROCAST_DEB_OUT: another folder under target/deb for the .debs (the reproducibility check).
OUT="$WS/target/deb/${ZEROCAST_DEB_OUT:-out}"
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$WS/Cargo.toml")"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$WS" log -1 --format=%ct 2>/dev/null || echo 0)}"
export LC_ALL=C.UTF-8 TZ=UTC
umask 022
MAINT="zerocast maintainers <zerocast@zerocast.github.io>"
HOMEPAGE="https://github.com/zerocast/zerocast"

debver() { # debver RELEASE: the Debian version, e.g. 0.1.0-1+deb12
  case "$1" in
    bookworm) echo "$VERSION-1+deb12" ;;
    trixie) echo "$VERSION-1+deb13" ;;
    *) echo "package-deb: unknown release '$1' (bookworm, trixie)" >&2; exit 2 ;;
  esac
}

# Every file's time SOURCE_DATE_EPOCH, modes 0755/0644: the archive then depends only on the
# content.
normalize() {
  find "$1" -type d -exec chmod 0755 {} +
  find "$1" -type f ! -path '*/DEBIAN/*' -exec chmod go-w,a+r {} +
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# control fields Installed-Size and DEBIAN/md5sums from the staged tree.
finish_tree() { # finish_tree DIR
  local d=$1
  (cd "$d" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' | sort |
    xargs -r -d '\n' md5sum) >"$d/DEBIAN/md5sums"
  local kb
  kb=$(du -sk --apparent-size --exclude=DEBIAN "$d" | cut -f1)
  sed -i "s/^Installed-Size: .*/Installed-Size: $kb/" "$d/DEBIAN/control"
  normalize "$d"
  chmod 0644 "$d/DEBIAN/"*
}

build_deb() { # build_deb DIR OUTFILE
  # --root-owner-group: root:root inside whatever user built it; dpkg-deb sorts the entries
  # and takes the ar/tar times from SOURCE_DATE_EPOCH.
  dpkg-deb --root-owner-group -Zxz -z9 --build "$1" "$2" >/dev/null
  echo "package-deb: $2 ($(stat -c %s "$2") bytes)" >&2
}

changelog() { # changelog PACKAGE DEBVER DIST FILE: a one-entry changelog.Debian.gz
  local date
  date=$(date -u -d "@$SOURCE_DATE_EPOCH" -R)
  printf '%s (%s) %s; urgency=medium\n\n  * Release %s, built from the zerocast workspace\n    (scripts/package-deb.sh).\n\n -- %s  %s\n' \
    "$1" "$2" "$3" "$VERSION" "$MAINT" "$date" | gzip -9n >"$4"
}

copyright() { # copyright FILE: machine-readable (DEP-5) copyright with both licences
  {
    cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: zerocast
Upstream-Contact: $MAINT
Source: $HOMEPAGE

Files: *
Copyright: 2026 The zerocast authors
License: MIT or Apache-2.0
Comment: The binaries link Rust crates from crates.io statically (see Cargo.lock in the
 source); each is under MIT, Apache-2.0 or a compatible permissive licence.

License: MIT
EOF
    sed -e 's/^$/./' -e 's/^/ /' "$WS/LICENSE-MIT"
    cat <<'EOF'

License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 can be found in
 /usr/share/common-licenses/Apache-2.0.
EOF
  } >"$1"
}

# ---- the zerocast package, in the release's own system -----------------------------------
here() {
  local rel=$1 dv tgt stage gen
  dv=$(debver "$rel")
  tgt="$WS/target/deb/$rel"
  # Paths of this checkout and of cargo's registry are remapped, so the binaries (panic
  # messages, debug paths) are the same wherever the workspace sits: /work/… on the host,
  # /src inside the Debian 13 root. Full RELRO as Debian's hardening flags ask.
  export RUSTFLAGS="--remap-path-prefix=$WS=/usr/src/zerocast --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo -C link-arg=-Wl,-z,relro,-z,now"
  export CARGO_TARGET_DIR="$tgt"
  if [ "${ZEROCAST_DEB_NO_BUILD:-0}" != 1 ]; then
    # Two cargo runs: built together, the tray would get the recorder's dependency features
    # (cargo unifies them; tokio "full", …) and grow ~140 KB; apart, each binary is what
    # `cargo install` makes. The generator shares only the recorder's dependencies.
    (cd "$WS" && cargo build --release --locked -p zerocast -p zerocast-gendocs &&
      cargo build --release --locked -p zerocast-tray)
  fi
  stage="$tgt/stage/zerocast"
  gen="$tgt/stage/gen"
  rm -rf "$stage" "$gen"
  mkdir -p "$stage/DEBIAN" "$gen"
  "$tgt/release/zerocast-gendocs" "$gen"

  local S=$stage bins="$tgt/stage/bin"
  rm -rf "$bins"
  mkdir -p "$bins"
  for b in zerocast zerocast-tray; do
    # As dh_strip does: no symbols or .comment/.note sections (the build id stays).
    strip --remove-section=.comment --remove-section=.note --strip-unneeded \
      -o "$bins/$b" "$tgt/release/$b"
  done
  # The layout scripts/install.sh gives a system install, with /usr paths in the files and
  # the tray's autostart under /etc/xdg/autostart (staged under DESTDIR).
  DESTDIR="$S" "$WS/scripts/install.sh" --prefix /usr --sysconfdir /etc --autostart \
    --binaries "$bins" >/dev/null
  install -d "$S/usr/share/man/man1"
  for p in "$gen"/man/*.1; do gzip -9n <"$p" >"$S/usr/share/man/man1/$(basename "$p").gz"; done
  install -D -m 0644 "$gen/completions/zerocast" "$S/usr/share/bash-completion/completions/zerocast"
  install -D -m 0644 "$gen/completions/_zerocast" "$S/usr/share/zsh/vendor-completions/_zerocast"
  install -D -m 0644 "$gen/completions/zerocast.fish" "$S/usr/share/fish/vendor_completions.d/zerocast.fish"
  local doc="$S/usr/share/doc/zerocast"
  install -d "$doc"
  gzip -9n <"$WS/README.md" >"$doc/README.md.gz"
  copyright "$doc/copyright"
  changelog zerocast "$dv" "$rel" "$doc/changelog.Debian.gz"

  # Depends from the libraries the binaries link (dpkg-shlibdeps needs a debian/control).
  local sd deps
  sd=$(mktemp -d)
  mkdir -p "$sd/debian"
  printf 'Source: zerocast\n\nPackage: zerocast\nArchitecture: any\n' >"$sd/debian/control"
  deps=$(cd "$sd" && dpkg-shlibdeps -O --warnings=1 -e"$S/usr/bin/zerocast" -e"$S/usr/bin/zerocast-tray" |
    sed -n 's/^shlibs:Depends=//p')
  rm -rf "$sd"
  [ -n "$deps" ] || { echo "package-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

  echo /etc/xdg/autostart/zerocast-tray.desktop >"$S/DEBIAN/conffiles"
  cat >"$S/DEBIAN/control" <<EOF
Package: zerocast
Version: $dv
Architecture: $(dpkg --print-architecture)
Maintainer: $MAINT
Installed-Size: 0
Depends: $deps
Recommends: pipewire, xdg-desktop-portal, xdg-desktop-portal-gnome | xdg-desktop-portal-kde | xdg-desktop-portal-wlr
Suggests: gnome-shell-extension-zerocast
Section: video
Priority: optional
Homepage: $HOMEPAGE
Description: Wayland screen recorder with GPU encoding
 zerocast records the screen (or a window) of a Wayland desktop through the
 ScreenCast portal and PipeWire, and encodes it on the GPU (Vulkan, CUDA,
 NVENC) or the CPU.
 .
 The package has the command-line recorder, the recorder daemon (D-Bus
 service org.zerocast.Recorder1, started on demand) and a tray applet that
 starts at login.
EOF
  finish_tree "$S"
  mkdir -p "$OUT"
  build_deb "$S" "$OUT/zerocast_${dv}_$(dpkg --print-architecture).deb"
}

# ---- the GNOME Shell extension (architecture all, made on the host) -----------------------
extension() {
  local rel=$1 dv variant tag depends uuid stage zip
  dv=$(debver "$rel")
  case "$rel" in
    # bookworm has GNOME 43: the legacy (imports) build; trixie GNOME 48: the ES-module build.
    # The ranges are the shell-version lists of shell/gnome/build.sh (ES modules: 45 to the
    # newest shell in shell/gnome/tested-shells).
    bookworm) variant=legacy tag=v43-44 depends="gnome-shell (>= 43), gnome-shell (<< 45~)" ;;
    trixie)
      local newest
      newest=$(sed -e 's/#.*//' "$WS/shell/gnome/tested-shells" | awk 'NF {print $1}' | sort -n | tail -1)
      variant=esm tag=v45 depends="gnome-shell (>= 45), gnome-shell (<< $((newest + 1))~)" ;;
  esac
  local ext="$WS/target/deb/extension"
  # Built every time: the zips are small, and a cached one could declare stale versions.
  "$WS/shell/gnome/build.sh" "$ext" >/dev/null
  uuid="$(sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p' "$WS/shell/gnome/src/metadata.json")"
  zip="$ext/$uuid.$tag.shell-extension.zip"
  stage="$WS/target/deb/$rel/stage/extension"
  rm -rf "$stage"
  mkdir -p "$stage/DEBIAN"
  local dir="$stage/usr/share/gnome-shell/extensions/$uuid"
  mkdir -p "$dir"
  # The very zip a user would install with `gnome-extensions install`, unpacked.
  (cd "$dir" && python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(".")' "$zip")
  local doc="$stage/usr/share/doc/gnome-shell-extension-zerocast"
  install -d "$doc"
  copyright "$doc/copyright"
  changelog zerocast "$dv" "$rel" "$doc/changelog.Debian.gz"
  cat >"$stage/DEBIAN/control" <<EOF
Package: gnome-shell-extension-zerocast
Source: zerocast
Version: $dv
Architecture: all
Maintainer: $MAINT
Installed-Size: 0
Depends: $depends
Recommends: zerocast
Section: gnome
Priority: optional
Homepage: $HOMEPAGE
Description: GNOME Shell extension for the zerocast screen recorder
 A panel indicator and menu for zerocast: shows whether a recording runs and
 starts, pauses and stops recordings through the zerocast daemon's D-Bus API.
 Enable it in the Extensions app or with gnome-extensions enable.
EOF
  finish_tree "$stage"
  mkdir -p "$OUT"
  build_deb "$stage" "$OUT/gnome-shell-extension-zerocast_${dv}_all.deb"
}

if [ "${1:-}" = --here ]; then
  here "${2:?--here RELEASE}"
  exit 0
fi

[ $# -gt 0 ] || set -- bookworm trixie
rm -rf "$WS/target/deb/extension"
for rel in "$@"; do
  debver "$rel" >/dev/null
  case "$rel" in
    bookworm)
      host=$(. /etc/os-release && echo "${VERSION_CODENAME:-?}")
      [ "$host" = bookworm ] || {
        echo "package-deb: the bookworm package is built on a Debian 12 host (this is $host)" >&2
        exit 1
      }
      here bookworm
      ;;
    trixie)
      "${ZEROCAST_PLATFORM_SH:-$WS/scripts/platform.sh}" debian13 env ZEROCAST_DEB_NO_BUILD="${ZEROCAST_DEB_NO_BUILD:-0}" ZEROCAST_DEB_OUT="${ZEROCAST_DEB_OUT:-out}" \
        SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" scripts/package-deb.sh --here trixie
      ;;
  esac
  extension "$rel"
done
ls -l "$OUT"
