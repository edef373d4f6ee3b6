#!/usr/bin/env python3
"""minifw's --dist runs through the test NCCL (libnccl.so.2 of tests/nccl),
with and without libneuzip.so, on the simulated driver.

usage: minifw_dist_check.py CHECK --minifw EXE --neuzip LIB --collective NAME
                            [--env VAR=VALUE]... [--expect-event EVENT] -- MINIFW_ARGS...
The --env settings apply to every run (e.g. NZSIM_MEMORY_MB for a small
device); without any, the neuzip runs get NEUZIP_STAGING_MB=4.
checks:
  plain             without neuzip: exit 0, and the digest of the same run
                    without --dist (one rank: NCCL moves the data unchanged,
                    so the fake NCCL's kernels really moved it)
  neuzip            under libneuzip.so: the digest and losses of the plain
                    run, no illegal address, and the trace shows collective
                    NAME staging a compressed range (a `fault` event with
                    "api":"NAME"), and at least one EVENT event if given
                    (e.g. recompress: a range a collective wrote was encoded
                    again, not dropped): a pass-through would fail this
  hooks-off-faults  the same run with NEUZIP_NCCL=0 (NCCL's calls forwarded
                    untouched): must fail with an illegal address (the
                    simulator's `nzsim: illegal address` line, then a sticky
                    CUDA_ERROR_ILLEGAL_ADDRESS or NCCL's unhandled CUDA
                    error), as a GPU would: proof the checks above can fail
"""
import json
import os
import re
import subprocess
import sys
import tempfile


def run(exe, args, env_extra=None, preload=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    if preload:
        env["LD_PRELOAD"] = preload
    p = subprocess.run([exe] + args, env=env, capture_output=True, text=True, timeout=600)
    digest = re.findall(r"^digest: ([0-9a-f]+)$", p.stdout, re.M)
    losses = re.findall(r"^step \d+ loss (0x[0-9a-f]+)", p.stdout, re.M)
    return {"rc": p.returncode, "digest": digest[-1] if digest else None, "losses": losses,
            "stdout": p.stdout, "stderr": p.stderr}


def fail(msg, *runs):
    print("FAIL:", msg)
    for r in runs:
        print("--- rc", r["rc"], "digest", r["digest"])
        print(r["stdout"][-2000:])
        print(r["stderr"][-3000:])
    sys.exit(1)


def without_dist(args):
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--dist":
            skip = True
            continue
        out.append(a)
    return out


def trace_events(path):
    events = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                events.append(json.loads(line))
    return events


def main():
    argv = sys.argv[1:]
    if "--" not in argv or not argv:
        print(__doc__)
        return 99
    split = argv.index("--")
    head, args = argv[:split], argv[split + 1:]
    check = head[0]
    pairs = list(zip(head[1::2], head[2::2]))
    opts = dict(pairs)
    exe, lib, collective = opts["--minifw"], opts["--neuzip"], opts["--collective"]
    env = dict(v.split("=", 1) for k, v in pairs if k == "--env")
    budget = {} if env else {"NEUZIP_STAGING_MB": "4"}
    expect_event = opts.get("--expect-event")

    plain = run(exe, args, env)
    if plain["rc"] != 0 or plain["digest"] is None:
        fail("the run without neuzip failed", plain)
    print("plain digest", plain["digest"], "losses", " ".join(plain["losses"]))

    if check == "plain":
        single = run(exe, without_dist(args), env)
        if single["digest"] != plain["digest"] or single["losses"] != plain["losses"]:
            fail("one-rank data parallel changed the run", plain, single)
        print("same digest as without --dist:", single["digest"])
        return 0

    if check == "neuzip":
        with tempfile.TemporaryDirectory() as tmp:
            trace = os.path.join(tmp, "trace.jsonl")
            nz = run(exe, args, dict(env, **budget, NEUZIP_TRACE=trace, NEUZIP_REPORT="1"), lib)
            if "ILLEGAL_ADDRESS" in nz["stderr"] or nz["rc"] != 0:
                fail("the run under neuzip failed", nz)
            if nz["digest"] != plain["digest"] or nz["losses"] != plain["losses"]:
                fail("digest or losses differ under neuzip", plain, nz)
            events = trace_events(trace)
        count = {}
        for e in events:
            count[e["event"]] = count.get(e["event"], 0) + 1
        faults = {}
        for e in events:
            if e["event"] == "fault":
                faults[e.get("api", "?")] = faults.get(e.get("api", "?"), 0) + 1
        print("digest", nz["digest"], "(same); trace events", count)
        print("faults by call", faults)
        if count.get("compress", 0) == 0:
            fail("nothing was compressed", nz)
        if faults.get(collective, 0) == 0:
            fail(f"no {collective} staged a compressed range (are the NCCL hooks on?)", nz)
        if expect_event and count.get(expect_event, 0) == 0:
            fail(f"no {expect_event} event", nz)
        return 0

    if check == "hooks-off-faults":
        off = run(exe, args, dict(env, **budget, NEUZIP_NCCL="0"), lib)
        if off["rc"] == 0 or "nzsim: illegal address" not in off["stderr"]:
            fail("with NEUZIP_NCCL=0 the run did not fault", off)
        print("NEUZIP_NCCL=0: exit", off["rc"], "with an illegal address, as expected")
        for line in off["stderr"].splitlines():
            if "ILLEGAL" in line or "illegal" in line:
                print(line)
        return 0

    print("unknown check", check)
    return 99


if __name__ == "__main__":
    sys.exit(main())
