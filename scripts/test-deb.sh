#!/usr/bin/env bash
# test-deb.sh [RELEASE...] — the Debian packages (scripts/package-deb.sh) tested on clean
# systems, for each release (default: bookworm trixie):
#   - a clean root of that release made with debootstrap (minbase, cached under
#     target/deb-test/RELEASE/base) and, for each run, a fresh overlay on it, so the install
#     sees nothing earlier runs did;
#   - inside (scripts/deb/inside.sh): `apt-get install ./zerocast_….deb` with the dependencies
#     from Debian, `zerocast --version`, `zerocast probe --json`, `man zerocast`, the D-Bus
#     activation file and a bus activation that starts the packaged daemon, the extension
#     package's Depends for that release's GNOME Shell, then `apt-get purge` + autoremove: no
#     file of the package may stay, and every file new since the install must belong to a
#     Debian package apt keeps installed;
#   - in a second fresh root (scripts/deb/inside-record.sh): a sway desktop from Debian, the
#     package, and a 2 s recording by /usr/bin/zerocast in the test desktop, decoded by ffprobe;
#   - in a third (scripts/deb/inside-gnome.sh): the extension package with the gnome-shell its
#     Depends bring, enabled in a headless GNOME session: loaded from /usr/share, no errors;
#   - lintian of that release (in a clean root) on every package (no errors; each warning must
#     be listed, with its reason, in scripts/deb/lintian-warnings);
#   - two packagings of the same build byte-identical.
# The recording and GNOME runs use test tooling built for the release (zerocast-testdesk,
# zerocast-painter, the patched xdpw of scripts/build-xdpw.sh) from $ZEROCAST_DEB_TOOLS_TARGET
# (default: this target/, where scripts/test.sh builds them); without it they print SKIPPED.
# Builds the binaries first unless target/deb/RELEASE has them (ZEROCAST_DEB_REBUILD=1: always),
# then packages them.
# Slow (a release build per release, ~15 min each on 2 cores, then 2-4 min per release), so not
# part of scripts/test.sh; CI (.ci/run) runs it after. Needs root (debootstrap, mounts) and
# the Debian mirror. Every run's writes go to memory (tmpfs under the overlay).
set -euo pipefail

WS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$WS/target/deb/out"
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$WS/Cargo.toml")"
[ $# -gt 0 ] || set -- bookworm trixie
skipped() { echo "SKIPPED: test-deb $1: $2" >&2; }
if [ "$(id -u)" != 0 ]; then skipped all "needs root (debootstrap, mounts)"; exit 0; fi
# debootstrap from Debian (as scripts/install-deps.sh does for the rest); lintian runs in a
# clean root of each release.
for tool in debootstrap; do
  command -v "$tool" >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >/dev/null ||
    { skipped all "$tool is not installed and apt-get could not install it"; exit 0; }
done
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
  sed -n 's/^URIs: *\(http[^ ]*\/debian\)\/*$/\1/p' | head -1)
mirror=${mirror:-http://deb.debian.org/debian}

debn() { case "$1" in bookworm) echo 12 ;; trixie) echo 13 ;; *) echo "unknown release $1" >&2; exit 2 ;; esac; }

