#!/usr/bin/env python3
"""The GPU kit's Python without a GPU: every script compiles, torch_workloads
rejects bad arguments and says so when torch (or CUDA) is missing, and, when
torch is importable here, the examples run on the CPU with --tiny.

    python_syntax_test.py SOURCE_ROOT
"""
import os
import py_compile
import subprocess
import sys
import tempfile

root = sys.argv[1]
failures = []
scripts = [os.path.join(root, "tools", "gpu", n) for n in ("one-try", "prepare", "needed_libs.py", "torch_workloads.py")]
scripts += [os.path.join(root, "examples", n) for n in sorted(os.listdir(os.path.join(root, "examples")))
            if n.endswith(".py")]
with tempfile.TemporaryDirectory() as tmp:
    for s in scripts:
        try:
            py_compile.compile(s, cfile=os.path.join(tmp, "x.pyc"), doraise=True)
        except py_compile.PyCompileError as e:
            failures.append(f"{s}: {e}")
    workloads = os.path.join(root, "tools", "gpu", "torch_workloads.py")
    out = os.path.join(tmp, "w.jsonl")
    bad = subprocess.run([sys.executable, workloads, "--out", out, "--only", "bogus"], capture_output=True, text=True)
    if bad.returncode != 2 or "unknown workloads" not in bad.stderr:
        failures.append(f"torch_workloads --only bogus: rc {bad.returncode}, {bad.stderr[-200:]}")
    good = subprocess.run([sys.executable, workloads, "--out", out, "--only", "infer"], capture_output=True, text=True,
                          timeout=300)
    # Without torch or without a CUDA device it must say so and exit 3 (one-try's "skipped").
    if good.returncode != 3 or "skipped" not in good.stderr:
        failures.append(f"torch_workloads without a GPU: rc {good.returncode}, {good.stderr[-300:]}")

have_torch = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
if have_torch:
    for name, args in (("train.py", ["--steps", "2"]), ("infer.py", ["--new-tokens", "2"]), ("lora.py", ["--steps", "1"])):
        p = subprocess.run([sys.executable, os.path.join(root, "examples", name), "--tiny", "--device", "cpu", *args],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0 or ("digest" not in p.stdout and "skipped" not in p.stdout):
            failures.append(f"examples/{name} --tiny: rc {p.returncode}: {(p.stdout + p.stderr)[-400:]}")
else:
    print("torch is not installed here: the examples were compiled, not run")

for f in failures:
    print(f"FAIL {f}")
print(f"python_syntax_test: {len(scripts)} scripts, {len(failures)} failures")
sys.exit(1 if failures else 0)
