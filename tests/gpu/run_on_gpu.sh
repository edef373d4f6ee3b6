#!/bin/sh
# run_on_gpu.sh: the GPU codec checks that need a real GPU (H100/H200).
#
# Two steps, because the GPU machine may lack a compiler, Meson or libfmt:
#
#   1. Here (the build machine, nvcc present):
#        tests/gpu/run_on_gpu.sh bundle [builddir]      (default builddir: build-gpu)
#      builds gpu_codec_test and nzgpubench, and copies them, libfmt, this
#      script and the two weight files they read into build-gpubundle/ (about 45 MB).
#   2. On the GPU machine (e.g. the `device` tool with carry: ["build-gpubundle"]):
#        build-gpubundle/run_on_gpu.sh run [bundledir] [quick]
#      runs, with the real driver (no simulator on LD_LIBRARY_PATH):
#        - the full gpu_codec_test suite on the CUDA kernels, corruption traps included,
#        - the multi-GB case (NZ_GPU_TEST_LARGE=1; skipped with `quick`),
#        - compute-sanitizer --tool memcheck and --tool racecheck on a subset,
#        - nzgpubench: lossless bf16 at 4, 256 and 1024 MiB, lossy K=3 B=512, 4 Ki-element chunks.
#      Logs go to $OUT/gpu-run/ when $OUT is set (the device tool), else to bundledir/logs/.
#      Exit status: non-zero when any step failed.
set -u

mode=${1:-}
case "$mode" in
bundle)
  build=${2:-build-gpu}
  cd "$(dirname "$0")/../.."
  [ -d "$build" ] || meson setup "$build" >/dev/null
  ninja -C "$build" -j2 tests/gpu/gpu_codec_test src/gpu/nzgpubench || exit 1
  out=build-gpubundle
  rm -rf "$out" && mkdir -p "$out/weights"
  cp "$build/tests/gpu/gpu_codec_test" "$build/src/gpu/nzgpubench" tests/gpu/run_on_gpu.sh "$out/"
  for lib in $(ldd "$build/tests/gpu/gpu_codec_test" | awk '/libfmt/ {print $3}'); do cp -L "$lib" "$out/"; done
  cp ../shared/weights/gpt-neo-125m-attn-bf16.safetensors ../shared/weights/gpt2-small-attn-f32.safetensors "$out/weights/"
  du -sh "$out"
  echo "bundle ready: carry $out, then run: $out/run_on_gpu.sh run $out"
  ;;
run)
  bundle=${2:-$(dirname "$0")}
  quick=${3:-}
  bundle=$(cd "$bundle" && pwd)
  logs=${OUT:-$bundle}/gpu-run
  [ -n "${OUT:-}" ] || logs=$bundle/logs
  mkdir -p "$logs"
  export LD_LIBRARY_PATH="$bundle${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export NZ_WEIGHTS_DIR="$bundle/weights"
  unset NEUZIP_SIM_MODULE
  failed=0
  step() {  # step NAME COMMAND...: runs, logs, remembers failures
    name=$1; shift
    echo "== $name"
    if "$@" >"$logs/$name.log" 2>&1; then echo "   ok"; else echo "   FAILED (rc $?), see $logs/$name.log"; tail -20 "$logs/$name.log"; failed=1; fi
  }
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$logs/nvidia-smi.txt" 2>&1 || true
  cat "$logs/nvidia-smi.txt"
  step codec_suite "$bundle/gpu_codec_test" --gtest_filter=-GpuCodecCorrupt.*:*Large*
  step corrupt_traps "$bundle/gpu_codec_test" --gtest_filter=GpuCodecCorrupt.*
  [ "$quick" = quick ] || step large_3gb env NZ_GPU_TEST_LARGE=1 "$bundle/gpu_codec_test" --gtest_filter=*Large*
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ -x "$sanitizer" ]; then
    subset='GpuCodec.SizesFromOneElement:GpuCodec.HashEqualsCpu:GpuCodec.EmptyBuffer:GpuCodec.ProbabilityBitsRange'
    step memcheck "$sanitizer" --tool memcheck --error-exitcode 1 "$bundle/gpu_codec_test" --gtest_filter=$subset
    step racecheck "$sanitizer" --tool racecheck --error-exitcode 1 "$bundle/gpu_codec_test" --gtest_filter=GpuCodec.HashEqualsCpu:GpuCodec.ProbabilityBitsRange
  else
    echo "== compute-sanitizer not found: memcheck/racecheck skipped"; failed=1
  fi
  for mib in 4 256 1024; do step "bench_bf16_${mib}mib" "$bundle/nzgpubench" --mib $mib --repeats 10; done
  step bench_lossy_k3_b512 "$bundle/nzgpubench" --mib 256 --lossy 3 --block 512
  step bench_chunk4k_4mib "$bundle/nzgpubench" --mib 4 --chunk 4096
  for f in "$logs"/bench_*.log; do echo "-- $(basename "$f" .log)"; cat "$f"; done
  exit $failed
  ;;
*)
  sed -n '2,22p' "$0"
  exit 2
  ;;
esac
