#!/usr/bin/env python3
"""Peak device memory and the runtime's work per training step of a minifw
run under libneuzip.so on the simulator.

usage: tools/step-costs.py --build DIR [--steps S] [--env K=V ...] -- MINIFW_ARGS...

Runs minifw without neuzip (peak), then with neuzip (NEUZIP_REPORT=1 and the
--env settings) for S and S + 1 steps; the per-step figures are the
differences of the report's counters between the two runs (so loading and
the first compression are not counted). Prints one line of `key value`.
"""
import argparse
import re
import subprocess
import sys

from minifw_sim import minifw, sim_env

COUNTERS = {
    "decodes": r"decompressions (\d+)",
    "recompressions": r"recompressions (\d+)",
    "encodes": r"encodes (\d+)",
    "bytes_encoded": r"bytes encoded (\d+)",
    "encode_ns": r"encode host ns (\d+)",
}


def run(build, args, env_extra, neuzip):
    env = sim_env(build, neuzip, dict(env_extra, NEUZIP_REPORT="1"))
    p = subprocess.run([minifw(build)] + args, env=env, capture_output=True,
                       text=True, timeout=900)
    if p.returncode != 0:
        sys.exit(f"minifw {' '.join(args)} failed (rc {p.returncode}):\n{p.stderr[-2000:]}")
    out = {"peak": int(re.findall(r"^nzsim-peak-physical: (\d+)$", p.stderr, re.M)[-1]),
           "digest": re.findall(r"^digest: ([0-9a-f]+)$", p.stdout, re.M)[-1]}
    report = [l for l in p.stderr.splitlines() if l.startswith("neuzip: peak")]
    for key, pattern in COUNTERS.items():
        if report:
            out[key] = int(re.search(pattern, report[-1]).group(1))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("args", nargs=argparse.REMAINDER)
    o = ap.parse_args()
    args = o.args[1:] if o.args and o.args[0] == "--" else o.args
    env_extra = dict(kv.split("=", 1) for kv in o.env)
    plain = run(o.build, args + ["--steps", str(o.steps)], {}, False)
    a = run(o.build, args + ["--steps", str(o.steps)], env_extra, True)
    b = run(o.build, args + ["--steps", str(o.steps + 1)], env_extra, True)
    same = "yes" if a["digest"] == plain["digest"] else "NO"
    print(f"peak_plain {plain['peak']} peak_neuzip {a['peak']} ratio {a['peak'] / plain['peak']:.3f} "
          f"same_digest {same} " + " ".join(f"{k}_per_step {b[k] - a[k]}" for k in COUNTERS))


if __name__ == "__main__":
    main()
