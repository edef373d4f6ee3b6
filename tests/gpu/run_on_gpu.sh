#!/bin/sh
# run_on_gpu.sh: the GPU codec checks and measurements that need a real GPU
# (H100/H200), in one device call.
#
# Two steps, because the GPU machine has CUDA and a driver but no Meson build
# of ours, nor Debian's libfmt/libunwind/libzstd:
#
#   1. Here (the build machine, nvcc present):
#        tests/gpu/run_on_gpu.sh bundle [builddir]      (default builddir: build-gpu)
#      builds gpu_codec_test, nzgpubench, nzbench and vmmprobe, and copies them
#      (debug info stripped), every non-system shared library they load, this
#      script and the two weight files they read into build-gpubundle/ (< 64 MiB,
#      the device tool's carry limit).
#   2. On the GPU machine (the `run` device tool with carry: ["build-gpubundle"]):
#        build-gpubundle/run_on_gpu.sh run [bundledir] [quick]
#      runs, with the real driver (no simulator on LD_LIBRARY_PATH), most
#      valuable first, each step under a time limit:
#        - the gpu_codec_test suite on the CUDA kernels, then the corruption traps,
#        - nzbench --gpu --gpu-mb 4,64,256 --json (bf16 and fp32 sets, CPU figures too),
#        - vmmprobe --json (CUDA VMM call costs),
#        - nzgpubench: lossless bf16 at 4, 64, 256, 1024 MiB; lossy K=3 B=512;
#          4 Ki-element chunks at 4 MiB,
#        - the multi-GB case (NZ_GPU_TEST_LARGE=1; skipped with `quick`),
#        - compute-sanitizer memcheck and racecheck on a subset (skipped with `quick`),
#        - cuobjdump -res-usage of the embedded kernels (registers, shared memory).
#      Everything goes to $OUT/gpu-run/ when $OUT is set (the device tool), else
#      bundledir/logs/: one log per step, nzbench.json, vmmprobe.json and
#      summary.txt (one line per step: ok / FAILED rc / TIMEOUT, seconds).
#      Exit status: non-zero when any step failed. The whole run stays under
#      about 9 minutes (the device tool's per-call limit is 10).
set -u

mode=${1:-}
case "$mode" in
bundle)
  build=${2:-build-gpu}
  cd "$(dirname "$0")/../.."
  [ -d "$build" ] || meson setup "$build" >/dev/null || exit 1
  ninja -C "$build" -j2 tests/gpu/gpu_codec_test src/gpu/nzgpubench tools/nzbench tools/vmmprobe || exit 1
  out=build-gpubundle
  rm -rf "$out" && mkdir -p "$out/weights" "$out/lib"
  bins="$build/tests/gpu/gpu_codec_test $build/src/gpu/nzgpubench $build/tools/nzbench $build/tools/vmmprobe"
  for b in $bins; do
    [ -x "$b" ] || { echo "missing $b"; exit 1; }
    cp "$b" "$out/" && strip --strip-debug "$out/$(basename "$b")"
  done
  cp tests/gpu/run_on_gpu.sh "$out/"
  # Every shared library outside the C/C++ runtime and the driver: the GPU
  # image is another distribution (newer glibc/libstdc++, no libfmt etc.).
  for lib in $(for b in $bins; do ldd "$b"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*|libcuda.so*) ;;
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
  cp ../shared/weights/gpt-neo-125m-attn-bf16.safetensors ../shared/weights/gpt2-small-attn-f32.safetensors "$out/weights/"
  ls "$out/lib"
  du -sh "$out"
  size=$(du -sk "$out" | awk '{print $1}')
  [ "$size" -lt 65000 ] || { echo "bundle is ${size} KiB: over the device tool's 64 MiB carry"; exit 1; }
  echo "bundle ready: carry $out, then run: sh $out/run_on_gpu.sh run $out"
  ;;
