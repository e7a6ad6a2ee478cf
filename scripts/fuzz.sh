#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer + AddressSanitizer, nightly) of the `a{sv}`
# parsers and the output path templates: each target in fuzz/ runs for SECONDS (default 60),
# starting from its checked-in corpus (fuzz/corpus/<target>/), and the script prints one summary
# line. New inputs go to a scratch corpus under fuzz/target/ (the checked-in one stays as it is);
# FUZZ_UPDATE_CORPUS=1 merges them back, minimized (libFuzzer's -set_cover_merge=1). A crash leaves its
# input in fuzz/artifacts/<target>/ (replay: `cargo +nightly fuzz run TARGET FILE`) and makes the
# script exit 1. The first run builds the app crate and its dependencies with the sanitizer.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-60}"
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
# -O: optimized with debug assertions (cargo fuzz's default build, spelled out).
if ! cargo +nightly fuzz build -O >"$logs/build.log" 2>&1; then
  tail -30 "$logs/build.log" >&2
  exit 1
fi
# The targets' scratch folder (the parsers create probe files, token_file writes token files):
# in memory where there is /dev/shm, removed at the end.
scratch=$(mktemp -d /dev/shm/zerocast-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
start_marker="$logs/.start"
touch "$start_marker"
total_execs=0
total_ms=0
crashed=0
details=()
corpus_before=0
corpus_after=0
for t in "${targets[@]}"; do
  work="fuzz/target/corpus-work/$t"
  mkdir -p "$work" "fuzz/corpus/$t"
  corpus_before=$((corpus_before + $(find "fuzz/corpus/$t" -type f | wc -l)))
  # libFuzzer adds new inputs to the first folder only: the scratch one. -timeout: a call
  # that takes 10 s is a hang (every input here is parsed in microseconds).
  rc=0
  ZEROCAST_FUZZ_DIR="$scratch/$t" cargo +nightly fuzz run -O "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$logs/$t.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)
  # The last status line: "#N DONE cov: C ft: F corp: K/..." (or the line before a crash).
  status=$(grep -E '^#[0-9]+' "$logs/$t.log" | tail -1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$status")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$status")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$status")
  found=$(find "fuzz/artifacts/$t" -type f -newer "$start_marker" 2>/dev/null | wc -l)
  if [ "$rc" -ne 0 ] && [ "$found" -eq 0 ]; then found=1; fi # e.g. a failed start: see the log
  crashed=$((crashed + found))
  total_execs=$((total_execs + ${execs:-0}))
  # A target that stops early (a crash) ran for less than SECONDS: its own execs/s count.
  [ "${rate:-0}" -gt 0 ] && total_ms=$((total_ms + ${execs:-0} * 1000 / rate))
  if [ "${FUZZ_UPDATE_CORPUS:-0}" = 1 ] && [ "$found" -eq 0 ]; then
    # The named inputs (seed-*: fuzz/seeds/make_seeds.py; regression-*: found a bug) stay;
    # libFuzzer's set-cover merge adds the fewest others that reach what they do not. Edges only
    # (-use_counters=0): hit-count buckets would keep hundreds of near-duplicates.
    merged="fuzz/target/corpus-merged/$t"
    rm -rf "$merged" && mkdir -p "$merged"
    cp fuzz/corpus/"$t"/seed-* fuzz/corpus/"$t"/regression-* "$merged/" 2>/dev/null || true
    ZEROCAST_FUZZ_DIR="$scratch/$t" cargo +nightly fuzz run -O "$t" "$merged" "fuzz/corpus/$t" "$work" -- \
      -set_cover_merge=1 -use_counters=0 >"$logs/$t.merge.log" 2>&1
    rm -rf "fuzz/corpus/$t" && cp -r "$merged" "fuzz/corpus/$t"
  fi
  corpus_after=$((corpus_after + $(find "fuzz/corpus/$t" -type f | wc -l)))
  details+=("$t ${execs:-0} execs ${rate:-0}/s cov ${cov:-?} ft ${ft:-?} corp ${corp:-?} crashes $found")
  if [ "$found" -ne 0 ]; then
    echo "fuzz: $t failed (rc $rc); log $logs/$t.log; inputs fuzz/artifacts/$t/" >&2
    grep -m3 -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)' "$logs/$t.log" >&2 || true
  fi
done
(
  IFS=';'
  rate=$((total_ms > 0 ? total_execs * 1000 / total_ms : 0))
  echo "fuzz: ${#targets[@]} targets × ${seconds} s, ${total_execs} execs (${rate}/s), corpus ${corpus_before} → ${corpus_after} files checked in, ${crashed} crashes [${details[*]}]"
)
[ "$crashed" -eq 0 ]
