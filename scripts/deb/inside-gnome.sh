#!/usr/bin/env bash
# Runs inside a fresh copy of a clean Debian root (scripts/test-deb.sh): installs the
# gnome-shell-extension-zerocast .deb with apt (its Depends bring that release's gnome-shell),
# starts a headless GNOME session (zerocast-testdesk --gnome, test tooling from /tools) and
# enables the extension from the folder the package installed: GNOME must report it loaded
# from /usr/share/gnome-shell/extensions and running.
# Usage: inside-gnome.sh RELEASE
set -euo pipefail
REL=$1
UUID=zerocast@zerocast.github.io
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
step() { echo "deb-test[$REL] gnome: $*" >&2; }
fail() { echo "deb-test[$REL] gnome: FAIL: $*" >&2; exit 1; }
apt_opts=(-y -qq --no-install-recommends)
if [ "$REL" = bookworm ]; then apt_opts+=(-t bookworm-backports); fi

step "apt-get install the extension package (pulls gnome-shell) and the session's services"
t0=$SECONDS
# What zerocast-testdesk's GNOME session starts besides the shell: its own dbus-daemon,
# PipeWire/WirePlumber, dconf-service (GSettings writes reach the shell), gsettings.
apt-get install "${apt_opts[@]}" /debs/gnome-shell-extension-zerocast_*.deb dbus pipewire \
  wireplumber dconf-service libglib2.0-bin ffmpeg procps >/tmp/gnome.log 2>&1 ||
  { tail -20 /tmp/gnome.log >&2; fail "apt-get install the extension"; }
step "installed gnome-shell $(dpkg-query -W -f '${Version}' gnome-shell) in $((SECONDS - t0)) s"
[ -f "/usr/share/gnome-shell/extensions/$UUID/metadata.json" ] || fail "no extension folder"

# Through org.gnome.Shell's Extensions interface, as tests/gnome_extension.rs does: state 1 is
# ENABLED (the shell loaded it and enable() ran without throwing).
cat >/tmp/enable.sh <<EOS
set -u
ext() { dbus-send --session --print-reply --dest=org.gnome.Shell /org/gnome/Shell "org.gnome.Shell.Extensions.\$1" string:$UUID | tr -s ' \n' ' '; }
for _ in \$(seq 40); do ext EnableExtension 2>/dev/null | grep -q 'boolean true' && break; sleep 0.5; done
for _ in \$(seq 40); do
  info=\$(ext GetExtensionInfo)
  state=\$(echo "\$info" | grep -o 'string "state" variant double [0-9.]*' | awk '{print \$NF}')
  if [ "\$state" = 1 ]; then
    echo "state=\$state \$(echo "\$info" | grep -o 'string "path" variant string "[^"]*"')"
    echo "errors: \$(ext GetExtensionErrors)"
    exit 0
  fi
  sleep 0.5
done
echo "not enabled: \$info"; echo "errors: \$(ext GetExtensionErrors)"; exit 1
EOS
out=$(/tools/zerocast-testdesk --gnome --no-portal --no-painter --timeout 180 -- bash /tmp/enable.sh 2>/tmp/desk.err) ||
  { echo "$out" >&2; tail -30 /tmp/desk.err >&2; fail "GNOME did not run the extension"; }
echo "$out" | grep -q "\"path\" variant string \"/usr/share/gnome-shell/extensions/$UUID\"" ||
  fail "GNOME loaded the extension from elsewhere: $out"
echo "$out" | grep -q 'errors: method return.* array \[ \]' || fail "the extension reported errors: $out"
step "GNOME $(gnome-shell --version | awk '{print $3}') runs the packaged extension: $(echo "$out" | head -1)"
echo PASS >&2
