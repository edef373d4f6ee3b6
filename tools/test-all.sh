#!/bin/sh
# Builds and runs every test: the release build's full Meson suite (codec, simulator,
# mini framework, GPU-codec plumbing on the simulator, runtime under LD_PRELOAD),
# the codec suites again under ASan+UBSan, and a short libFuzzer run of the decoder.
# Usage: tools/test-all.sh   (from the repository root; ../shared/weights beside it)
set -eu
cd "$(dirname "$0")/.."
tools/setup-debian.sh
jobs=$(nproc)

echo "== release build, all tests"
meson setup build-test --reconfigure >/dev/null 2>&1 || meson setup build-test
meson compile -C build-test -j "$jobs"
meson test -C build-test --print-errorlogs --num-processes "$jobs"

echo "== ASan + UBSan: codec, format and GPU-codec plumbing"
meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
  --reconfigure >/dev/null 2>&1 || \
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
meson compile -C build-asan -j "$jobs"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs --num-processes "$jobs" --suite codec --suite tools

echo "== libFuzzer: the decoder, 60 s"
tests/fuzz/run_fuzz.sh 60

echo "== all tests passed"
