#!/bin/sh
# ThreadSanitizer over the runtime's threads where they meet: the look-ahead
# stager, handovers on the guard stream, evictions settled off the lock,
# stores copied to host memory on the release stream and back,
# launches from several host threads, graphs, and minifw under LD_PRELOAD
# (the simulator's stream workers are threads too). A report makes the
# program exit 66, so its test fails; the report is in the test log.
# Not part of tools/test-all.sh (CI): about 10 minutes on 2 cores, most of it
# the instrumented build. Run it after changing locking or threads.
# Usage: tools/test-tsan.sh [BUILD_DIR]   (default build-tsan; from the repository root)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-tsan}
[ -d "$build" ] || meson setup "$build" -Db_sanitize=thread -Dcuda=disabled -Doptimization=1 -Ddebug=false \
  -Dc_args=-g1 -Dcpp_args=-g1
tests="runtime-e2e-lookahead runtime-e2e-handoff runtime-e2e-encode-handoff runtime-e2e-encode-handoff-mixed \
  runtime-e2e-graph-budget runtime-minifw-infer-threads runtime-minifw-infer-stager \
  runtime-minifw-infer-stager-whole-handles runtime-minifw-train-sgd-stager runtime-minifw-train-adam-stager \
  runtime-minifw-train-sgd-handovers-pages runtime-minifw-infer-staging-calls frameworks-graph-nodes-neuzip \
  runtime-e2e-store-copies runtime-e2e-pressure runtime-minifw-train-lora-peak runtime-minifw-train-lomo-small-device \
  runtime-random-budget-4-tag-extents runtime-minifw-train-lora-tag-extents-peak runtime-unit \
  frameworks-fork-neuzip frameworks-devices-neuzip frameworks-ipc-neuzip frameworks-ipc-lookahead-neuzip \
  frameworks-device-export-neuzip frameworks-device-export-lookahead-neuzip nccl-hooks-neuzip \
  frameworks-device-built-pointers-neuzip frameworks-device-built-pointers-loaded-neuzip \
  frameworks-module-globals-neuzip runtime-random-budget-8-lookahead"
# ThreadSanitizer slows the simulated device (kernels run on the host) 5-15x:
# a host wait past the default 5 s patience then stages over the budget and
# the timing expectations of the stager tests fail. The device-export classes
# set their own (short) patience in their test environment.
export NEUZIP_WAIT_PATIENCE_MS="${NEUZIP_WAIT_PATIENCE_MS:-60000}"
tools/build-for-tests.py "$build" $tests
# TSan's own timing makes the simulated device slow: a longer timeout.
meson test -C "$build" --no-rebuild --print-errorlogs --num-processes "$(nproc)" -t 6 $tests
