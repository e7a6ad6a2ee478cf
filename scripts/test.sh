#!/usr/bin/env bash
# Runs every test, on three platforms, then the Debian packages of Debian 12 and 13:
#   debian12  this machine (Debian 12: FFmpeg 5.1, GNOME 43, sway 1.7, Plasma 5.27)
#   debian13  a Debian 13 root made from Debian's packages (FFmpeg 7.1, GNOME 48, sway 1.10,
#             Plasma 6.3), cached under target/platforms/ (scripts/platform.sh)
#   debian-unstable  the same from unstable (FFmpeg 9, GNOME 51, sway 1.12, Plasma 6.7,
#             PipeWire 1.6); SKIPPED with apt's reason when the mirror has no installable set
#             (docs/SID-NOTES.md)
#   packages  scripts/test-deb.sh: the .debs of both releases built twice (identical), lintian,
#             installed into clean roots, checked (incl. a recording with the test tooling the
#             two parts above built) and purged
# Installs system packages when missing, builds the patched xdg-desktop-portal-wlr the test
# desktop uses, lints the GNOME Shell extension (eslint with GNOME's configuration), then
# `cargo test` for the whole workspace on each platform. The end-to-end tests bring up their own
# headless desktops. Every part runs even when one before it failed; the exit status is non-zero
# if any did. Arguments go to `cargo test` on each platform (e.g. a test name filter).
#
# ZEROCAST_TEST_PLATFORMS="debian12 debian13 debian-unstable packages" (the default) picks the
# parts.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PLATFORMS="${ZEROCAST_TEST_PLATFORMS:-debian12 debian13 debian-unstable packages}"
FEATURES=zerocast-interop/gpu-checks,zerocast-recorder/gpu-checks

set -e
./scripts/install-deps.sh
if ! command -v cargo >/dev/null; then
  echo "test: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
set +e

declare -A took status
log_dir="$(mktemp -d "${TMPDIR:-/tmp}/zerocast-test.XXXXXX")"

run_part() {
  local name=$1
  shift
  local t0=$SECONDS
  echo "=== test: $name ===" >&2
  # The suite's output goes to the terminal and to a log, so the skips can be counted after.
  "$@" 2>&1 | tee "$log_dir/$name.log"
  status[$name]=${PIPESTATUS[0]}
  took[$name]=$((SECONDS - t0))
}

debian12() {
  set -e
  ./scripts/build-xdpw.sh
  ./shell/gnome/lint.sh
  # Vulkan on lavapipe wants a runtime dir; the desktops make their own.
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
  chmod 700 "$XDG_RUNTIME_DIR"
  # The GPU check binaries (run on the GPU machine by scripts/gpu/) are behind a feature so
  # the shipped build leaves them out; build them here so they keep compiling.
  # --no-fail-fast: every failing test binary is reported, not only the first.
  cargo test --no-fail-fast --workspace --all-targets --features "$FEATURES" "$@"
}

for p in $PLATFORMS; do
  case "$p" in
    debian12) run_part debian12 debian12 "$@" ;;
    debian13 | debian-unstable)
      run_part "$p" ./scripts/platform.sh "$p" scripts/platform/test-in-root.sh "$@" ;;
    # Not filtered by a test name: the packages are tested whole.
    packages) run_part packages ./scripts/test-deb.sh ;;
    *) echo "test: unknown part '$p' (debian12, debian13, debian-unstable, packages)" >&2; exit 2 ;;
  esac
done

rc=0
echo "=== test: summary ===" >&2
for p in $PLATFORMS; do
  skips=$(grep -c '^SKIPPED' "$log_dir/$p.log" || true)
  passed=$(grep -o '^test result: ok. [0-9]* passed' "$log_dir/$p.log" | awk '{s+=$4} END {print s+0}')
  failed=$(grep -o '[0-9]* failed;' "$log_dir/$p.log" | awk '{s+=$1} END {print s+0}')
  verdict=ok
  [ "${status[$p]}" = 0 ] || { verdict="FAILED (exit ${status[$p]})"; rc=1; }
  echo "test: $p: $verdict in ${took[$p]} s — $passed passed, $failed failed, $skips skipped (listed below)" >&2
  grep '^SKIPPED' "$log_dir/$p.log" | sort | uniq | sed "s/^/test: $p: /" >&2 || true
done
# Failures last, where CI's tail of the output shows them: each failing test and the first
# lines of its panic, and where the whole log is kept.
for p in $PLATFORMS; do
  [ "${status[$p]}" = 0 ] && continue
  grep -E '^test .* \.\.\. FAILED$' "$log_dir/$p.log" | sed "s/^/test: $p: /" >&2 || true
  grep -A4 -E "^thread '.*panicked at" "$log_dir/$p.log" | cut -c1-400 | head -60 |
    sed "s/^/test: $p: | /" >&2 || true
  # A test binary that crashed (a signal, an abort) prints no result line: its tests are missing
  # from the counts above, and only this names it.
  grep -E "process didn't exit successfully|^error: test failed" "$log_dir/$p.log" | cut -c1-300 |
    sed "s/^/test: $p: /" >&2 || true
  grep -E '^zerocast-testdesk: kept logs in' "$log_dir/$p.log" | sed "s/^/test: $p: /" >&2 || true
done
# The suite's disk use (CI runs on one disk with everything else): a figure to watch.
echo "test: disk: target/ holds $(du -sh target 2>/dev/null | cut -f1); $(df -h --output=avail . | tail -1 | tr -d ' ') free" >&2
if [ $rc = 0 ]; then
  rm -rf "$log_dir"
else
  echo "test: the parts' whole output is kept in $log_dir" >&2
fi
exit $rc
