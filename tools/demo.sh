#!/bin/sh
# The main job: what neuzip does, on whatever this machine has.
#  1. nzbench: the codec on the shipped real weights (lossless bf16 and fp32, lossy 3-bit),
#     against zstd -3 and -19 in the same run.
#  2. nzeval: perplexity of a real trained model with lossless and lossy weights.
#  3. the mini framework under LD_PRELOAD=libneuzip.so: same digests as without it,
#     and the device memory it saved (on the simulated driver when there is no GPU).
# Usage: tools/demo.sh [BUILD_DIR]   (default: build)
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
W=../shared/weights
[ -d "$W" ] || { echo "demo: $W not found (the shared weights sit beside the checkout)" >&2; exit 1; }

echo "== nzbench, lossless, real bf16 weights (GPT-Neo-125M attention, tiled to 16 MiB for timing)"
"$B/tools/nzbench" --tile-mb 16 "$W/gpt-neo-125m-attn-bf16.safetensors"
echo
echo "== nzbench, lossless, real fp32 weights (GPT-2 small attention)"
"$B/tools/nzbench" "$W/gpt2-small-attn-f32.safetensors"
echo
echo "== nzbench, lossy: 3 mantissa bits, blocks of 512"
"$B/tools/nzbench" --mode lossy --bits 3 --block 512 "$W/gpt-neo-125m-attn-bf16.safetensors"
echo
echo "== nzeval: stories260K perplexity, original / bf16 / lossless / lossy"
"$B/tools/nzeval" --weights-dir "$W"
echo

# The mini framework's kernels are host functions: it runs on the simulated
# driver only (tests/sim), which also lets us pick the device's memory size.
sim="env LD_LIBRARY_PATH=$B/tests/sim"
echo "== mini framework on the simulated driver: same digests without and with libneuzip.so"
for job in "infer" "train --optimizer adam"; do
  plain=$($sim "$B/tests/apps/minifw" $job 2>/dev/null | tail -n 1)
  nz=$($sim LD_PRELOAD="$B/interpose/libneuzip.so" "$B/tests/apps/minifw" $job 2>/dev/null | tail -n 1)
  echo "minifw $job: without neuzip: $plain | with neuzip: $nz"
  [ "$plain" = "$nz" ] || { echo "demo: digests differ" >&2; exit 1; }
done
echo
echo "== the reason to exist: minifw infer --size-mb 64 on a 67 MiB device"
set +e
$sim NZSIM_MEMORY_MB=67 "$B/tests/apps/minifw" infer --size-mb 64 >/dev/null 2>&1
rc=$?
set -e
echo "without neuzip: exit $rc (3 = out of memory)"
echo "with neuzip (nztrace -- minifw ...):"
$sim NZSIM_MEMORY_MB=67 "$B/tools/nztrace" -- "$B/tests/apps/minifw" infer --size-mb 64 | tail -n 1
