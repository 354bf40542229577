#!/usr/bin/env bash
# Runs the binding's property tests (the `prop_*` tests in crates/core: the
# header, settings, frame-joining and stream-id conversions JS input goes
# through) with many more cases than `npm test` does, for a bounded time.
#   scripts/fuzz.sh [CASES_PER_PROPERTY (default 100000)] [SECONDS (default 600)]
# Then the TS-side properties (__test__/fuzz.spec.ts) with as many cases, and
# FUZZ_H3I_SEQUENCES (default 3000) seeded random frame sequences from h3i
# against our server (__test__/h3i.spec.ts; needs `npm run build:h3i-probe`).
# Then, when a nightly toolchain and cargo-fuzz are installed, each
# coverage-guided target in crates/core/fuzz (harnesses: crates/core/src/fuzzing.rs)
# for FUZZ_CARGO_SECONDS (default 60) each; a crash leaves its input in
# crates/core/fuzz/artifacts/ and fails the script.
# Prints the cases run; a failure prints proptest's minimal failing input.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-100000}
seconds=${2:-600}
host=$(rustc -vV | sed -n 's/^host: //p')
start=$(date +%s)
PROPTEST_CASES=$cases timeout "$seconds" cargo test --release --lib -p tokio-quiche-node --target "$host" prop_ -- --test-threads 2 | tee /tmp/fuzz-$$.log
properties=$(grep -c '^test .*prop_.* ok$' /tmp/fuzz-$$.log || true)
rm -f /tmp/fuzz-$$.log
echo "fuzz: $properties properties x $cases cases = $((properties * cases)) executions in $(( $(date +%s) - start )) s"
# The TS side: fast-check properties on the public API's option and header checks.
FUZZ_RUNS=$cases timeout "$seconds" npx ava __test__/fuzz.spec.ts --verbose
echo "fuzz (TS): 4 properties x $cases cases"
sequences=${FUZZ_H3I_SEQUENCES:-3000}
FUZZ_H3I_SEQUENCES=$sequences timeout "$seconds" npx ava __test__/h3i.spec.ts --match '*random frame sequences*' --verbose --timeout "${seconds}s"
echo "fuzz (peer frames): $sequences h3i sequences"
if cargo +nightly fuzz --version > /dev/null 2>&1; then
  fuzz_seconds=${FUZZ_CARGO_SECONDS:-60}
  for target in $(cd crates/core && cargo +nightly fuzz list); do
    if ! (cd crates/core && LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan.supp cargo +nightly fuzz run --target-dir ../../target/fuzz "$target" -- -max_total_time="$fuzz_seconds") > /tmp/fuzz-$$.log 2>&1; then
      tail -40 /tmp/fuzz-$$.log
      echo "fuzz (coverage-guided): $target failed; its input is in crates/core/fuzz/artifacts/$target/"
      exit 1
    fi
    runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' /tmp/fuzz-$$.log)
    coverage=$(grep -o 'cov: [0-9]*' /tmp/fuzz-$$.log | tail -1 | cut -d' ' -f2)
    rm -f /tmp/fuzz-$$.log
    echo "fuzz (coverage-guided): $target: $runs executions in $fuzz_seconds s, $coverage edges"
  done
else
  echo "fuzz (coverage-guided): skipped: needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz)"
fi
