#!/usr/bin/env bash
# Runs inside a fresh copy of a clean Debian root (scripts/test-deb.sh): installs the zerocast
# .deb from /debs with apt, checks what it installed, purges it and compares the file lists.
# Usage: inside.sh RELEASE VERSION
set -euo pipefail
REL=$1 VERSION=$2
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
step() { echo "deb-test[$REL]: $*" >&2; }
fail() { echo "deb-test[$REL]: FAIL: $*" >&2; exit 1; }

# No `-t bookworm-backports`: the bookworm package is built against backports' PipeWire 1.4,
# but the symbols it uses make dpkg-shlibdeps ask only libpipewire-0.3-0 (>= 0.3.50), so it
# must install from bookworm itself (backports is in sources.list, at its default low priority,
# as on a user's system that has it; apt does not pick it here).
apt_opts=(-y -qq --no-install-recommends)

# Test tooling, installed before the first file list so it is not counted as ours: a session
# bus (dbus-run-session, dbus-send) and man.
step "installing the test tooling (dbus, man-db, procps)"
apt-get install "${apt_opts[@]}" dbus man-db procps >/tmp/tooling.log 2>&1 ||
  { tail -20 /tmp/tooling.log >&2; fail "test tooling"; }

# Every file of the root except the package manager's own state, caches and logs (those change
# with any install; the files a package leaves behind are elsewhere).
snapshot() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /run \
    -o -path /debs -o -path /test -o -path /var/lib/dpkg -o -path /var/lib/apt \
    -o -path /var/cache -o -path /var/log -o -path /.oldroot \) -prune -o -print | sort
}
snapshot >/tmp/before.list

deb=$(ls /debs/zerocast_*"$REL"*.deb 2>/dev/null || ls /debs/zerocast_*.deb)
step "apt-get install $deb"
t0=$(date +%s%N)
# --no-install-recommends: the Recommends (portal backends, PipeWire) would pull a desktop into
# the clean root; the recording check below installs a desktop separately.
apt-get install "${apt_opts[@]}" "$deb" >/tmp/install.log 2>&1 ||
  { tail -30 /tmp/install.log >&2; fail "apt-get install $deb"; }
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
echo "FIGURE install_time_ms=$ms" >&2
echo "FIGURE installed_size_kb=$(dpkg-query -W -f '${Installed-Size}' zerocast)" >&2
echo "FIGURE depends=$(dpkg-query -W -f '${Depends}' zerocast)" >&2
echo "FIGURE libpipewire=$(dpkg-query -W -f '${Version}' 'libpipewire-0.3-0*' | head -1)" >&2
step "installed $(dpkg-query -W -f '${Package} ${Version}' zerocast) in ${ms} ms"

ver=$(zerocast --version)
[ "$ver" = "zerocast $VERSION" ] || fail "zerocast --version said '$ver', expected 'zerocast $VERSION'"
zerocast-tray --help | grep -q "tray applet" || fail "zerocast-tray --help"
export XDG_RUNTIME_DIR=/tmp/xdg
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
dbus-run-session -- zerocast probe --json >/tmp/probe.json 2>/tmp/probe.err ||
  { cat /tmp/probe.err >&2; fail "zerocast probe --json"; }
head -c1 /tmp/probe.json | grep -q '{' || fail "probe --json printed no JSON object: $(head -c 200 /tmp/probe.json)"
step "zerocast --version ($ver), zerocast-tray --help, zerocast probe --json ($(wc -c </tmp/probe.json) bytes) ran"

for page in zerocast zerocast-record zerocast-ctl zerocast-ctl-start zerocast-tray; do
  MANPAGER=cat MANWIDTH=80 man "$page" 2>/dev/null | grep -q "^NAME" || fail "man $page shows no page"
done
MANPAGER=cat MANWIDTH=80 man zerocast-record | grep -q -- "--duration" || fail "man zerocast-record lacks --duration"
for f in /usr/share/bash-completion/completions/zerocast /usr/share/zsh/vendor-completions/_zerocast \
  /usr/share/fish/vendor_completions.d/zerocast.fish; do
  [ -s "$f" ] || fail "no completion $f"
done
step "man pages (zerocast, zerocast-record, zerocast-ctl, zerocast-ctl-start, zerocast-tray) and completions are there"

svc=/usr/share/dbus-1/services/org.zerocast.Recorder1.service
exe=$(sed -n 's/^Exec=\([^ ]*\).*/\1/p' "$svc")
[ "$exe" = /usr/bin/zerocast ] || fail "$svc: Exec= is '$exe'"
dpkg -S "$exe" | grep -q '^zerocast:' || fail "$exe is not the package's"
grep -q '^ExecStart=/usr/bin/zerocast daemon' /usr/lib/systemd/user/zerocast.service || fail "unit ExecStart"
grep -q '^Exec=/usr/bin/zerocast tray' /etc/xdg/autostart/zerocast-tray.desktop || fail "autostart Exec"
# Activation: a session bus (no systemd user manager here, so the bus runs Exec= itself) starts
# the name on request; the process that owns it must be the packaged binary.
cat >/tmp/activate.sh <<'EOF'
set -e
dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
  org.freedesktop.DBus.StartServiceByName string:org.zerocast.Recorder1 uint32:0 >/dev/null
