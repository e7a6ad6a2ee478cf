#!/usr/bin/env bash
# platform.sh RELEASE [COMMAND...] — run COMMAND (default: a shell) inside a root of another
# Debian release made from Debian's packages, with this workspace at /src and the host's Rust
# toolchain. Used by scripts/test.sh to build and test zerocast against that release's
# libraries and desktops (FFmpeg 7.1, PipeWire 1.4.2, Mesa 25, GNOME 48, Plasma 6.3, sway 1.10
# on Debian 13).
#
# RELEASE: debian13 (trixie). The root is made once with debootstrap and cached under
# target/platforms/RELEASE/root (or $ZEROCAST_PLATFORM_DIR/RELEASE/root); it is made again when
# scripts/platform/RELEASE.packages changes (the list's hash is kept beside it), so a stale root
# is never used.
#
# Every mount (proc, sys, dev, a fresh devpts and /dev/shm, /src, ~/.cargo, ~/.rustup) is made
# inside a private mount namespace (unshare -m), whose root then becomes the Debian 13 root
# (pivot_root): they all vanish when the command ends, so
# `cargo clean` or `rm -rf target` can never reach through a bind mount into the host.
# Builds inside go to target/RELEASE (CARGO_TARGET_DIR=/src/target/RELEASE), next to the host's.
# Needs root (debootstrap, chroot, mounts), like the rest of scripts/test.sh's set-up.
set -euo pipefail

WS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REL="${1:?usage: platform.sh debian13 [COMMAND...]}"
shift
case "$REL" in
  debian13) SUITE=trixie ;;
  # Unstable moves: its mirror is a snapshot whose Release file may be past Valid-Until.
  debian-unstable) SUITE=sid ;;
  *) echo "platform: unknown release '$REL' (known: debian13, debian-unstable)" >&2; exit 2 ;;
esac
LIST="$WS/scripts/platform/$REL.packages"
BASE="${ZEROCAST_PLATFORM_DIR:-$WS/target/platforms}/$REL"
R="$BASE/root"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

pkgs() { sed -e 's/#.*//' "$LIST" | tr -s ' \n' '\n' | sed '/^$/d'; }
# The root depends on the package list, the suite and make_root below (between the markers),
# not on how a command is run in it: editing the run part must not remake 3 GB.
hash="$( (pkgs; echo "$SUITE"; sed -n '/^# root-recipe/,/^# end of root-recipe/p' "${BASH_SOURCE[0]}") | sha256sum | cut -c1-16)"

# The root cannot be made from the mirror (log file in $BASE named by $1). Unstable moves: a
# transition in progress can leave no installable set for a while, which is nobody's test
# failure — its part is SKIPPED with apt's reason (never a silent pass). Anything else fails.
no_root() {
  if [ "$REL" = debian-unstable ]; then
    local why
    why=$(grep -E '^(E:|W: Failure)' "$BASE/$1" | head -3 | tr '\n' ' ')
    echo "SKIPPED: $REL: the mirror gives no installable $SUITE root: ${why:-see $BASE/$1}"
    exit 0
  fi
  exit 1
}

# root-recipe (a change from here on makes a new root)
make_root() {
  command -v debootstrap >/dev/null || {
    $SUDO apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  # The mirror the host's apt uses (its URIs: line), not a commented snapshot address.
  local mirror
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n 's/^URIs: *\(http[^ ]*\/debian\)\/*$/\1/p' | head -1)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "platform: making the $REL root ($SUITE from $mirror) in $R" >&2
  local t0=$SECONDS
  $SUDO rm -rf "$R.new"
  $SUDO mkdir -p "$R.new"
  $SUDO debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$R.new" "$mirror" \
    >"$BASE/debootstrap.log" 2>&1 || { tail -20 "$BASE/debootstrap.log" >&2; no_root debootstrap.log; }
  $SUDO cp /etc/resolv.conf "$R.new/etc/" 2>/dev/null || true
  # apt inside the root runs as root without its sandbox user (the root has no _apt privileges
  # to drop in a user namespace); dpkg needs no docs.
  # A snapshot mirror (unstable's) may serve a Release file past its Valid-Until date.
  printf 'APT::Sandbox::User "root";\nAcquire::Check-Valid-Until "false";\n' |
    $SUDO tee "$R.new/etc/apt/apt.conf.d/99zerocast" >/dev/null
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\n' |
    $SUDO tee "$R.new/etc/dpkg/dpkg.cfg.d/01zerocast-nodoc" >/dev/null
  # shellcheck disable=SC2046
  $SUDO unshare -m --propagation private bash -c '
    set -e; R=$1; shift
    mount --bind /proc "$R/proc"; mount --bind /sys "$R/sys"; mount --bind /dev "$R/dev"
    export DEBIAN_FRONTEND=noninteractive
    chroot "$R" apt-get -qq update
    chroot "$R" apt-get install -y -qq --no-install-recommends "$@"
  ' bash "$R.new" $(pkgs) >"$BASE/apt.log" 2>&1 || { tail -30 "$BASE/apt.log" >&2; no_root apt.log; }
  $SUDO rm -rf "$R"
  $SUDO mv "$R.new" "$R"
  echo "$hash" | $SUDO tee "$BASE/stamp" >/dev/null
  echo "platform: $REL root ready in $((SECONDS - t0)) s" >&2
}

# end of root-recipe

$SUDO mkdir -p "$BASE"
if [ ! -x "$R/usr/bin/apt-get" ] || [ "$(cat "$BASE/stamp" 2>/dev/null)" != "$hash" ]; then
  make_root
fi

[ $# -gt 0 ] || set -- bash
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
exec $SUDO unshare -m --propagation private bash -c '
  set -e
  R=$1 WS=$2 CH=$3 RH=$4 REL=$5; shift 5
  # The root a mount point of its own: inside, "/" then takes propagation changes
  # (`unshare -m` in the test desktop makes it private, which fails on a plain directory).
  mount --bind "$R" "$R"
  mount --bind /proc "$R/proc"; mount --bind /sys "$R/sys"; mount --bind /dev "$R/dev"
  mount -t devpts devpts "$R/dev/pts" -o newinstance,ptmxmode=0666
  mount -t tmpfs tmpfs "$R/dev/shm" -o mode=1777
  mount -t tmpfs tmpfs "$R/tmp" -o mode=1777
  mkdir -p "$R/src" "$R/opt/cargo" "$R/opt/rustup"
  mount --bind "$WS" "$R/src"
  mount --bind "$CH" "$R/opt/cargo"; mount --bind "$RH" "$R/opt/rustup"
  # pivot_root, not chroot: the kernel refuses user namespaces to a chrooted process (sway
  # runs as root inside `unshare --user`), and here the root is the namespace'"'"'s own.
  mkdir -p "$R/.oldroot"
  cd "$R"
  pivot_root . .oldroot
  umount -l /.oldroot
  cd /
  exec /usr/bin/env -i \
    HOME=/root PATH=/opt/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/opt/cargo RUSTUP_HOME=/opt/rustup CARGO_TARGET_DIR="/src/target/$REL" \
    TERM="${TERM:-dumb}" LANG=C.UTF-8 ZEROCAST_PLATFORM="$REL" \
    ${CARGO_TERM_COLOR:+CARGO_TERM_COLOR=$CARGO_TERM_COLOR} \
    bash -c "cd /src && exec \"\$@\"" bash "$@"
' bash "$R" "$WS" "$CARGO_HOME" "$RUSTUP_HOME" "$REL" "$@"
