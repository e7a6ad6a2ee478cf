#!/usr/bin/env bash
# A platform part of scripts/test.sh, run inside that platform's root by
# `scripts/platform.sh RELEASE scripts/platform/test-in-root.sh [cargo test args]`:
# builds the workspace against the root's FFmpeg / PipeWire / Mesa (into target/RELEASE) and
# runs every test there, on the root's desktops — the same test code as on Debian 12, other
# libraries and compositors.
#   debian13:        FFmpeg 7.1, PipeWire 1.4.2, GNOME 48, sway 1.10, Plasma 6.3
#   debian-unstable: FFmpeg 9, PipeWire 1.6, GNOME 51, sway 1.12, Plasma 6.7 (a moving target)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ -n "${ZEROCAST_PLATFORM:-}" ] || {
  echo "test-in-root: run me through scripts/platform.sh RELEASE" >&2
  exit 2
}
case "$ZEROCAST_PLATFORM" in
  debian-unstable)
    # Unstable's own xdg-desktop-portal-wlr (0.8) casts from SHM without a GPU and handles
    # persist_mode: it runs unpatched, as users get it.
    export ZEROCAST_XDPW=/usr/libexec/xdg-desktop-portal-wlr ;;
  *)
    # xdg-desktop-portal-wlr 0.7.1 (Debian 13's) has both bugs the patches fix, and the mirror
    # serves no Debian 13 source packages: the patched 0.7.0 source is built against this
    # root's libraries (into target/RELEASE/xdpw).
    ./scripts/build-xdpw.sh ;;
esac
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
echo "test-in-root: $(. /etc/os-release; echo "$PRETTY_NAME"), $(ffmpeg -version | head -1 | cut -d' ' -f1-3)," \
  "$(gnome-shell --version), $(sway --version), PipeWire $(pipewire --version | sed -n 's/.*libpipewire \([0-9.]*\).*/\1/p')," \
  "xdg-desktop-portal $(dpkg-query -W -f='${Version}' xdg-desktop-portal)" >&2
cargo build --workspace --all-targets \
  --features zerocast-interop/gpu-checks,zerocast-recorder/gpu-checks
cargo test --no-fail-fast --workspace --all-targets \
  --features zerocast-interop/gpu-checks,zerocast-recorder/gpu-checks "$@"