# A minbase root with the release's apt lists, made once. Nothing of zerocast's or the test's.
base_root() { # base_root RELEASE -> prints the path
  local rel=$1 dir="$WS/target/deb-test/$1" stamp="v1 $1 $mirror"
  local b="$dir/base"
  if [ ! -x "$b/usr/bin/apt-get" ] || [ "$(cat "$dir/stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "test-deb: making the clean $rel root in $b" >&2
    mkdir -p "$dir"
    rm -rf "$b" "$b.new"
    debootstrap --variant=minbase "$rel" "$b.new" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
      { tail -20 "$dir/debootstrap.log" >&2; exit 1; }
    cp /etc/resolv.conf "$b.new/etc/"
    if [ "$rel" = bookworm ]; then
      # PipeWire 1.4 for the bookworm package comes from backports (README: Debian packages).
      echo "deb $mirror bookworm-backports main" >"$b.new/etc/apt/sources.list.d/backports.list"
    fi
    # apt as root without its _apt sandbox user, as in scripts/platform.sh.
    echo 'APT::Sandbox::User "root";' >"$b.new/etc/apt/apt.conf.d/99zerocast-test"
    unshare -m --propagation private bash -c '
      set -e; R=$1
      mount --bind /proc "$R/proc"; mount --bind /sys "$R/sys"; mount --bind /dev "$R/dev"
      chroot "$R" apt-get -qq update
    ' bash "$b.new" >>"$dir/debootstrap.log" 2>&1 || { tail -20 "$dir/debootstrap.log" >&2; exit 1; }
    mv "$b.new" "$b"
    echo "$stamp" >"$dir/stamp"
  elif [ -n "$(find "$dir/stamp" -mtime +0)" ]; then
    # Lists older than a day may name package versions the mirror no longer has (a security
    # update replaces them): refresh them, the rest of the clean root stays.
    echo "test-deb: refreshing the $rel root's apt lists" >&2
    unshare -m --propagation private bash -c '
      set -e; R=$1
      mount --bind /proc "$R/proc"; mount --bind /sys "$R/sys"; mount --bind /dev "$R/dev"
      chroot "$R" apt-get -qq update
    ' bash "$b" >>"$dir/debootstrap.log" 2>&1 || { tail -20 "$dir/debootstrap.log" >&2; exit 1; }
    touch "$dir/stamp"
  fi
  echo "$b"
}

# run_clean RELEASE COMMAND...: COMMAND inside a fresh overlay on the clean root (written
# changes go to a scratch upper dir, dropped afterwards), with /debs ($OUT), /test
# (scripts/deb) and, if $TOOLS is set, /tools read-only.
run_clean() {
  local rel=$1; shift
  local b scratch
  b=$(base_root "$rel")
  scratch="$WS/target/deb-test/$rel/run"
  rm -rf "$scratch"
  mkdir -p "$scratch"
  unshare -m --propagation private bash -c '
    set -e
    B=$1 S=$2 DEBS=$3 TEST=$4 TOOLS=$5; shift 5
    # The overlay writes to memory, not the disk: a run installs a few hundred MB (the
    # libraries, a desktop) and all of it goes away with the namespace.
    mount -t tmpfs -o size=6g,mode=0755 tmpfs "$S"
    mkdir -p "$S/upper" "$S/work" "$S/merged"
    M=$S/merged
    mount -t overlay overlay -o "lowerdir=$B,upperdir=$S/upper,workdir=$S/work" "$M"
    mount --bind /proc "$M/proc"; mount --bind /sys "$M/sys"; mount --bind /dev "$M/dev"
    mount -t devpts devpts "$M/dev/pts" -o newinstance,ptmxmode=0666
    mount -t tmpfs tmpfs "$M/dev/shm" -o mode=1777
    mount -t tmpfs tmpfs "$M/tmp" -o mode=1777
    mkdir -p "$M/debs" "$M/test" "$M/run"
    mount -t tmpfs tmpfs "$M/run"
    mount --bind -o ro "$DEBS" "$M/debs"
    mount --bind -o ro "$TEST" "$M/test"
    if [ -n "$TOOLS" ]; then mkdir -p "$M/tools"; mount --bind -o ro "$TOOLS" "$M/tools"; fi
    # pivot_root as in scripts/platform.sh (user namespaces work inside, unlike a chroot).
    mkdir -p "$M/.oldroot"
    cd "$M"
    pivot_root . .oldroot
    umount -l /.oldroot
    cd /
    exec /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
  ' bash "$b" "$scratch" "$OUT" "$WS/scripts/deb" "${TOOLS:-}" "$@"
  local rc=$?
  rm -rf "$scratch"
  return $rc
}

# lintian_check RELEASE: lintian of that release (in a fresh clean root) on this release's
# packages in $OUT. Errors fail; each warning must be listed in scripts/deb/lintian-warnings.
lintian_check() {
  local rel=$1 out bad=0
  out=$(run_clean "$rel" bash /test/inside-lintian.sh) || { echo "test-deb: FAIL: lintian did not run" >&2; return 1; }
  if [ -n "$out" ]; then echo "$out" | sed 's/^/  lintian: /' >&2; else echo "test-deb[$rel]: lintian: no tags" >&2; fi
  if echo "$out" | grep -q '^E: '; then
    echo "test-deb: FAIL: lintian errors" >&2
    bad=1
  fi
  while read -r tag; do
    [ -n "$tag" ] || continue
    if ! grep -q "^$tag " "$WS/scripts/deb/lintian-warnings"; then
      echo "test-deb: FAIL: lintian warning $tag is not in scripts/deb/lintian-warnings" >&2
      bad=1
    fi
  done < <(echo "$out" | sed -n 's/^W: [^:]*: \([^ ]*\).*/\1/p' | sort -u)
  return $bad
}

failed=()
for rel in "$@"; do
  n=$(debn "$rel")
  t0=$SECONDS
  # Always through cargo: it rebuilds what changed and nothing else (a build skipped because
  # binaries existed once tested stale ones).
  "$WS/scripts/package-deb.sh" "$rel" ||
    { echo "test-deb: FAIL: build" >&2; failed+=("$rel"); continue; }
  # Packaged twice from the same build, into out/ and out-repro/: byte-identical.
  ZEROCAST_DEB_NO_BUILD=1 "$WS/scripts/package-deb.sh" "$rel" >/dev/null 2>&1 ||
    { echo "test-deb: FAIL: packaging" >&2; failed+=("$rel"); continue; }
  debs=("$OUT"/zerocast_"$VERSION"-1+deb"$n"_*.deb "$OUT"/gnome-shell-extension-zerocast_"$VERSION"-1+deb"$n"_all.deb)
  for d in "${debs[@]}"; do
    [ -f "$d" ] || { echo "test-deb: FAIL: $d was not built" >&2; failed+=("$rel"); continue 2; }
    echo "FIGURE size $(basename "$d") $(stat -c %s "$d") bytes" >&2
  done

  rm -rf "$WS/target/deb/out-repro"
  ZEROCAST_DEB_NO_BUILD=1 ZEROCAST_DEB_OUT=out-repro "$WS/scripts/package-deb.sh" "$rel" >/dev/null 2>&1 ||
    { echo "test-deb: FAIL: second packaging" >&2; failed+=("$rel"); continue; }
  for d in "${debs[@]}"; do
    if cmp -s "$d" "$WS/target/deb/out-repro/$(basename "$d")"; then
      echo "test-deb[$rel]: $(basename "$d") reproduced byte for byte" >&2
    else
      echo "test-deb: FAIL: $(basename "$d") differs between two packagings" >&2
      failed+=("$rel")
    fi
  done

  # The clean-root runs see only this release's packages.
  mkdir -p "$WS/target/deb/test-$rel"
  rm -f "$WS/target/deb/test-$rel"/*.deb
  cp "${debs[@]}" "$WS/target/deb/test-$rel/"
  OUT="$WS/target/deb/test-$rel" lintian_check "$rel" || failed+=("$rel")
  OUT="$WS/target/deb/test-$rel" run_clean "$rel" bash /test/inside.sh "$rel" "$VERSION" ||
    failed+=("$rel")

  # The recording, in a second fresh root (the desktop packages stay out of the purge check).
  # Test tooling built for that release: zerocast-testdesk, zerocast-painter (cargo build -p
  # zerocast-testdesk, in the Debian 13 root for trixie) and the patched xdpw
  # (scripts/build-xdpw.sh); from $ZEROCAST_DEB_TOOLS_TARGET (default: this target/).
  tt="${ZEROCAST_DEB_TOOLS_TARGET:-$WS/target}"
  case "$rel" in bookworm) sub="" ;; trixie) sub="debian13/" ;; esac
  tools="$WS/target/deb/tools-$rel"
  rm -rf "$tools"
  mkdir -p "$tools"
  if cp "$tt/${sub}debug/zerocast-testdesk" "$tt/${sub}debug/zerocast-painter" \
    "$tt/${sub}xdpw/xdg-desktop-portal-wlr" "$tools/" 2>/dev/null; then
    OUT="$WS/target/deb/test-$rel" TOOLS="$tools" run_clean "$rel" bash /test/inside-record.sh "$rel" ||
      failed+=("$rel")
    # The extension in a real GNOME Shell of that release, from the folder the package made
    # (a third fresh root: GNOME is large). ZEROCAST_DEB_GNOME=0 leaves it out.
    if [ "${ZEROCAST_DEB_GNOME:-1}" = 1 ]; then
      OUT="$WS/target/deb/test-$rel" TOOLS="$tools" run_clean "$rel" bash /test/inside-gnome.sh "$rel" ||
        failed+=("$rel")
    else
      skipped "$rel GNOME extension" "ZEROCAST_DEB_GNOME=0"
    fi
  else
    skipped "$rel recording" "no zerocast-testdesk/zerocast-painter in $tt/${sub}debug or no patched xdpw in $tt/${sub}xdpw"
    skipped "$rel GNOME extension" "no zerocast-testdesk in $tt/${sub}debug"
  fi
  echo "test-deb[$rel]: $((SECONDS - t0)) s" >&2
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "test-deb: FAILED: $(printf '%s\n' "${failed[@]}" | sort -u | tr '\n' ' ')" >&2
  exit 1
fi
echo "test-deb: all passed ($*)" >&2
