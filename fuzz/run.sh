#!/usr/bin/env bash
# Coverage-guided fuzzing of Tandem's parsers with AFL++ (cargo-afl, stable
# toolchain). Builds the targets, runs each for SECONDS, prints one line per
# target (execs, paths, crashes) and exits 1 if any crash was found; crashing
# inputs are left under $OUT/<target>/default/crashes/ (copy one into
# fuzz/regressions/<target>/ once fixed, so the default test run replays it).
#
#   fuzz/run.sh [--seconds N] [--out DIR] [target ...]
#
# Needs: `cargo install cargo-afl` (it builds AFL++ with cc and make).
set -euo pipefail
cd "$(dirname "$0")"

seconds=60
out=${FUZZ_OUT:-/tmp/tandem-fuzz}
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in src/bin/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

if ! cargo afl --version >/dev/null 2>&1; then
  echo "error: cargo-afl is missing: cargo install cargo-afl" >&2
  exit 2
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
cargo afl build --release -q

# The machine is not tuned for AFL (core dumps go to a handler, CPU scaling):
# these make AFL run anyway instead of refusing.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
export AFL_NO_AFFINITY=1 AFL_QUIET=1

status=0
printf '%-16s %12s %8s %8s %8s\n' target execs execs/s paths crashes
for t in "${targets[@]}"; do
  dir="$out/$t"
  rm -rf "$dir"
  mkdir -p "$dir"
  # -V: run for this many seconds; -t: per-input time limit in ms.
  cargo afl fuzz -V "$seconds" -t 1000 -i "corpus/$t" -o "$dir" \
    "$CARGO_TARGET_DIR/release/$t" >"$dir/afl.log" 2>&1 || {
    echo "afl-fuzz failed for $t; see $dir/afl.log" >&2
    tail -20 "$dir/afl.log" >&2
    status=1
    continue
  }
  stats="$dir/default/fuzzer_stats"
  get() { awk -F' *: *' -v k="$1" '$1==k {print $2}' "$stats"; }
  crashes=$(get saved_crashes)
  printf '%-16s %12s %8s %8s %8s\n' "$t" "$(get execs_done)" "$(get execs_per_sec)" \
    "$(get corpus_count)" "$crashes"
  if [ "${crashes:-0}" != 0 ]; then
    status=1
    ls "$dir/default/crashes/" >&2
  fi
done
exit $status