run)
  bundle=${2:-$(dirname "$0")}
  quick=${3:-}
  bundle=$(cd "$bundle" && pwd)
  if [ -n "${OUT:-}" ]; then logs=$OUT/gpu-run; else logs=$bundle/logs; fi
  mkdir -p "$logs"
  export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export NZ_WEIGHTS_DIR="$bundle/weights"
  unset NEUZIP_SIM_MODULE NZ_GPU_TEST_CUDA_EMU_MODULE
  summary=$logs/summary.txt
  : >"$summary"
  failed=0
  # step NAME LIMIT_S COMMAND...: runs with a time limit, logs, records the outcome.
  step() {
    name=$1; limit=$2; shift 2
    echo "== $name"
    start=$(date +%s)
    timeout -k 10 "$limit" "$@" >"$logs/$name.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then outcome=ok
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then outcome="TIMEOUT after ${limit}s"; failed=1
    else outcome="FAILED rc $rc"; failed=1; fi
    # A gtest run that skipped everything (no device found) is not a pass.
    if [ "$outcome" = ok ] && grep -q "SKIPPED \]" "$logs/$name.log" && ! grep -q "^\[       OK \]" "$logs/$name.log"; then
      outcome="ALL SKIPPED (no device?)"; failed=1
    fi
    echo "$name: $outcome (${secs}s)" | tee -a "$summary"
    [ "$outcome" = ok ] || tail -20 "$logs/$name.log"
  }
  {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    for b in gpu_codec_test nzgpubench nzbench vmmprobe; do ldd "$bundle/$b" | grep "not found" | sed "s/^/$b: /"; done
  } >"$logs/machine.txt" 2>&1
  cat "$logs/machine.txt"
  step codec_suite 150 "$bundle/gpu_codec_test" --gtest_filter=-GpuCodecCorrupt.*:*Large*
  step corrupt_traps 90 "$bundle/gpu_codec_test" --gtest_filter=GpuCodecCorrupt.*
  step nzbench 150 sh -c "\"$bundle/nzbench\" \"$bundle/weights/gpt-neo-125m-attn-bf16.safetensors\" \
    \"$bundle/weights/gpt2-small-attn-f32.safetensors\" --gpu --gpu-mb 4,64,256 --json --no-peers \
    >\"$logs/nzbench.json\""
  step vmmprobe 60 sh -c "\"$bundle/vmmprobe\" --json >\"$logs/vmmprobe.json\""
  for mib in 4 64 256 1024; do step "bench_bf16_${mib}mib" 60 "$bundle/nzgpubench" --mib $mib --repeats 10; done
  step bench_lossy_k3_b512 60 "$bundle/nzgpubench" --mib 256 --lossy 3 --block 512
  step bench_chunk4k_4mib 60 "$bundle/nzgpubench" --mib 4 --chunk 4096
  if command -v cuobjdump >/dev/null 2>&1; then
    # The fatbin is embedded in the executables: -res-usage reads it from there.
    step kernel_resources 30 cuobjdump -res-usage "$bundle/nzgpubench"
  fi
  if command -v ncu >/dev/null 2>&1; then
    # Executed instructions and DRAM bytes of one 64 MiB decode (and encode):
    # divide by the element count (32 Mi) for the per-element model in docs/KERNELS.md.
    step ncu_decode_64mib 150 ncu --clock-control none --kernel-name regex:nz_decode_kernel\|nz_encode_rans_kernel \
      --launch-count 2 --metrics smsp__inst_executed.sum,smsp__thread_inst_executed.sum,dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__occupancy_limit_registers,launch__occupancy_limit_shared_mem \
      "$bundle/nzgpubench" --mib 64 --repeats 1
  fi
  if [ "$quick" != quick ]; then
    step large_3gb 120 env NZ_GPU_TEST_LARGE=1 "$bundle/gpu_codec_test" --gtest_filter=*Large*
    sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    if [ -x "$sanitizer" ]; then
      subset='GpuCodec.SizesFromOneElement:GpuCodec.HashEqualsCpu:GpuCodec.EmptyBuffer:GpuCodec.ProbabilityBitsRange'
      step memcheck 120 "$sanitizer" --tool memcheck --error-exitcode 1 "$bundle/gpu_codec_test" --gtest_filter=$subset
      step racecheck 120 "$sanitizer" --tool racecheck --error-exitcode 1 "$bundle/gpu_codec_test" \
        --gtest_filter=GpuCodec.HashEqualsCpu:GpuCodec.ProbabilityBitsRange
    else
      echo "compute-sanitizer: not found, memcheck/racecheck skipped" | tee -a "$summary"; failed=1
    fi
  fi
  for f in "$logs"/bench_*.log; do echo "-- $(basename "$f" .log)"; cat "$f"; done
  echo "== summary"; cat "$summary"
  exit $failed
  ;;
*)
  sed -n '2,32p' "$0"
  exit 2
  ;;
esac
