#!/usr/bin/env bash
# Fuzzes the protocol decoder and the switchboard (with its invariant
# checker) with cargo-fuzz / libFuzzer.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# cargo-fuzz needs nightly-only compiler flags; this machine has one stable
# toolchain, so RUSTC_BOOTSTRAP=1 lets it accept them.
set -euo pipefail
cd "$(dirname "$0")/../signalling"
secs=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in decode switchboard; do
  echo "== fuzzing $target for ${secs}s"
  cargo fuzz run "$target" --release -- -max_total_time="$secs" -rss_limit_mb=2048
done
