#!/usr/bin/env python3
"""torch_workloads' measurement helpers on a made-up torch (the workloads
themselves need PyTorch on a GPU: docs/GPU.md): the filler of a smaller GPU
leaves the asked-for memory free and says why when it cannot; the sampler
keeps a peak per phase; without libnvidia-ml the NVML figure is absent, not
zero.

    torch_workloads_test.py SOURCE_ROOT
"""
import importlib.util
import os
import sys
import time
import types

spec = importlib.util.spec_from_file_location(
    "torch_workloads", os.path.join(sys.argv[1], "tools", "gpu", "torch_workloads.py"))
tw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tw)
failures = []
MiB = 1 << 20


def expect(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}")


class FakeCuda:
    """A device of `total` bytes; empty() takes from free, or raises as torch does."""

    def __init__(self, total, used):
        self.total, self.used = total, used

    def mem_get_info(self):
        return self.total - self.used, self.total

    def synchronize(self):
        pass

    def empty_cache(self):
        pass

    def set_device(self, i):
        pass

    def get_device_properties(self, i):
        return types.SimpleNamespace(uuid="00000000-0000-0000-0000-000000000000")


def fake_torch(total, used):
    cuda = FakeCuda(total, used)

    def empty(n, dtype=None, device=None):
        if n > cuda.total - cuda.used:
            raise RuntimeError("CUDA out of memory")
        cuda.used += n
        return object()
    return types.SimpleNamespace(cuda=cuda, empty=empty, uint8="uint8")


t = fake_torch(1000 * MiB, 100 * MiB)
filler, record = tw.hold_all_but(t, 300 * MiB)
expect(filler is not None and record["held"] == 600 * MiB, f"holds all but 300 MiB: {record}")
expect(record["free_after"] == 300 * MiB, f"300 MiB left free: {record}")
t = fake_torch(1000 * MiB, 900 * MiB)
filler, record = tw.hold_all_but(t, 300 * MiB)
expect(filler is None and record["held"] == 0 and "less than that" in record["why"], f"cannot: says why: {record}")

t = fake_torch(1000 * MiB, 100 * MiB)
s = tw.DeviceMemorySampler(t, period=0.001)
if s.nvml.handle is None:
    expect(s.used_nvml() is None, "no NVML: no figure (not 0)")
s.start()
t.cuda.used = 400 * MiB
time.sleep(0.02)
s.mark("load")
t.cuda.used = 250 * MiB
time.sleep(0.02)
s.mark("run")
peak = s.stop()
expect(peak == 400 * MiB, f"overall peak: {peak >> 20} MiB")
expect(s.phases["load"]["cumemgetinfo"] == 400 * MiB and s.phases["run"]["cumemgetinfo"] == 250 * MiB,
       f"a peak per phase: {s.phases}")

print(f"torch_workloads_test: {len(failures)} failures")
sys.exit(1 if failures else 0)
