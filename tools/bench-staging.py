#!/usr/bin/env python3
"""Staging work per step under the simulator's A100 cost model (issue 10).

Runs minifw under one or more libneuzip.so builds (e.g. the code before the
staging rework and the current one, with and without the look-ahead stager)
for 1 and for S steps, and reports the steady-state figures per step as
(S-step run - 1-step run) / (S - 1): VMM calls, decode launches, host time in
hooks on the launching thread (its CPU time in them, and the part spent
waiting for the device, where the library reports them), the share of stagings done ahead, and
the run's digest (which must not change).

Usage: tools/bench-staging.py BUILD_DIR [--lib NAME=PATH[:ENV=V,...]]... [--steps S] [--minifw-arg=ARG]...
Without --lib: BUILD_DIR's library, look-ahead off and on.
"""
import argparse
import os
import re
import subprocess
import sys

WORKLOADS = [
    ("infer 64", ["infer", "--size-mb", "64"], 32),
    ("train sgd 64", ["train", "--optimizer", "sgd", "--size-mb", "64"], 32),
    ("train adam 64", ["train", "--optimizer", "adam", "--size-mb", "64"], 32),
    ("infer 256/32", ["infer", "--size-mb", "256", "--weight-mb", "32"], 128),
    ("train sgd 256/32", ["train", "--optimizer", "sgd", "--size-mb", "256", "--weight-mb", "32"], 128),
    ("train adam 256/32", ["train", "--optimizer", "adam", "--size-mb", "256", "--weight-mb", "32"], 128),
]
FIELDS = {
    "vmm": r"vmm calls (\d+)",
    "creates": r"\(creates (\d+)\)",
    "units": r"decompressions (\d+)",
    "launches": r"decode launches (\d+)",
    "hook_ns": r"hook host ns (\d+)",
    "wait_ns": r"\(waiting (\d+)",
    # Older libraries do not report these (shown as —).
    "lock_ns": r"for the lock (\d+)",
    "stager_ns": r"for the stager (\d+)",
    "encode_ns": r"encoding (\d+)\)",
    "cpu_ns": r"hook cpu ns (\d+)",
    "device_encodes": r"encoded on the device (\d+)",
    "ahead": r"stagings ahead (\d+)",
    "on_launch": r"on launch (\d+)",
}


def run(build, lib, env_extra, args, steps, budget_mb):
    env = dict(os.environ)
    env.update({"LD_LIBRARY_PATH": os.path.join(build, "tests/sim"), "NZSIM_COST": "a100",
                "NEUZIP_STAGING_MB": str(budget_mb), "NEUZIP_REPORT": "1", "LD_PRELOAD": lib})
    env.update(env_extra)
    p = subprocess.run([os.path.join(build, "tests/apps/minifw")] + args + ["--steps", str(steps)],
                       env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        sys.exit(f"minifw {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    out = {k: (int(m.group(1)) if (m := re.search(rx, p.stderr)) else None) for k, rx in FIELDS.items()}
    m = re.search(r"digest: (\w+)", p.stdout + p.stderr)
    out["digest"] = m.group(1) if m else "?"
    return out


def per_step(a, b, steps, key):
    if a[key] is None or b[key] is None:
        return None
    return (b[key] - a[key]) / (steps - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--lib", action="append", default=[], help="NAME=PATH[:ENV=V,...]")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--only", help="run only workloads whose name contains this")
    ap.add_argument("--minifw-arg", action="append", default=[],
                    help="appended to every workload's minifw arguments (e.g. --nz-tag); repeatable")
    a = ap.parse_args()
    lib = os.path.join(a.build, "interpose/libneuzip.so")
    libs = []
    for spec in a.lib or [f"now={lib}", f"now+lookahead={lib}:NEUZIP_LOOKAHEAD_MB=auto"]:
        name, rest = spec.split("=", 1)
        path, _, envs = rest.partition(":")
        libs.append((name, path, dict(e.split("=", 1) for e in envs.split(",") if e)))
    print("| workload (budget) | library | 2 MiB units staged/step | VMM calls/step (of which cuMemCreate) | decode launches/step | "
          "hook ms/step | on its CPU | of which waiting for the device | for the lock | for the stager | encoding | "
          "units encoded on the device | staged ahead | digest |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for wname, args, budget in WORKLOADS:
        if a.only and a.only not in wname:
            continue
        for lname, path, env in libs:
            one = run(a.build, path, env, args + a.minifw_arg, 1, budget)
            many = run(a.build, path, env, args + a.minifw_arg, a.steps, budget)
            units, vmm, creates, la, hook, wait = (per_step(one, many, a.steps, k)
                                                   for k in ("units", "vmm", "creates", "launches", "hook_ns", "wait_ns"))
            lock, stager, encode, cpu, on_device = (per_step(one, many, a.steps, k) for k in
                                                    ("lock_ns", "stager_ns", "encode_ns", "cpu_ns", "device_encodes"))
            ahead = per_step(one, many, a.steps, "ahead")
            on_launch = per_step(one, many, a.steps, "on_launch")
            share = (f"{100 * ahead / (ahead + on_launch):.0f} %" if ahead is not None and on_launch is not None
                     and ahead + on_launch > 0 else "—")
            fmt = lambda v, scale=1.0: "—" if v is None else f"{v * scale:,.0f}"
            print(f"| {wname} ({budget} MiB) | {lname} | {fmt(units)} | {fmt(vmm)} ({fmt(creates)}) | {fmt(la)} | {fmt(hook, 1e-6)} | "
                  f"{fmt(cpu, 1e-6)} | {fmt(wait, 1e-6)} | {fmt(lock, 1e-6)} | {fmt(stager, 1e-6)} | "
                  f"{fmt(encode, 1e-6)} | {fmt(on_device)} | {share} | "
                  f"{many['digest']} |", flush=True)


if __name__ == "__main__":
    main()
