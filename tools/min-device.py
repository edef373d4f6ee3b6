#!/usr/bin/env python3
"""Smallest simulated device (NZSIM_MEMORY_MB) on which a minifw run
completes with the digest of an unconstrained run, without and with neuzip.

usage: tools/min-device.py --build DIR [--env K=V ...] [--only plain|neuzip] -- MINIFW_ARGS...

Runs minifw on the simulator (DIR/tests/sim/libcuda.so.1) once on the
default (large) device for the reference digest and peak, then bisects the
device size in MiB between --lo (default 1) and ceil(peak) + 1: a size "fits" when the run
exits 0 with the reference digest. --env settings apply to the neuzip runs
(e.g. NEUZIP_COMPRESS=...). Assumes that fitting is monotonic in the size
(checked at the answer: the size one below must fail). Prints one line per
mode: `plain|neuzip: smallest device N MiB (peak at N: P bytes)`.
If --lo turns out to fit, the answer is --lo + 1 (widen the range).
"""
import argparse
import math
import re
import subprocess
import sys

from minifw_sim import minifw, sim_env


def run(build, args, mib, env_extra, neuzip):
    env = sim_env(build, neuzip, env_extra)
    if mib is not None:
        env["NZSIM_MEMORY_MB"] = str(mib)
    p = subprocess.run([minifw(build)] + args, env=env, capture_output=True, text=True, timeout=900)
    digest = re.findall(r"^digest: ([0-9a-f]+)$", p.stdout, re.M)
    peak = re.findall(r"^nzsim-peak-physical: (\d+)$", p.stderr, re.M)
    return p.returncode, (digest[-1] if digest else None), (int(peak[-1]) if peak else None)


def smallest(build, args, env_extra, neuzip, lo, hi, digest):
    def fits(mib):
        rc, d, peak = run(build, args, mib, env_extra, neuzip)
        print(f"  {'neuzip' if neuzip else 'plain'} {mib} MiB: rc {rc} {'ok' if d == digest else 'bad digest'}",
              file=sys.stderr, flush=True)
        return (rc == 0 and d == digest), peak
    ok, peak_hi = fits(hi)
    if not ok:
        return None, None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok, peak = fits(mid)
        if ok:
            hi, peak_hi = mid, peak
        else:
            lo = mid
    return hi, peak_hi


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--only", choices=["plain", "neuzip"])
    ap.add_argument("--lo", type=int, default=1, help="a size in MiB known not to fit (narrows the search)")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    o = ap.parse_args()
    args = o.args[1:] if o.args and o.args[0] == "--" else o.args
    env_extra = dict(kv.split("=", 1) for kv in o.env)
    rc, digest, peak = run(o.build, args, None, {}, False)
    if rc != 0 or digest is None:
        sys.exit(f"reference run failed (rc {rc})")
    hi = math.ceil(peak / (1 << 20)) + 1
    print(f"reference: digest {digest}, peak {peak} bytes")
    for mode in ("plain", "neuzip"):
        if o.only and o.only != mode:
            continue
        mib, at = smallest(o.build, args, env_extra, mode == "neuzip", o.lo, hi, digest)
        print(f"{mode}: smallest device {mib} MiB (peak at {mib}: {at} bytes)" if mib else f"{mode}: no fit up to {hi} MiB")


if __name__ == "__main__":
    main()
