#!/usr/bin/env bash
# The main job: records ~5 s of the screen and prints where the file is and what ffprobe says.
# In a Wayland session it records your desktop through xdg-desktop-portal; without one it brings
# up the bundled headless desktop (sway + PipeWire + portal) and records that.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/install-deps.sh
cargo build --release --workspace --bins
out="${1:-$PWD/target/demo/zerocast-demo.mkv}"
mkdir -p "$(dirname "$out")"
rec=(./target/release/zerocast record --duration 5 --overwrite -o "$out")
if [ -n "${WAYLAND_DISPLAY:-}" ] && [ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  "${rec[@]}"
else
  echo "record-demo: no Wayland session; using the bundled headless desktop" >&2
  ./scripts/build-xdpw.sh
  ./target/release/zerocast-testdesk -- "${rec[@]}"
fi
echo "recorded: $out"
ffprobe -v error -show_entries stream=codec_name,width,height,pix_fmt,avg_frame_rate:format=duration,size \
  -of default=noprint_wrappers=1 "$out"
