#!/usr/bin/env bash
# Runs inside a fresh copy of a clean Debian root (scripts/test-deb.sh), separate from the
# install/purge run so that run stays clean: installs a headless sway desktop from Debian, the
# zerocast .deb, and records 2 s with the installed /usr/bin/zerocast inside the test desktop
# (zerocast-testdesk and the patched xdg-desktop-portal-wlr, test tooling, from /tools).
# Usage: inside-record.sh RELEASE
set -euo pipefail
REL=$1
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
step() { echo "deb-test[$REL] record: $*" >&2; }
fail() { echo "deb-test[$REL] record: FAIL: $*" >&2; exit 1; }
apt_opts=(-y -qq --no-install-recommends)
if [ "$REL" = bookworm ]; then apt_opts+=(-t bookworm-backports); fi

step "installing the test desktop (sway, PipeWire, WirePlumber, xdg-desktop-portal, ffmpeg)"
# xdg-desktop-portal-wlr for the libraries of the patched build in /tools.
apt-get install "${apt_opts[@]}" sway pipewire pipewire-bin wireplumber libspa-0.2-modules \
  xdg-desktop-portal xdg-desktop-portal-wlr dbus ffmpeg procps >/tmp/desk.log 2>&1 ||
  { tail -20 /tmp/desk.log >&2; fail "test desktop packages"; }
deb=$(ls /debs/zerocast_*.deb)
apt-get install "${apt_opts[@]}" "$deb" >/tmp/install.log 2>&1 ||
  { tail -20 /tmp/install.log >&2; fail "apt-get install $deb"; }
export ZEROCAST_XDPW=/tools/xdg-desktop-portal-wlr
rm -f /tmp/x.mkv
/tools/zerocast-testdesk --timeout 120 -- /usr/bin/zerocast record --duration 2 -o /tmp/x.mkv \
  >/tmp/record.log 2>&1 || { tail -30 /tmp/record.log >&2; fail "recording in the test desktop"; }
info=$(ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0 /tmp/x.mkv) ||
  fail "ffprobe cannot read the recording"
frames=${info##*,}
[ "${frames:-0}" -gt 0 ] 2>/dev/null || fail "the recording decodes to no frames ($info)"
step "/usr/bin/zerocast recorded 2 s in the sway test desktop: $info (codec,width,height,frames)"
echo PASS >&2