pid=$(dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
  org.freedesktop.DBus.GetConnectionUnixProcessID string:org.zerocast.Recorder1 | awk '/uint32/ {print $2}')
echo "exe=$(readlink /proc/"$pid"/exe) cmdline=$(tr '\0' ' ' </proc/"$pid"/cmdline)"
zerocast ctl status >/tmp/ctl-status.txt
EOF
act=$(dbus-run-session -- bash /tmp/activate.sh 2>/tmp/activate.err) ||
  { cat /tmp/activate.err >&2; fail "D-Bus activation of org.zerocast.Recorder1"; }
case "$act" in
  "exe=/usr/bin/zerocast cmdline=/usr/bin/zerocast daemon "*) ;;
  *) fail "the name was activated by something else: $act" ;;
esac
step "D-Bus activation started the packaged daemon ($act); zerocast ctl status: $(head -1 /tmp/ctl-status.txt)"

# The extension package: its Depends resolve to this release's gnome-shell (simulated install,
# which would pull a whole GNOME), and the folder it installs is one that shell version loads.
ext=$(ls /debs/gnome-shell-extension-zerocast_*.deb)
apt-get install -s "${apt_opts[@]}" "$ext" >/tmp/ext-sim.log 2>&1 ||
  { tail -20 /tmp/ext-sim.log >&2; fail "the extension's Depends do not resolve on $REL"; }
shell_ver=$(sed -n 's/^Inst gnome-shell (\([0-9]*\)[.~].*/\1/p' /tmp/ext-sim.log | head -1)
[ -n "$shell_ver" ] || fail "no gnome-shell in the simulated install"
rm -rf /tmp/ext && dpkg-deb -x "$ext" /tmp/ext
d=/tmp/ext/usr/share/gnome-shell/extensions/zerocast@zerocast.github.io
grep -q "\"$shell_ver\"" "$d/metadata.json" || fail "metadata.json does not list GNOME $shell_ver"
[ -s "$d/schemas/gschemas.compiled" ] || fail "no compiled schema"
[ -s "$d/extension.js" ] || fail "no extension.js"
step "extension: Depends resolve to gnome-shell $shell_ver, metadata.json lists it, schema compiled"

# Purge: nothing of ours may stay. Our files listed from the package itself, then the whole
# root compared with the list taken before the install (after autoremove took the libraries).
ours=$(dpkg-query -L zerocast | sort)
step "apt-get purge zerocast"
apt-get purge -y -qq zerocast >/tmp/purge.log 2>&1 || { tail -20 /tmp/purge.log >&2; fail "purge"; }
apt-get autoremove --purge -y -qq >>/tmp/purge.log 2>&1 || { tail -20 /tmp/purge.log >&2; fail "autoremove"; }
left=""
while read -r f; do
  [ -n "$f" ] || continue
  # Shared directories (/usr/bin, /etc/xdg/autostart, …) belong to other packages too.
  if [ -e "$f" ] && [ ! -d "$f" ]; then left+=" $f"; fi
done <<<"$ours"
[ -z "$left" ] || fail "purge left files of the package:$left"
snapshot >/tmp/after.list
comm -23 /tmp/before.list /tmp/after.list >/tmp/removed.list
comm -13 /tmp/before.list /tmp/after.list >/tmp/added.list
[ ! -s /tmp/removed.list ] || { cat /tmp/removed.list >&2; fail "purge removed files that were there before the install"; }
# A file that is new since the install is a leftover unless a Debian package that is still
# installed owns it: autoremove keeps a library that a package of the base system recommends
# or suggests (on trixie libidn2-0, which libc6 and libudev1 name, pulled in by FFmpeg's
# libraries, and its libunistring5).
unowned="" kept=""
while read -r f; do
  if owner=$(dpkg -S "$f" 2>/dev/null); then
    kept+=" ${owner%%:*}"
  else
    unowned+=" $f"
  fi
done </tmp/added.list
[ -z "$unowned" ] || fail "purge left files that no installed package owns:$unowned"
kept=$(echo "$kept" | tr ' ,' '\n\n' | sed '/^$/d' | sort -u | tr '\n' ' ')
step "purge: no file of the package left; every other file is as before the install${kept:+ (besides those of packages apt keeps installed: $kept)}"
echo "PASS" >&2
