#!/bin/sh
# Runs the runtime's random programs (tests/runtime/runtime_random_program_test.cpp)
# for many seeds in every setting the test suite uses, plus the look-ahead
# stager on a lazy device: a longer search than CI's 10 seeds per setting.
# Usage: tools/random-programs.sh BUILD_DIR FIRST-LAST
#   e.g. tools/random-programs.sh build 11-110   (docs/RESULTS.md §4.9.12)
#   A ThreadSanitizer build (meson setup build-tsan -Db_sanitize=thread
#   -Dcuda=disabled) works the same way: its reports end the setting's line.
# Prints one line per setting: the setting, the exit status, gtest's verdict
# (the failing seeds are named; NZ_RANDOM_SEEDS=N-N replays one alone).
set -u
build=${1:?usage: tools/random-programs.sh BUILD_DIR FIRST-LAST}
seeds=${2:?usage: tools/random-programs.sh BUILD_DIR FIRST-LAST}
build=$(cd "$build" && pwd)
exe="$build/tests/runtime/nzruntime_random_program_test"
[ -x "$exe" ] || { echo "random-programs: no $exe (meson compile -C $build first)" >&2; exit 2; }
codec="$build/kernels/sim/libnzsim_codec.so"
status=0
for setting in "" "NEUZIP_STAGING_MB=4" "NEUZIP_STAGING_MB=8 NZSIM_LAZY=1" \
    "NEUZIP_STAGING_MB=6 NZSIM_MAP_OFFSETS=1" "NZSIM_MEMORY_MB=40" "NEUZIP_STAGING_MB=4 NEUZIP_EVICT=lru" \
    "NEUZIP_STAGING_MB=2 NZSIM_LAZY=1 NZSIM_COST=a100" "NZSIM_MEMORY_MB=32 NZSIM_LAZY=1" \
    "NEUZIP_STAGING_MB=8 NEUZIP_LOOKAHEAD_MB=auto" "NEUZIP_STAGING_MB=4 NEUZIP_TMA_EXTENTS=1" \
    "NEUZIP_STAGING_MB=4 NEUZIP_LOOKAHEAD_MB=auto NZSIM_LAZY=1" \
    "NEUZIP_STAGING_MB=6 NEUZIP_STAGING_HANDLES=pages" "NEUZIP_STAGING_MB=2 NEUZIP_STAGING_HANDLES=pages NZSIM_LAZY=1" \
    "NEUZIP_STAGING_MB=8 NEUZIP_STAGING_HANDLES=pages NEUZIP_LOOKAHEAD_MB=auto NZSIM_LAZY=1" \
    "NEUZIP_STAGING_MB=4 NEUZIP_TAG_EXTENTS=1" "NZSIM_MEMORY_MB=40 NEUZIP_TAG_EXTENTS=1 NZSIM_LAZY=1" \
    "NEUZIP_STAGING_MB=4 NEUZIP_COMPRESS=weights,optimizer" \
    "NEUZIP_STAGING_MB=8 NEUZIP_LOOKAHEAD_MB=auto NZSIM_LAZY=1 NEUZIP_COMPRESS=weights,optimizer" \
    "NEUZIP_STAGING_MB=4 NZSIM_DEVICES=2 NZ_RANDOM_PEER=1" \
    "NEUZIP_STAGING_MB=8 NEUZIP_LOOKAHEAD_MB=auto NZSIM_LAZY=1 NZSIM_DEVICES=2 NZ_RANDOM_PEER=1" \
    "NZSIM_MEMORY_MB=40 NZSIM_DEVICES=2 NZ_RANDOM_PEER=1"; do
  # shellcheck disable=SC2086  # the setting is a list of assignments
  out=$(env LD_LIBRARY_PATH="$build/tests/sim" RT_TEST_MODULE="$build/tests/runtime/libnzrt_test_kernels.so" \
    NEUZIP_SIM_MODULE="$codec" $setting NZ_RANDOM_SEEDS="$seeds" "$exe" 2>&1)
  rc=$?
  [ $rc -eq 0 ] || status=1
  verdict=$(printf '%s\n' "$out" | grep -E '^\[  (PASSED|FAILED)  \] ' | tr '\n' ' ')
  races=$(printf '%s\n' "$out" | grep -c 'WARNING: ThreadSanitizer')
  note=""
  if [ "$races" -ne 0 ]; then status=1; note=" ThreadSanitizer reports: $races"; fi
  echo "[${setting:-default}] rc=$rc $verdict$note"
done
exit $status
