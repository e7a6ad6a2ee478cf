#!/usr/bin/env bash
# Builds xdg-desktop-portal-wlr 0.7.0 from Debian's source package with zerocast's patches
# (tests/desktop/xdpw-patches/*.patch) and installs the binary to target/xdpw/.
#
# Why: stock xdpw 0.7.0 cannot screencast without a GPU (it demands a DMA-BUF format from
# wlr-screencopy) and reads persist_mode from garbage in Start. See
# shared/notes/headless-desktop.md and tests/desktop/README.md.
#
# Idempotent and cached: skips the build when target/xdpw/xdg-desktop-portal-wlr exists and
# the recorded hash of the patches and this script matches. Needs no root: apt-get source runs
# against a private deb-src list in a temporary directory, so the system's apt config is
# untouched. Build dependencies are installed by scripts/install-deps.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="0.7.0-1"
PATCHES=("$ROOT"/tests/desktop/xdpw-patches/*.patch)
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/xdpw"
BIN="$OUT/xdg-desktop-portal-wlr"
STAMP="$OUT/stamp"

hash="$(cat "${PATCHES[@]}" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$hash" ]; then
  exit 0
fi

for tool in apt-get dpkg-source meson ninja patch; do
  command -v "$tool" >/dev/null || { echo "build-xdpw: $tool missing; run scripts/install-deps.sh" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/zerocast-xdpw.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"

# A private deb-src list and private list/cache dirs: nothing under /etc/apt or /var/lib/apt is
# read or written, which is also why this needs no root.
mkdir -p lists/partial cache/archives/partial
cat >sources.list <<'SRC'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
SRC
APT=(apt-get -q
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=$(id -un)")
echo "build-xdpw: fetching xdg-desktop-portal-wlr=$VERSION source" >&2
"${APT[@]}" update >apt-update.log 2>&1 || { cat apt-update.log >&2; exit 1; }
"${APT[@]}" source --download-only "xdg-desktop-portal-wlr=$VERSION" >apt-source.log 2>&1 ||
  { cat apt-source.log >&2; exit 1; }
dpkg-source -x --no-check xdg-desktop-portal-wlr_"$VERSION".dsc src >/dev/null

cd src
for p in "${PATCHES[@]}"; do
  echo "build-xdpw: applying $(basename "$p")" >&2
  patch -p1 --forward --quiet <"$p"
done

echo "build-xdpw: building" >&2
# -Dman-pages=disabled: scdoc output is not needed; systemd is only used for sd-bus.
meson setup build --buildtype=release -Dman-pages=disabled -Dsd-bus-provider=libsystemd \
  >"$work/meson.log" 2>&1 || { cat "$work/meson.log" >&2; exit 1; }
ninja -C build >"$work/ninja.log" 2>&1 || { cat "$work/ninja.log" >&2; exit 1; }

mkdir -p "$OUT"
install -m 0755 build/xdg-desktop-portal-wlr "$BIN.tmp"
mv -f "$BIN.tmp" "$BIN"
echo "$hash" >"$STAMP"
echo "build-xdpw: installed $BIN" >&2
