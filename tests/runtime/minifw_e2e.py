#!/usr/bin/env python3
"""End-to-end checks of libneuzip.so on the mini framework (tests/apps/minifw)
running on the simulated driver.

usage: minifw_e2e.py CHECK --minifw EXE --neuzip LIB --peak-report LIB [--] MINIFW_ARGS...
checks:
  same-digest          digest with neuzip == digest without; no illegal address
  same-digest-off      the same with NEUZIP=0 (pure pass-through)
  same-digest-budget MIB   the same with NEUZIP_STAGING_MB=MIB (evictions, recompressions)
  oom MIB              without neuzip on a MIB device: exit 3; with neuzip: exit 0
                       and the digest of an unconstrained run without neuzip
  peak MIB RATIO       with NEUZIP_STAGING_MB=MIB: prints both peaks; fails if
                       peak(neuzip) > RATIO * peak(plain)
"""
import os
import re
import subprocess
import sys


def run(exe, args, env_extra, preload):
    env = dict(os.environ)
    env.update(env_extra)
    if preload:
        env["LD_PRELOAD"] = " ".join(preload)
    p = subprocess.run([exe] + args, env=env, capture_output=True, text=True, timeout=600)
    digest = re.findall(r"^digest: ([0-9a-f]+)$", p.stdout, re.M)
    peak = re.findall(r"^nzsim-peak-physical: (\d+)$", p.stderr, re.M)
    faults = re.findall(r"^nzsim-faults: (\d+)$", p.stderr, re.M)
    return {
        "rc": p.returncode,
        "digest": digest[-1] if digest else None,
        "peak": int(peak[-1]) if peak else None,
        "faults": int(faults[-1]) if faults else 0,
        "stderr": p.stderr,
        "stdout": p.stdout,
    }


def fail(msg, *runs):
    print("FAIL:", msg)
    for r in runs:
        print("--- rc", r["rc"], "digest", r["digest"])
        print(r["stderr"][-3000:])
    sys.exit(1)


def check_clean(r, what):
    if r["rc"] != 0:
        fail(f"{what}: exit code {r['rc']}", r)
    if "illegal address" in r["stderr"] or r["faults"] != 0:
        fail(f"{what}: the simulator caught an illegal address", r)
    if r["digest"] is None:
        fail(f"{what}: no digest", r)


def main():
    argv = sys.argv[1:]
    check = argv.pop(0)
    params = []
    while argv and argv[0] != "--" and not argv[0].startswith("--"):
        params.append(argv.pop(0))
    opts = {}
    while argv and argv[0] in ("--minifw", "--neuzip", "--peak-report"):
        opts[argv[0]] = argv[1]
        argv = argv[2:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    exe, lib, peak_lib = opts["--minifw"], opts["--neuzip"], opts["--peak-report"]
    args = argv

    plain = run(exe, args, {}, [peak_lib])
    check_clean(plain, "without neuzip")
    if check == "same-digest":
        nz = run(exe, args, {"NEUZIP_REPORT": "1"}, [lib, peak_lib])
        check_clean(nz, "with neuzip")
        if nz["digest"] != plain["digest"]:
            fail("digests differ", plain, nz)
        print(f"digest {nz['digest']} equal; peak {plain['peak']} -> {nz['peak']}")
        print([l for l in nz["stderr"].splitlines() if l.startswith("neuzip: peak")])
    elif check == "same-digest-budget":
        nz = run(exe, args, {"NEUZIP_REPORT": "1", "NEUZIP_STAGING_MB": params[0]}, [lib, peak_lib])
        check_clean(nz, "with neuzip and a staging budget")
        if nz["digest"] != plain["digest"]:
            fail("digests differ under a staging budget", plain, nz)
        report = [l for l in nz["stderr"].splitlines() if l.startswith("neuzip: peak")]
        print(f"digest {nz['digest']} equal with {params[0]} MiB staging;", report)
        if not report or " drops 0 " in report[0] and " recompressions 0 " in report[0]:
            fail("the budget evicted nothing", nz)
    elif check == "same-digest-off":
        nz = run(exe, args, {"NEUZIP": "0"}, [lib, peak_lib])
        check_clean(nz, "with NEUZIP=0")
        if nz["digest"] != plain["digest"]:
            fail("digests differ with NEUZIP=0", plain, nz)
        print(f"digest {nz['digest']} equal with NEUZIP=0")
    elif check == "oom":
        mib = params[0]
        small = run(exe, args, {"NZSIM_MEMORY_MB": mib}, [peak_lib])
        if small["rc"] != 3:
            fail(f"without neuzip on {mib} MiB: expected exit 3 (OOM), got {small['rc']}", small)
        nz = run(exe, args, {"NZSIM_MEMORY_MB": mib, "NEUZIP_REPORT": "1"}, [lib, peak_lib])
        check_clean(nz, f"with neuzip on {mib} MiB")
        if nz["digest"] != plain["digest"]:
            fail("digest on the small device differs", plain, nz)
        print(f"{mib} MiB: plain OOM, neuzip ok with digest {nz['digest']}; peak {nz['peak']}")
    elif check == "peak":
        mib, ratio = params[0], float(params[1])
        nz = run(exe, args, {"NEUZIP_STAGING_MB": mib, "NEUZIP_REPORT": "1"}, [lib, peak_lib])
        check_clean(nz, "with neuzip")
        if nz["digest"] != plain["digest"]:
            fail("digests differ", plain, nz)
        measured = nz["peak"] / plain["peak"]
        print(f"peak {plain['peak']} -> {nz['peak']} ({measured:.3f}x), staging {mib} MiB")
        if measured > ratio:
            fail(f"peak ratio {measured:.3f} above {ratio}", nz)
    else:
        print("unknown check", check)
        sys.exit(2)


if __name__ == "__main__":
    main()
