#!/usr/bin/env python3
"""What tracing (NEUZIP_TRACE, allocation sites included) costs in wall time:
minifw on the simulated driver under libneuzip.so, runs with the trace off
and on alternated (so that drifting machine load hits both alike), medians
and their ratio, of wall time and of CPU time (user + sys of the child: on a
shared, loaded machine the wall time also counts waiting for a core).
docs/RESULTS.md records the figures.

usage: tools/bench-trace-overhead.py [BUILD_DIR] [--pairs N] [-- MINIFW_ARGS...]
       (default: build, 21 pairs, minifw train --steps 6)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time


def main():
    argv = sys.argv[1:]
    minifw_args = ["train", "--steps", "6"]
    if "--" in argv:
        at = argv.index("--")
        argv, minifw_args = argv[:at], argv[at + 1:]
    pairs = 21
    if "--pairs" in argv:
        at = argv.index("--pairs")
        pairs = int(argv[at + 1])
        del argv[at:at + 2]
    build = os.path.abspath(argv[0] if argv else "build")
    minifw = os.path.join(build, "tests", "apps", "minifw")
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(build, "tests", "sim"),
               LD_PRELOAD=os.path.join(build, "interpose", "libneuzip.so"))
    env.pop("NEUZIP_TRACE", None)
    trace = os.path.join(tempfile.mkdtemp(prefix="nztrace-bench-"), "trace.jsonl")

    def run(traced):
        e = dict(env)
        if traced:
            e["NEUZIP_TRACE"] = trace
        t0 = time.perf_counter()
        p = subprocess.Popen([minifw] + minifw_args, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        if status != 0:
            sys.exit(f"minifw ended with wait status {status}")
        return wall, usage.ru_utime + usage.ru_stime

    run(False)  # warm the page cache
    off, on = [], []
    for i in range(pairs):
        # Alternate which goes first as well.
        if i % 2 == 0:
            off.append(run(False))
            on.append(run(True))
        else:
            on.append(run(True))
            off.append(run(False))
    lines = sum(1 for _ in open(trace))
    print(f"minifw {' '.join(minifw_args)}: {pairs} pairs, trace of {lines} lines")
    for k, what in ((0, "wall"), (1, "cpu")):
        a, b = [x[k] for x in off], [x[k] for x in on]
        print(f"{what} trace off (s):", " ".join(f"{x:.3f}" for x in a))
        print(f"{what} trace on  (s):", " ".join(f"{x:.3f}" for x in b))
        m_off, m_on = statistics.median(a), statistics.median(b)
        # Each pair ran back to back: the median of the pairs' ratios cancels slow drifts in load.
        paired = statistics.median(y / x for x, y in zip(a, b))
        print(f"{what}: median off {m_off:.3f} s, on {m_on:.3f} s, ratio of medians {m_on / m_off:.4f}, "
              f"median of paired ratios {paired:.4f}")
    os.remove(trace)


if __name__ == "__main__":
    main()
