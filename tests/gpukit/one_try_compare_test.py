#!/usr/bin/env python3
"""one-try's side-by-side table on made-up PyTorch results: a run whose
outputs differ from the plain run's is flagged, equal ones are not, peaks
and step times are relative to the plain run, and hook counts are read from
the logs. (The PyTorch runs themselves need a GPU: docs/GPU.md.)

    one_try_compare_test.py SOURCE_ROOT
"""
import importlib.machinery
import importlib.util
import json
import os
import sys
import tempfile
import types

loader = importlib.machinery.SourceFileLoader("one_try", os.path.join(sys.argv[1], "tools", "gpu", "one-try"))
spec = importlib.util.spec_from_loader("one_try", loader)
one_try = importlib.util.module_from_spec(spec)
loader.exec_module(one_try)
failures = []


def expect(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}")


def row(workload, outputs, peak_mib, steps, nvml_mib=None):
    r = {"workload": workload, "ok": True, "outputs": outputs, "device_peak_above_baseline": peak_mib << 20,
         "step_ms": steps, "nz_stats": {"available": True, "device_bytes_saved_peak": 64 << 20, "faults": 3}}
    if nvml_mib is not None:
        r["device_peak_above_baseline_nvml"] = nvml_mib << 20
    return r


with tempfile.TemporaryDirectory() as work:
    for mode, _, _ in one_try.TORCH_MODES:
        with open(os.path.join(work, f"torch_{mode}.jsonl"), "w") as f:
            f.write(json.dumps({"workload": "_process"}) + "\n")
            f.write(json.dumps(row("infer", {"logits": "a"}, 700 if mode == "neuzip_budget" else 1000, [10, 12, 14]))
                    + "\n")
            # NVML's figure in every run: it decides (cuMemGetInfo's is lowered by neuzip's staging room).
            f.write(json.dumps(row("lomo", {"losses": ["d"]}, 900 if mode == "neuzip" else 1000, [5, 5],
                                   nvml_mib=800 if mode == "neuzip" else 1000)) + "\n")
            if mode == "neuzip_policy":  # died in it: reported as a failure, not as differing outputs
                f.write(json.dumps({"workload": "train", "ok": False, "error": "the process died"}) + "\n")
            else:
                f.write(json.dumps(row("train", {"losses": ["b" if mode == "neuzip" else "c"]}, 500, [20, 22]))
                        + "\n")
        with open(os.path.join(work, f"torch_{mode}.log"), "w") as f:
            f.write("torch_workloads: infer ...\nneuzip: hook count cuLaunchKernel 12\nneuzip: hook count cuInit 1\n")
    args = types.SimpleNamespace(sim=False, bundle=work)
    run = one_try.Run(args, one_try.PLANS["gpu"], work)
    counts = one_try.collect_neuzip_lines(run)
    table = one_try.compare_torch(run)
    text = one_try.summary_text(run, args, table, {}, counts)
    print(text)
    by = {(r["workload"], r["mode"]): r for r in table}
    expect(run.steps[-1]["outcome"] == "FAILED" and "train/neuzip" in run.steps[-1]["note"]
           and "infer/" not in run.steps[-1]["note"], f"the mismatch flagged, and only it: {run.steps[-1]}")
    expect("died or timed out: ['train/neuzip_policy']" in run.steps[-1]["note"] and
           "'train/neuzip_policy'" not in run.steps[-1]["note"].split("died")[0],
           f"a workload that died is a failure, not a mismatch: {run.steps[-1]['note']}")
    expect(by[("train", "neuzip")]["same_outputs_as_plain"] is False, "train/neuzip differs")
    expect(by[("infer", "neuzip_budget")]["same_outputs_as_plain"] is True, "infer/neuzip_budget equal")
    expect(by[("infer", "neuzip_budget")]["peak_vs_plain"] == 0.7, "peak relative to plain")
    expect(by[("infer", "neuzip_budget")]["peak_from"] == "cuMemGetInfo", "no NVML figure: cuMemGetInfo's")
    expect(by[("lomo", "neuzip")]["peak_vs_plain"] == 0.8 and by[("lomo", "neuzip")]["peak_from"] == "nvml"
           and by[("lomo", "neuzip")]["peak_cumemgetinfo_vs_plain"] == 0.9, f"NVML's peak decides: {by[('lomo', 'neuzip')]}")
    expect(by[("infer", "plain")]["median_step_ms"] == 13, "steady-state step time: the first left out")
    expect(by[("train", "plain")]["median_step_ms"] == 21, "two steps: both count")
    expect(counts["torch_neuzip"] == {"cuLaunchKernel": 12, "cuInit": 1}, f"hook counts parsed: {counts}")
    lines = open(os.path.join(work, "torch_neuzip.neuzip-lines.txt")).read().splitlines()
    expect(len(lines) == 2 and all(l.startswith("neuzip:") for l in lines), "every neuzip: line kept, nothing else")
    expect("result: FAILED: torch_compare" in text, "the summary's verdict")

