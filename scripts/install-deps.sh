#!/usr/bin/env bash
# Installs every system package zerocast needs to build, run and test on Debian 12 (bookworm).
# Idempotent: exits quickly when everything is present. Uses sudo when not root.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

BACKPORTS=(pipewire pipewire-bin wireplumber libspa-0.2-modules libpipewire-0.3-0
  libpipewire-0.3-dev libspa-0.2-dev mesa-vulkan-drivers libgbm-dev libdrm-dev gstreamer1.0-pipewire
  pipewire-pulse)
BOOKWORM=(pkg-config build-essential libclang-dev clang
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev ffmpeg
  libxkbcommon-dev libwayland-dev wayland-protocols libvulkan-dev libvulkan1 vulkan-tools
  dbus dbus-daemon sway swaybg grim xdg-desktop-portal wf-recorder
  meson ninja-build libinih-dev libsystemd-dev scdoc dpkg-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-tools
  procps psmisc util-linux time
  dunst haskell-status-notifier-item-utils xdg-utils file desktop-file-utils
  gnome-shell mutter gjs xdg-desktop-portal-gnome dconf-service libglib2.0-bin zip
  kwin-wayland xdg-desktop-portal-kde qtwayland5)

missing=()
# The GNOME extension is linted with eslint (npm); any Node >= 18 will do.
if ! command -v npm >/dev/null; then BOOKWORM+=(nodejs npm); fi
for p in "${BACKPORTS[@]}" "${BOOKWORM[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# The backports versions matter (PipeWire 1.4 for pipewire-rs v1_2_0, Mesa 25 for lavapipe dma-buf).
pwver=$(dpkg-query -W -f='${Version}' libpipewire-0.3-dev 2>/dev/null || true)
case "$pwver" in 1.*) ;; *) missing+=(libpipewire-0.3-dev) ;; esac

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2

if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  $SUDO tee /etc/apt/sources.list.d/zerocast-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${BACKPORTS[@]}"
$SUDO apt-get install -y -qq --no-install-recommends "${BOOKWORM[@]}"
