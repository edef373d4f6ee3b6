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

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  driver_env=""
  where="the GPU"
else
  driver_env="LD_LIBRARY_PATH=$B/tests/sim"
  where="the simulated driver (no GPU here)"
fi
echo "== mini framework on $where, without and with libneuzip.so"
for job in "infer" "train --optimizer adam"; do
  plain=$(env $driver_env "$B/tests/apps/minifw" $job 2>/dev/null | tail -n 1)
  nz=$(env $driver_env NEUZIP_REPORT=1 LD_PRELOAD="$B/interpose/libneuzip.so" "$B/tests/apps/minifw" $job 2>/tmp/neuzip-demo.err | tail -n 1)
  echo "minifw $job: without $plain | with neuzip $nz"
  grep '^neuzip:' /tmp/neuzip-demo.err || true
  [ "$plain" = "$nz" ] || { echo "demo: digests differ" >&2; exit 1; }
done
