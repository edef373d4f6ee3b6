#!/usr/bin/env python3
"""expect_fault.py CMD ARGS...: runs CMD; passes only when it fails AND the
simulated driver reported an illegal address (`nzsim: illegal address`), so
that no other failure (a crash, a missing file) can pass for the fault the
test is about."""
import subprocess
import sys

p = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
out = p.stdout + p.stderr
faulted = "nzsim: illegal address" in out
print(out[-4000:])
if p.returncode == 0 or not faulted:
    print(f"FAIL: expected a failure with an illegal address; exit {p.returncode}, "
          f"illegal address reported: {faulted}")
    sys.exit(1)
print(f"failed with an illegal address (exit {p.returncode}), as expected")
