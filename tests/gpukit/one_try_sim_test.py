#!/usr/bin/env python3
"""prepare and one-try end to end on the simulated driver: the bundle builds
from this build and passes its checks, the device call is printed, and
one-try --sim runs its steps for real (libneuzip under nztrace with hook
counts, driverprobe, the codec suite and benchmark, vmmprobe), skips the
PyTorch and GPU-tool steps in one line each, and returns exactly summary.txt
and one tarball.

    one_try_sim_test.py SOURCE_ROOT BUILD_ROOT
"""
import json
import os
import shutil
import subprocess
import re
import sys
import tarfile

root, build = sys.argv[1], sys.argv[2]
bundle = os.path.join(build, "gpukit-bundle")
out = os.path.join(build, "gpukit-out")
failures = []


def expect(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}", flush=True)


prep = subprocess.run([sys.executable, os.path.join(root, "tools", "gpu", "prepare"), "--no-build",
                       "--build", build, "--out", bundle], capture_output=True, text=True, timeout=300)
print(prep.stdout + prep.stderr)
expect(prep.returncode == 0, f"prepare rc {prep.returncode}")
expect(f"command:   python3 {os.path.relpath(bundle, root)}/one-try" in prep.stdout, "prepare printed the command")
expect("carry:" in prep.stdout and "timeout_s: 540" in prep.stdout, "prepare printed carry and timeout_s")
for f in ("one-try", "MANIFEST.json", "lib/libneuzip.so", "bin/driverprobe", "kernels/neuzip_kernels.fatbin",
          "sim/libcuda.so.1", "examples/train.py", "weights/gpt-neo-125m-attn-bf16.safetensors"):
    expect(os.path.isfile(os.path.join(bundle, f)), f"bundle has {f}")
if failures:
    sys.exit(1)

shutil.rmtree(out, ignore_errors=True)
env = {k: v for k, v in os.environ.items() if k not in ("OUT", "LD_PRELOAD")}
run = subprocess.run([sys.executable, os.path.join(bundle, "one-try"), "--sim", "--out", out], capture_output=True,
                     text=True, timeout=550, env=env)
print(run.stdout[-6000:] + run.stderr[-3000:])
expect(run.returncode == 0, f"one-try --sim rc {run.returncode}")
expect(sorted(os.listdir(out)) == ["one-try.tar.gz", "summary.txt"], f"$OUT holds {sorted(os.listdir(out))}")
summary = open(os.path.join(out, "summary.txt")).read()
for step in ("facts", "driverprobe", "preload_smoke", "codec_suite", "corrupt_traps", "bench_bf16_4mib", "bench_lossy_k3_b512_4mib",
             "vmmprobe",
             "nzbench_gpu"):
    expect(f"\n{step}: ok " in summary, f"step {step} ok")
for step in ("torch_plain", "torch_neuzip", "torch_param_probe", "torchrun_ddp", "torchrun_fsdp", "memcheck_decode",
             "ncu_decode"):
    expect(f"\n{step}: SKIPPED " in summary, f"step {step} skipped with a reason")
expect("result: no step failed" in summary, "summary's last line")

with tarfile.open(os.path.join(out, "one-try.tar.gz")) as tar:
    names = tar.getnames()
    for f in ("summary.txt", "steps.json", "driverprobe.json", "preload_smoke.log", "vmmprobe.json",
              "codec_bench.json", "facts.log"):
        expect(f"one-try/{f}" in names, f"tarball has {f}")
    probe = json.load(tar.extractfile("one-try/driverprobe.json"))
    smoke = tar.extractfile("one-try/preload_smoke.log").read().decode(errors="replace")
expect(probe.get("simulator") is True, "driverprobe ran on the simulator")
vmm = probe.get("vmm_offsets", {})
# The simulator maps whole handles only, as the H200's driver does: the probe
# reports the refusal as an answer (no "error").
expect(vmm.get("slices_mapped") is False and vmm.get("slice_refused_with") == "CUDA_ERROR_NOT_SUPPORTED"
       and "error" not in vmm, f"slices of a handle refused, as on the H200: {vmm}")
lp = probe.get("launch_path", {})
expect(lp.get("spanning_mappings", {}).get("unmap_over_all") == "CUDA_SUCCESS"
       and lp.get("spanning_mappings", {}).get("written_through_all") is True
       and lp.get("call_costs", {}).get("event_record_ns", -1) >= 0, f"launch path probe: {lp}")
# The simulator resets access at cuMemUnmap (as CUDA documents): the probe sees
# no access after a remap, and does not write.
ar = lp.get("access_after_remap", {})
expect(ar.get("access_before_unmap") == 3 and ar.get("access_after_remap") == 0
       and ar.get("write_after_remap") == "not tried" and ar.get("survives_remap") is False,
       f"access after unmap and remap: {ar}")
# The simulator's pool keeps freed memory until a synchronization of any
# stream (the documented default): none back when the stream reached the free,
# all of it after syncing an idle stream (what free_store_now relies on).
pool = probe.get("stream_ordered_pool", {})
expect("error" not in pool and pool.get("taken") == pool.get("bytes") == 64 << 20
       and pool.get("back_when_the_stream_reached_the_free") == 0
       and pool.get("back_after_syncing_an_idle_stream") == pool.get("bytes")
       and pool.get("stores_timed") == 64 and pool.get("free_at_end_minus_start") == 0,
       f"stream-ordered pool probe: {pool}")
tm = probe.get("tensor_map", {})
expect(len(tm.get("bytes", "")) == 256, "tensor map hex dump of 128 bytes")
# The simulator's descriptor is opaque like a GPU's (tests/sim/README.md): the
# address is in no 8-byte word, but moving it changes bytes [0,8).
expect(tm.get("address_verbatim_words") == [] and tm.get("bytes_that_differ")
       and all(b < 8 for b in tm["bytes_that_differ"]), f"tensor map analysis: {tm}")
points = probe.get("pointer_attributes", {}).get("points", [])
expect(len(points) == 6, f"6 pointer-attribute points, got {len(points)}")
expect("neuzip: hook count cuLaunchKernel" in smoke, "hook counts of the launches in the smoke log")
m = re.search(r"^neuzip: hook time cuLaunchKernel ([0-9.]+) ms \((\d+) ns per call\)$", smoke, re.M)
expect(m is not None and int(m.group(2)) > 0, "the time spent in the launch hook, per call, in the smoke log")
expect("neuzip: param probe:" in smoke, "param probe lines in the smoke log")

print(f"one_try_sim_test: {len(failures)} failures")
sys.exit(1 if failures else 0)