# A smaller GPU: sized from plain's largest allocated memory; the run that
# ran out of memory, the one that completed with plain's outputs, and one that
# completed with other outputs are told apart.
with tempfile.TemporaryDirectory() as work:
    def write(name, rows):
        with open(os.path.join(work, f"torch_{name}.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    plain_infer = dict(row("infer", {"logits": "a"}, 1000, [10, 12, 14]), torch_max_allocated=900 << 20)
    write("plain", [{"workload": "_process"}, plain_infer])
    write("fit90_infer_plain", [{"workload": "infer", "ok": False, "out_of_memory": True,
                                 "error": "OutOfMemoryError: CUDA out of memory"}])
    write("fit90_infer_neuzip", [row("infer", {"logits": "a"}, 700, [20, 26, 26])])
    write("fit80_infer_neuzip", [row("infer", {"logits": "z"}, 650, [30, 30])])
    with open(os.path.join(work, "torch_fit90_infer_neuzip.log"), "w") as f:
        f.write("neuzip: peak device used 1 bytes; ...; hook cpu ns 5; parked in host memory 7\n")
    run = one_try.Run(types.SimpleNamespace(sim=False, bundle=work), one_try.PLANS["gpu"], work)
    expect(one_try.fit_leave_mib(plain_infer, 0.9) == 810, "left free: 0.9 of max allocated, in MiB")
    fit = {(r["share"], r["run"]): r for r in one_try.fit_table(run)}
    expect(fit[(0.9, "plain")]["outcome"] == "out of memory", f"plain ran out of memory: {fit.get((0.9, 'plain'))}")
    expect(fit[(0.9, "neuzip")]["outcome"] == "ok" and fit[(0.9, "neuzip")]["same_outputs_as_plain"]
           and fit[(0.9, "neuzip")]["step_vs_plain"] == 2.0, f"neuzip completed, same outputs: {fit.get((0.9, 'neuzip'))}")
    expect(not fit[(0.8, "neuzip")]["same_outputs_as_plain"], "other outputs are not called the same")
    expect(fit[(0.9, "neuzip")]["parked"] == 7 and fit[(0.8, "neuzip")]["parked"] is None
           and fit[(0.9, "plain")]["parked"] is None, f"parks read from the report line: {fit}")
    text = one_try.summary_text(run, types.SimpleNamespace(sim=False, bundle=work), [], {}, {}, list(fit.values()))
    expect("A smaller GPU" in text and "out of memory" in text, "the fit table is in the summary")

# torchrun DDP/FSDP: the compare step wants the losses and digest equal line
# for line (timings ignored), and fails on one differing bit.
class FakeRun:
    """Run.command writes a made-up train.py stdout; record() keeps outcomes."""

    def __init__(self, work, outputs):
        self.work, self.outputs, self.steps = work, outputs, []

    def command(self, name, argv, limit, env=None, stdout_to=None):
        with open(stdout_to, "w") as f:
            f.write(self.outputs[name])
        return 0

    def record(self, name, outcome, seconds, note=""):
        self.steps.append((name, outcome))

    def skip(self, name, why):
        self.steps.append((name, "SKIPPED"))


with tempfile.TemporaryDirectory() as work:
    good = "train: 125m\nstep 0 loss 10.1 (5.0 ms)\nstep 1 loss 9.5 (4.0 ms)\ndigest abc\n"
    other_timing = good.replace("(4.0 ms)", "(4.4 ms)")
    bad = good.replace("loss 9.5", "loss 9.6")
    outs = {"torchrun_ddp_plain": good, "torchrun_ddp_neuzip": other_timing,
            "torchrun_fsdp_plain": good, "torchrun_fsdp_neuzip": bad}
    fake = FakeRun(work, outs)
    one_try.step_torchrun_dist(fake, types.SimpleNamespace(), {"examples": work, "lib": "libneuzip.so"}, {})
    outcome = dict(fake.steps)
    expect(outcome.get("torchrun_ddp_compare") == "ok", f"ddp equal losses, other timings: ok ({fake.steps})")
    expect(outcome.get("torchrun_fsdp_compare") == "FAILED", f"fsdp differing loss: FAILED ({fake.steps})")

print(f"one_try_compare_test: {len(failures)} failures")
sys.exit(1 if failures else 0)
