#!/bin/sh
# Builds the decoder fuzzer with clang (libFuzzer + ASan + UBSan), compiling
# the codec sources directly, and runs it for the given number of seconds on
# a copy of the seed corpus. Usage: tests/fuzz/run_fuzz.sh [seconds]
# Needs clang++ and its libFuzzer runtime (Debian: libclang-rt-14-dev).
set -eu
seconds="${1:-60}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${NZ_FUZZ_WORKDIR:-$(mktemp -d)}"
cxx="${CXX_FUZZ:-clang++}"
mkdir -p "$work/corpus"
"$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -ffp-contract=off -I"$root/include" -I"$root/src" \
  "$here/fuzz_decode.cpp" "$root"/src/codec/*.cpp -lpthread -o "$work/fuzz_decode"
cp "$here"/corpus/* "$work/corpus/" 2>/dev/null || true
"$work/fuzz_decode" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$work/corpus"
