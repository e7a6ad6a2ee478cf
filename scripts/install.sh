#!/usr/bin/env bash
# Installs zerocast as a user or a package would: the binaries, D-Bus activation file and
# systemd user unit (with the right paths in them), the .desktop files and the icons.
#
#   scripts/install.sh --user [--autostart]           # ~/.local/bin, ~/.local/share, ~/.config
#   scripts/install.sh [--prefix /usr/local]          # system-wide (root), default /usr/local
#   DESTDIR=pkg scripts/install.sh --prefix /usr      # packagers: staged under $DESTDIR
#   scripts/install.sh --user --uninstall             # the same options remove every file again
#
# Options:
#   --user            install for this user (XDG dirs under $HOME)
#   --prefix DIR      install under DIR (default /usr/local); autostart goes to
#                     $SYSCONFDIR/xdg/autostart (SYSCONFDIR: /etc, or --sysconfdir)
#   --destdir DIR     stage under DIR (also read from $DESTDIR); paths inside files omit it
#   --autostart       also start the tray at login (opt-in)
#   --binaries DIR    take zerocast and zerocast-tray from DIR instead of building them
#                     (`cargo build --release`)
#   --uninstall       remove what these options would install
set -euo pipefail

usage() { sed -n '2,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=system prefix=/usr/local sysconfdir="" destdir="${DESTDIR:-}" autostart=0 bins="" uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --user) mode=user ;;
    --prefix) prefix="${2:?--prefix needs a directory}"; shift ;;
    --prefix=*) prefix="${1#*=}" ;;
    --sysconfdir) sysconfdir="${2:?}"; shift ;;
    --destdir) destdir="${2:?--destdir needs a directory}"; shift ;;
    --destdir=*) destdir="${1#*=}" ;;
    --autostart) autostart=1 ;;
    --binaries) bins="${2:?--binaries needs a directory}"; shift ;;
    --uninstall) uninstall=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [ "$mode" = user ]; then
  : "${HOME:?HOME is not set}"
  bindir="$HOME/.local/bin"
  datadir="${XDG_DATA_HOME:-$HOME/.local/share}"
  confdir="${XDG_CONFIG_HOME:-$HOME/.config}"
  unitdir="$confdir/systemd/user"
  autostartdir="$confdir/autostart"
else
  case "$prefix" in /*) ;; *) echo "install: --prefix must be absolute" >&2; exit 2 ;; esac
  prefix="${prefix%/}"
  bindir="$prefix/bin"
  datadir="$prefix/share"
  unitdir="$prefix/lib/systemd/user"
  autostartdir="${sysconfdir:-/etc}/xdg/autostart"
fi
dbusdir="$datadir/dbus-1/services"
appdir="$datadir/applications"
icondir="$datadir/icons/hicolor/scalable"

# Every file this script can install (the uninstaller removes exactly these).
files=(
  "$bindir/zerocast"
  "$bindir/zerocast-tray"
  "$dbusdir/org.zerocast.Recorder1.service"
  "$unitdir/zerocast.service"
  "$appdir/org.zerocast.Zerocast.desktop"
  "$autostartdir/zerocast-tray.desktop"
  "$icondir/apps/zerocast.svg"
)
for s in idle recording paused unavailable; do files+=("$icondir/status/zerocast-$s.svg"); done
# Names earlier versions installed: removed by install and uninstall alike (zerocast.desktop is
# now org.zerocast.Zerocast.desktop, named after the app id).
legacy=("$appdir/zerocast.desktop")

remove_legacy() {
  for f in "${legacy[@]}"; do
    if [ -e "$destdir$f" ] || [ -L "$destdir$f" ]; then
      rm -f "$destdir$f" && echo "removed $destdir$f (an earlier version's name)"
    fi
  done
}

if [ "$uninstall" = 1 ]; then
  remove_legacy
  for f in "${files[@]}"; do
    if [ -e "$destdir$f" ] || [ -L "$destdir$f" ]; then
      rm -f "$destdir$f" && echo "removed $destdir$f"
    fi
  done
  exit 0
fi

if [ -z "$bins" ]; then
  command -v cargo >/dev/null || { echo "install: cargo not found (or pass --binaries DIR)" >&2; exit 1; }
  (cd "$repo" && cargo build --release -p zerocast -p zerocast-tray)
  bins="${CARGO_TARGET_DIR:-$repo/target}/release"
fi
for b in zerocast zerocast-tray; do
  [ -x "$bins/$b" ] || { echo "install: $bins/$b not found" >&2; exit 1; }
done

put() { # put SRC DEST MODE: copy, creating the directory
  install -D -m "$3" "$1" "$destdir$2"
  echo "installed $destdir$2"
}
# Like put, with `Exec=` lines pointing at the installed binary (paths without DESTDIR).
put_exec() {
  local tmp
  tmp="$(mktemp)"
  sed -e "s|^Exec=/usr/bin/zerocast |Exec=$bindir/zerocast |" \
      -e "s|^ExecStart=/usr/bin/zerocast |ExecStart=$bindir/zerocast |" \
      -e "s|^Exec=zerocast |Exec=$bindir/zerocast |" "$1" >"$tmp"
  put "$tmp" "$2" 0644
  rm -f "$tmp"
}

remove_legacy
put "$bins/zerocast" "$bindir/zerocast" 0755
put "$bins/zerocast-tray" "$bindir/zerocast-tray" 0755
put_exec "$repo/data/org.zerocast.Recorder1.service" "$dbusdir/org.zerocast.Recorder1.service"
put_exec "$repo/data/zerocast.service" "$unitdir/zerocast.service"
put_exec "$repo/data/org.zerocast.Zerocast.desktop" "$appdir/org.zerocast.Zerocast.desktop"
if [ "$autostart" = 1 ]; then
  put_exec "$repo/data/zerocast-tray.desktop" "$autostartdir/zerocast-tray.desktop"
fi
put "$repo/data/icons/hicolor/scalable/apps/zerocast.svg" "$icondir/apps/zerocast.svg" 0644
for s in idle recording paused unavailable; do
  put "$repo/data/icons/hicolor/scalable/status/zerocast-$s.svg" "$icondir/status/zerocast-$s.svg" 0644
done

# A live session picks the new unit up now; a staged (DESTDIR) install leaves that to the package.
if [ -z "$destdir" ] && [ "$mode" = user ] && command -v systemctl >/dev/null; then
  systemctl --user daemon-reload 2>/dev/null || true
fi
if [ "$mode" = user ]; then
  case ":$PATH:" in *":$bindir:"*) ;; *) echo "note: $bindir is not in PATH" >&2 ;; esac
fi
