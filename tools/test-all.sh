#!/bin/sh
# Builds and runs every test: the release build's full Meson suite (codec, simulator,
# mini framework, GPU-codec plumbing on the simulator, runtime under LD_PRELOAD), the Python wheel,
# the codec suites again under ASan+UBSan, and a short libFuzzer run of the decoder.
# Usage: tools/test-all.sh   (from the repository root; ../shared/weights beside it)
set -eu
cd "$(dirname "$0")/.."
tools/setup-debian.sh
jobs=$(nproc)

echo "== release build, all tests"
[ -d build-test ] || meson setup build-test
meson compile -C build-test -j "$jobs"
meson test -C build-test --print-errorlogs --num-processes "$jobs"

echo "== Python package: the wheel (pip wheel .), installed into a venv, on the simulated driver"
tools/test-wheel.sh build-test

echo "== ASan + UBSan: codec (every CPU level), tools, kernel code (CPU emulation), runtime units"
# Programs that run under LD_PRELOAD or on the simulator's fault handler are
# left out: ASan must be the first library loaded and owns SIGSEGV.
# The codec suites at every instruction-set level (those the CPU lacks are skipped).
codec_asan=""
for suite in hash bitpack rans format roundtrip lossy corruption capi threading fused_decode levels; do
  for level in scalar avx2 avx512; do codec_asan="$codec_asan codec-$suite-$level"; done
done
asan_tests="$codec_asan codec-fuzz-corpus \
  tools_safetensors tools_nzeval_core tools_nzbench_json tools_nzeval_lossless tools_nztrace_summary \
  gpu_kernel_emulation runtime-unit"
# -O1 with line tables only (-g1), as the sanitizers' docs advise: -O2 -g
# took 43 s to compile runtime/stager.cpp, -O1 -g1 20 s, and this build was
# half of CI's time (19 of 37 min on 2 cores); reports keep file:line.
[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
  -Doptimization=1 -Ddebug=false -Dc_args=-g1 -Dcpp_args=-g1 -Dcuda=disabled
tools/build-for-tests.py build-asan $asan_tests
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --no-rebuild --print-errorlogs --num-processes "$jobs" $asan_tests

echo "== libFuzzer: the decoder, 60 s"
tests/fuzz/run_fuzz.sh 60

echo "== all tests passed"
