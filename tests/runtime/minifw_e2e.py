#!/usr/bin/env python3
"""End-to-end checks of libneuzip.so on the mini framework (tests/apps/minifw)
running on the simulated driver.

usage: minifw_e2e.py CHECK --minifw EXE --neuzip LIB --peak-report LIB [--] MINIFW_ARGS...
checks:
  same-digest          digest with neuzip == digest without; no illegal address
  same-digest-off      the same with NEUZIP=0 (pure pass-through)
  unserved KIND        the weights in memory neuzip passes through (minifw --alloc
                       KIND: expandable = the program's own cuMemCreate/cuMemMap,
                       async = cuMemAllocAsync): the digest of the cuMemAlloc run
                       with and without neuzip (defaults, a 4 MiB budget, the
                       optimizer policy), nothing compressed or staged, exactly one
                       notice naming the setting, the peak in the report and
                       nothing still counted at exit; the matching PyTorch
                       setting (PYTORCH_ALLOC_CONF for async,
                       PYTORCH_CUDA_ALLOC_CONF for expandable) says it at start
                       instead (still once); the cuMemAlloc run says nothing
  staging-calls MIB WEIGHTS PER_WEIGHT [ENV=V...]   NEUZIP_STAGING_MB=MIB, the
                       minifw arguments' --steps S against 1 step: same digest,
                       no cuMemCreate after step 1, decode launches per step <=
                       WEIGHTS, VMM calls per step <= PER_WEIGHT x WEIGHTS
  same-digest-budget MIB [ENV=V...]   the same with NEUZIP_STAGING_MB=MIB (evictions,
                       recompressions); with NEUZIP_LOG=1 on a driver that maps whole handles only (the simulator's default) also the line saying so
  oom MIB              without neuzip on a MIB device: exit 3; with neuzip: exit 0
                       and the digest of an unconstrained run without neuzip
  peak MIB RATIO       with NEUZIP_STAGING_MB=MIB: prints both peaks; fails if
                       peak(neuzip) > RATIO * peak(plain)
  peak-quarter RATIO   staging budget = a quarter of the weights (minifw's
                       weights-bytes), lossless: same digest, peak ratio <= RATIO
  peak-quarter-lossy RATIO RELTOL   the same with NEUZIP_MODE=lossy:3:512 (give
                       minifw --nz-tag): peak ratio <= RATIO, and every step's
                       loss within RELTOL (relative) of the run without neuzip
  oom-auto MARGIN_MB   P = peak of a run without neuzip on the default (large)
                       device; on a device of ceil(P / MiB) - MARGIN_MB MiB the
                       run without neuzip must exit 3 and the run with neuzip
                       (default settings) must give the large device's digest
  oom-fraction FRACTION  the same on a device of floor(FRACTION * P / MiB) MiB:
                       neuzip must fit a device that much smaller than the
                       run without it needs
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile


def run(exe, args, env_extra, preload):
    env = dict(os.environ)
    env.update(env_extra)
    if preload:
        env["LD_PRELOAD"] = " ".join(preload)
    p = subprocess.run([exe] + args, env=env, capture_output=True, text=True, timeout=600)
    digest = re.findall(r"^digest: ([0-9a-f]+)$", p.stdout, re.M)
    peak = re.findall(r"^nzsim-peak-physical: (\d+)$", p.stderr, re.M)
    faults = re.findall(r"^nzsim-faults: (\d+)$", p.stderr, re.M)
    weights = re.findall(r"^weights-bytes: (\d+)$", p.stderr, re.M)
    losses = [float(x) for x in re.findall(r"^step \d+ loss 0x[0-9a-f]+ (\S+)$", p.stdout, re.M)]
    return {
        "weights": int(weights[-1]) if weights else None,
        "losses": losses,
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
        env = {"NEUZIP_REPORT": "1", "NEUZIP_STAGING_MB": params[0]}
        env.update(dict(e.split("=", 1) for e in params[1:]))
        nz = run(exe, args, env, [lib, peak_lib])
        check_clean(nz, "with neuzip and a staging budget")
        whole_only = env.get("NZSIM_MAP_OFFSETS", "0") == "0"
        said = "maps whole handles only" in nz["stderr"] or "refuses cuMemMap of a part" in nz["stderr"]
        if whole_only and env.get("NEUZIP_LOG") and not said:
            fail("no line saying the driver maps whole handles only", nz)
        if not whole_only and said:
            fail("the arena was turned off on a driver that maps slices", nz)
        if nz["digest"] != plain["digest"]:
            fail("digests differ under a staging budget", plain, nz)
        # One call that needs more than the budget is said once, with the size
        # to ask for; a budget every call fits in is never mentioned.
        hints = re.findall(r"^neuzip: one call needs (\d+) MiB staged at once, more than NEUZIP_STAGING_MB=(\d+)",
                           nz["stderr"], re.M)
        if len(hints) > 1:
            fail(f"the budget hint was given {len(hints)} times", nz)
        if hints and int(hints[0][0]) <= int(params[0]):
            fail(f"a budget hint for a call that fits: {hints}", nz)
        if env.get("EXPECT_BUDGET_HINT") == "1" and not hints:
            fail("no hint that one call needs more than the budget", nz)
        if env.get("EXPECT_BUDGET_HINT") == "0" and hints:
            fail(f"a budget hint where every call fits: {hints}", nz)
        report = [l for l in nz["stderr"].splitlines() if l.startswith("neuzip: peak")]
        print(f"digest {nz['digest']} equal with {params[0]} MiB staging;", report)
        if "MIN_AHEAD" in env:
            # The share of stagings done ahead (guesses) over the whole run.
            m = re.search(r"stagings ahead (\d+).*?on launch (\d+)", report[0] if report else "")
            if not m:
                fail("no stagings ahead / on launch in the report", nz)
            ahead, on_launch = int(m.group(1)), int(m.group(2))
            share = ahead / max(1, ahead + on_launch)
            print(f"stagings ahead {ahead}, on launch {on_launch}: {share:.0%}")
            if share < float(env["MIN_AHEAD"]):
                fail(f"{share:.0%} of stagings done ahead, expected at least {float(env['MIN_AHEAD']):.0%}", nz)
        if not report or " drops 0 " in report[0] and " recompressions 0 " in report[0]:
            fail("the budget evicted nothing", nz)
    elif check == "staging-calls":
        # Issue 10: under a fixed budget that evicts every step, staging works
        # per weight, not per page: no cuMemCreate after the first step (the
        # arena), at most one decode launch per weight staged, and VMM calls
        # per step within PER_WEIGHT x WEIGHTS. Steady state = (the run's
        # steps - 1 step) / (steps - 1).
        budget, weights, per_weight = params[0], int(params[1]), float(params[2])
        steps = int(re.findall(r"--steps (\d+)", " ".join(args))[-1])
        env = {"NEUZIP_REPORT": "1", "NEUZIP_STAGING_MB": budget}
        env.update(dict(e.split("=", 1) for e in params[3:]))
        one = run(exe, args + ["--steps", "1"], env, [lib, peak_lib])
        trace_dir = tempfile.mkdtemp(prefix="nz-staging-calls-")
        env["NEUZIP_TRACE"] = os.path.join(trace_dir, "trace.jsonl")
        nz = run(exe, args, env, [lib, peak_lib])
        check_clean(nz, "with neuzip and a staging budget")
        check_clean(one, "one step with neuzip")
        if nz["digest"] != plain["digest"]:
            fail("digests differ under a staging budget", plain, nz)

        def counter(r, rx):
            m = re.search(rx, r["stderr"])
            if not m:
                fail(f"no '{rx}' in the report", r)
            return int(m.group(1))
        creates = [counter(r, r"\(creates (\d+)\)") for r in (one, nz)]
        vmm = (counter(nz, r"vmm calls (\d+)") - counter(one, r"vmm calls (\d+)")) / (steps - 1)
        launches = (counter(nz, r"decode launches (\d+)") - counter(one, r"decode launches (\d+)")) / (steps - 1)
        drops = counter(nz, r" drops (\d+)") + counter(nz, r"recompressions (\d+)")
        print(f"per step: {vmm:.1f} VMM calls, {launches:.1f} decode launches for {weights} weights; "
              f"cuMemCreate {creates[0]} in 1 step, {creates[1]} in {steps}; {drops} evictions")
        if drops == 0:
            fail("the budget evicted nothing", nz)
        # Only the arena (a driver that maps slices of a handle, or the
        # granular one of NEUZIP_STAGING_HANDLES=pages) avoids cuMemCreate
        # for good: with exact handles (the H200's driver by default) a run
        # of a new size needs a handle of its size.
        arena = env.get("NZSIM_MAP_OFFSETS") == "1" or env.get("NEUZIP_STAGING_HANDLES") == "pages"
        if arena and creates[1] != creates[0]:
            fail(f"cuMemCreate after the first step ({creates[1] - creates[0]})", one, nz)
        # Every fault event says what it staged and which kernel asked (the
        # simulator names its kernels as the driver does): how a program's
        # repeated faults are traced to their launches (RESULTS §6.6).
        faults = []
        with open(env["NEUZIP_TRACE"]) as f:
            for line in f:
                e = json.loads(line)
                if e.get("event") == "fault":
                    faults.append(e)
        shutil.rmtree(trace_dir, ignore_errors=True)
        if not faults:
            fail("no fault event in the trace", nz)
        bad = [e for e in faults if not (e.get("units", 0) >= 1 and e.get("touched", 0) >= e["units"] and
                                          e.get("bytes", 0) > 0 and e.get("ptr", 0) != 0 and
                                          (not e.get("api", "").startswith("cuLaunch") or
                                           e.get("kernel") not in (None, "", "?")))]
        if bad:
            fail(f"{len(bad)} of {len(faults)} fault events lack what they staged or the kernel: {bad[:2]}", nz)
        print(f"{len(faults)} fault events, kernels {sorted({e.get('kernel', e['api']) for e in faults})}")
        # NEUZIP_REPORT=1's "faults by caller" names the same kernels with the
        # trace's counts (at most six callers listed).
        m = re.search(r"^neuzip: faults by caller \((\d+) callers\): (.*)$", nz["stderr"], re.M)
        if not m:
            fail("no 'faults by caller' line in the report", nz)
        listed = {name: int(n) for n, name in (p.split(" ", 1) for p in m.group(2).split("; "))}
        traced = {}
        for e in faults:
            traced[e.get("kernel", e["api"])] = traced.get(e.get("kernel", e["api"]), 0) + 1
        if int(m.group(1)) != len(traced) or any(traced.get(k) != v for k, v in listed.items()):
            fail(f"faults by caller {listed} ({m.group(1)} callers) disagree with the trace {traced}", nz)
        if launches > weights:
            fail(f"{launches:.1f} decode launches per step for {weights} weights", nz)
        if vmm > per_weight * weights:
            fail(f"{vmm:.1f} VMM calls per step > {per_weight} x {weights} weights", nz)
    elif check == "handovers":
        # Issue 10: under a fixed budget, evictions of unchanged runs are
        # handed over on the device (handoff.h), with the arena or with exact
        # handles (the H200's driver): some must be, and the digest holds.
        env = {"NEUZIP_REPORT": "1", "NEUZIP_STAGING_MB": params[0]}
        env.update(dict(e.split("=", 1) for e in params[1:]))
        nz = run(exe, args, env, [lib, peak_lib])
        check_clean(nz, "with neuzip and a staging budget")
        if nz["digest"] != plain["digest"]:
            fail("digests differ with handovers", plain, nz)
        m = re.search(r"handed over (\d+) \(changed (\d+)\)", nz["stderr"])
        if not m:
            fail("no 'handed over' in the report", nz)
        if int(m.group(1)) == 0:
            fail("no eviction was handed over", nz)
        # Training (EXPECT_DEVICE_ENCODES=1): weights rewritten every step are
        # encoded on the device at eviction (handoff_encode.cpp).
        e = re.search(r"encoded on the device (\d+) units \((\d+) rescued", nz["stderr"])
        if env.get("EXPECT_DEVICE_ENCODES") == "1" and (not e or int(e.group(1)) == 0):
            fail("no rewritten weight was encoded on the device", nz)
        print(f"digest {nz['digest']} equal; handed over {m.group(1)} (changed {m.group(2)})"
              + (f"; encoded on the device {e.group(1)} units ({e.group(2)} rescued)" if e else ""))
    elif check == "stager":
        # Issue 10: the look-ahead stager (NEUZIP_LOOKAHEAD_MB=auto) under a
        # fixed budget that evicts every step. Same digest; the stager stages
        # ahead and used its stagings, and evicts runs itself with the runtime
        # lock dropped (eviction_ahead.cpp): with EXPECT_ENCODED=1 (training:
        # weights rewritten every step) some of those evictions encoded.
        env = {"NEUZIP_REPORT": "1", "NEUZIP_STAGING_MB": params[0], "NEUZIP_LOOKAHEAD_MB": "auto"}
        env.update(dict(e.split("=", 1) for e in params[1:]))
        nz = run(exe, args, env, [lib, peak_lib])
        check_clean(nz, "with neuzip and the look-ahead stager")
        if nz["digest"] != plain["digest"]:
            fail("digests differ with the look-ahead stager", plain, nz)

        def counter(rx):
            m = re.search(rx, nz["stderr"])
            if not m:
                fail(f"no '{rx}' in the report", nz)
            return [int(g) for g in m.groups()]
        runs, encoded, deferred = counter(
            r"evicted off the lock (\d+) runs \((\d+) units encoded; (\d+) handed over by launching threads\)")
        ahead, = counter(r"stagings ahead (\d+)")
        hits, = counter(r"prefetches \d+ \(used (\d+)\)")
        recompressions, = counter(r"recompressions (\d+)")
        print(f"digest {nz['digest']} equal; evicted off the lock {runs} runs ({encoded} units encoded, "
              f"{deferred} handed over by the launching thread); "
              f"staged ahead {ahead}, used {hits}; recompressions {recompressions}")
        handed, = counter(r"handed over (\d+)")
        # Inference: runs seen unchanged are handed over on the device
        # (handoff.h) rather than hashed on the host.
        if runs == 0 and (env.get("EXPECT_ENCODED") == "1" or handed == 0):
            fail("the stager evicted nothing with the lock dropped", nz)
        if ahead == 0 or hits == 0:
            fail("nothing staged ahead was used", nz)
        if env.get("EXPECT_ENCODED") == "1" and encoded == 0:
            fail("no eviction off the lock encoded a changed range", nz)
        # Training with exact handles (not the arena): the launching thread
        # hands the runs it must evict to the stager instead of encoding them
        # itself (defer_eviction).
        if env.get("EXPECT_DEFERRED") == "1" and deferred == 0:
            fail("the launching thread handed no eviction to the stager", nz)
        if env.get("EXPECT_ENCODED") == "1" and encoded > recompressions + counter(r"re-encoded unchanged (\d+)")[0]:
            fail(f"{encoded} encodes off the lock, more than the run's re-encodes", nz)
    elif check == "same-digest-off":
        nz = run(exe, args, {"NEUZIP": "0"}, [lib, peak_lib])
        check_clean(nz, "with NEUZIP=0")
        if nz["digest"] != plain["digest"]:
            fail("digests differ with NEUZIP=0", plain, nz)
        print(f"digest {nz['digest']} equal with NEUZIP=0")
    elif check == "unserved":
        kind = params[0]
        setting = {"expandable": "expandable_segments:True", "async": "backend:cudaMallocAsync"}[kind]
        peak_name = {"expandable": "the program's own virtual memory", "async": "stream-ordered allocations"}[kind]
        notice = re.compile(r"^neuzip: .*never compress.*drop " + re.escape(setting) + ".*$", re.M)
        # The notice comes once such memory is a quarter of the device: a
        # device twice the run's peak (the weights' segments are most of it).
        device = {"NZSIM_MEMORY_MB": str(2 * plain["peak"] // (1 << 20) + 1)}
        native = run(exe, args, dict(device, NEUZIP_REPORT="1"), [lib, peak_lib])
        check_clean(native, "with neuzip on cuMemAlloc segments")
        if "never compress" in native["stderr"] or "passed through, never compressed" in native["stderr"]:
            fail("a notice about memory neuzip passes through, on cuMemAlloc segments", native)
        if re.search(r"device bytes saved: peak 0;", native["stderr"]):
            fail("the cuMemAlloc run saved nothing: the comparison below would say nothing", native)
        alloc = args + ["--alloc", kind]
        own = run(exe, alloc, device, [peak_lib])
        check_clean(own, f"--alloc {kind} without neuzip")
        if own["digest"] != plain["digest"]:
            fail(f"--alloc {kind} changes the digest without neuzip", plain, own)
        # PyTorch's newer variable for one kind, the older one for the other.
        var = "PYTORCH_ALLOC_CONF" if kind == "async" else "PYTORCH_CUDA_ALLOC_CONF"
        for env in ({}, {"NEUZIP_STAGING_MB": "4"}, {"NEUZIP_COMPRESS": "weights,optimizer"},
                    {var: "max_split_size_mb:128," + setting}):
            env = dict(env, NEUZIP_REPORT="1", **device)
            nz = run(exe, alloc, env, [lib, peak_lib])
            what = f"--alloc {kind} with neuzip {env}"
            check_clean(nz, what)
            if nz["digest"] != plain["digest"]:
                fail(f"{what}: digests differ", plain, nz)
            said = [m.group(0) for m in notice.finditer(nz["stderr"])]
            if len(said) != 1:
                fail(f"{what}: {len(said)} notices naming {setting}, expected one", nz)
            if var in env and not said[0].startswith(f"neuzip: {var} sets {setting}"):
                fail(f"{what}: the notice does not name the variable: {said[0]}", nz)
            if var not in env and not re.match(r"neuzip: the program holds \d+ MiB of ", said[0]):
                fail(f"{what}: the notice gives no size: {said[0]}", nz)
            for rx in (r"device bytes saved: peak 0;", r" decompressions 0 ", r"vmm calls 0 \(creates 0\)"):
                if not re.search(rx, nz["stderr"]):
                    fail(f"{what}: '{rx}' not in the report: neuzip touched memory it passes through", nz)
            m = re.search(r"passed through, never compressed: peak (\d+) bytes \(.*" + re.escape(peak_name) +
                          r" (\d+).*still held at exit (\d+)", nz["stderr"])
            if not m or int(m.group(2)) < (own["weights"] or 0) or int(m.group(2)) == 0:
                fail(f"{what}: no peak of {peak_name} at least the weights' bytes in the report", nz)
            # minifw frees every segment before it exits: each release was counted.
            if int(m.group(3)) != 0:
                fail(f"{what}: {m.group(3)} bytes still counted at exit: a release was not seen", nz)
            print(f"{what}: digest {nz['digest']} equal; {said[0][:60]}...; {m.group(0)}")
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
    elif check in ("peak-quarter", "peak-quarter-lossy"):
        ratio = float(params[0])
        mib = str(plain["weights"] // 4 >> 20)
        env = {"NEUZIP_STAGING_MB": mib, "NEUZIP_REPORT": "1"}
        if check == "peak-quarter-lossy":
            env["NEUZIP_MODE"] = "lossy:3:512"
        nz = run(exe, args, env, [lib, peak_lib])
        check_clean(nz, "with neuzip")
        measured = nz["peak"] / plain["peak"]
        print(f"{check}: weights {plain['weights']}, staging {mib} MiB: peak {plain['peak']} -> {nz['peak']} "
              f"({measured:.3f}x)")
        print([l for l in nz["stderr"].splitlines() if l.startswith("neuzip: peak") or l.startswith("nz-tag")])
        if check == "peak-quarter":
            if nz["digest"] != plain["digest"]:
                fail("digests differ", plain, nz)
        else:
            tol = float(params[1])
            if "nz-tag: 0 tensors" in nz["stderr"] or "nz-tag:" not in nz["stderr"]:
                fail("no tensor was declared (run minifw with --nz-tag)", nz)
            if len(nz["losses"]) != len(plain["losses"]) or not plain["losses"]:
                fail("loss lines differ in number", plain, nz)
            worst = max(abs(a - b) / max(abs(a), 1e-30) for a, b in zip(plain["losses"], nz["losses"]))
            print(f"losses {plain['losses']} -> {nz['losses']}; worst relative difference {worst:.2e}")
            if worst > tol:
                fail(f"lossy losses differ by {worst:.2e} > {tol}", plain, nz)
        if measured > ratio:
            fail(f"peak ratio {measured:.3f} above {ratio}", nz)
    elif check in ("oom-auto", "oom-fraction"):
        if check == "oom-auto":
            mib = math.ceil(plain["peak"] / (1 << 20)) - int(params[0])
        else:
            mib = math.floor(float(params[0]) * plain["peak"] / (1 << 20))
        small = run(exe, args, {"NZSIM_MEMORY_MB": str(mib)}, [peak_lib])
        if small["rc"] != 3:
            fail(f"without neuzip on {mib} MiB (peak {plain['peak']}): expected exit 3 (OOM), got {small['rc']}",
                 small)
        nz = run(exe, args, {"NZSIM_MEMORY_MB": str(mib), "NEUZIP_REPORT": "1"}, [lib, peak_lib])
        check_clean(nz, f"with neuzip on {mib} MiB")
        if nz["digest"] != plain["digest"]:
            fail("digest on the small device differs", plain, nz)
        print(f"peak without neuzip {plain['peak']}; on {mib} MiB: plain exit 3, neuzip ok with digest "
              f"{nz['digest']}; peak {nz['peak']}")
        print([l for l in nz["stderr"].splitlines() if l.startswith("neuzip: peak")])
    else:
        print("unknown check", check)
        sys.exit(2)


if __name__ == "__main__":
    main()
