#!/usr/bin/env bash
# The Debian 13 part of scripts/test.sh, run inside the Debian 13 root by
# `scripts/platform.sh debian13 scripts/platform/test-debian13.sh [cargo test args]`:
# builds the workspace against Debian 13's FFmpeg 7.1 / PipeWire 1.4.2 / Mesa 25 (into
# target/debian13) and runs every test there, on Debian 13's desktops (GNOME 48, sway 1.10,
# Plasma 6.3) — the same test binaries' code as on Debian 12, other libraries and compositors.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ "${ZEROCAST_PLATFORM:-}" = debian13 ] || {
  echo "test-debian13: run me through scripts/platform.sh debian13" >&2
  exit 2
}
# xdg-desktop-portal-wlr 0.7.1 (Debian 13's) has both bugs the patches fix, and the mirror
# serves no Debian 13 source packages: the patched 0.7.0 source is built against this root's
# libraries (into target/debian13/xdpw).
./scripts/build-xdpw.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
echo "test-debian13: $(. /etc/os-release; echo "$PRETTY_NAME"), $(ffmpeg -version | head -1 | cut -d' ' -f1-3)," \
  "$(gnome-shell --version), $(sway --version), PipeWire $(pipewire --version | sed -n 's/.*libpipewire \([0-9.]*\).*/\1/p')" >&2
cargo build --workspace --all-targets \
  --features zerocast-interop/gpu-checks,zerocast-recorder/gpu-checks
cargo test --no-fail-fast --workspace --all-targets \
  --features zerocast-interop/gpu-checks,zerocast-recorder/gpu-checks "$@"
