#!/usr/bin/env python3
"""The installed `neuzip` wheel (tools/test-wheel.sh): the module imports and
is a warning no-op without the library, the `nztrace` console script runs a
Python program on the simulated driver with the packaged libneuzip.so, and
neuzip.tag/flush/stats work inside it.

usage: wheel_test.py --venv DIR --wheel FILE --sim DIR --sim-module FILE --app sim_ctypes_app.py
Prints "N passed, 0 failed" or exits 1 at the first failure.
"""
import argparse
import json
import os
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import fail, ok, summary  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--venv", "--wheel", "--sim", "--sim-module", "--app"):
        ap.add_argument(opt, required=True)
    a = ap.parse_args()
    py = os.path.join(a.venv, "bin", "python")
    nztrace = os.path.join(a.venv, "bin", "nztrace")
    # The CUDA driver of the simulator, its codec module; no other build output.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONPATH", "NEUZIP_LIB")}
    env.update(LD_LIBRARY_PATH=a.sim, NEUZIP_SIM_MODULE=a.sim_module)

    def run(cmd, **extra):
        e = dict(env)
        e.update(extra)
        return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=300)

    names = zipfile.ZipFile(a.wheel).namelist()
    stray = [n for n in names if not n.startswith(("neuzip/", "neuzip-"))]
    for need in ("neuzip/__init__.py", "neuzip/lib/libneuzip.so", "neuzip/bin/nztrace"):
        if need not in names:
            fail(f"the wheel lacks {need}", "\n".join(names))
    if stray:
        fail("the wheel holds files outside the package", "\n".join(stray))
    ok(f"wheel: {len(names)} files, all under neuzip/")

    # Without the library: imports, warns, does nothing.
    p = run([py, "-W", "always", "-c",
             "import neuzip, os\n"
             "class T:\n"
             "  dtype = 'torch.bfloat16'\n"
             "  def data_ptr(self): return 4096\n"
             "  def numel(self): return 1024\n"
             "  def element_size(self): return 2\n"
             "print(neuzip.tag(T()), neuzip.untag(T()), neuzip.flush(), neuzip.stats()['active'], "
             "neuzip.is_loaded(), os.path.isfile(neuzip.lib_path()))"])
    if p.returncode != 0 or p.stdout.split() != ["False", "False", "False", "False", "False", "True"]:
        fail("the module without libneuzip.so", p.stdout + p.stderr)
    if p.stderr.count("not preloaded") != 1:
        fail("expected exactly one warning", p.stderr)
    ok("without the library: no-ops, one warning, lib_path() is the packaged library")

    p = run([nztrace, "--help"])
    if p.returncode != 0 or "--compare" not in p.stderr:
        fail("nztrace --help (console script)", p.stdout + p.stderr)
    ok("the nztrace console script runs")

    report = os.path.join(os.path.dirname(a.wheel), "report.json")
    p = run([nztrace, "--json", "--report", report, "--", py, a.app, "--neuzip"])
    if (p.returncode != 0 or "roundtrip ok" not in p.stdout or "tag: True" not in p.stdout
            or "tag_parameters: 2" not in p.stdout):
        fail(f"nztrace -- python sim_ctypes_app.py --neuzip exited {p.returncode}", p.stdout + p.stderr)
    stats = json.loads(p.stdout.split("stats: ", 1)[1].splitlines()[0])
    if not stats["active"] or stats["bytes_compressed"] <= 0 or stats["bytes_original_compressed"] <= stats["bytes_compressed"]:
        fail("neuzip.stats() inside the program", json.dumps(stats))
    # Every nz_runtime_stats member, in the C struct's order: a field the
    # Python list misses or misplaces reads another member's value here.
    if stats.get("unserved_bytes_peak") != 0 or stats.get("vmm_calls", 0) < 1 or stats.get("decode_launches") != 0:
        fail("neuzip.stats(): the fields appended to nz_runtime_stats", json.dumps(stats))
    d = json.load(open(report))
    if d["cost"]["compressions"] < 1 or d["exit_status"] != 0:
        fail("the nztrace report", json.dumps(d)[:2000])
    ok(f"nztrace + neuzip.tag/tag_parameters/flush/stats: {stats['bytes_original_compressed']} -> {stats['bytes_compressed']} bytes")

    lib = run([py, "-c", "import neuzip; print(neuzip.lib_path())"]).stdout.strip()
    p = run([py, a.app, "--neuzip"], LD_PRELOAD=lib)
    if p.returncode != 0 or "tag: True" not in p.stdout or "roundtrip ok" not in p.stdout:
        fail("LD_PRELOAD=neuzip.lib_path() python ...", p.stdout + p.stderr)
    ok("LD_PRELOAD=neuzip.lib_path() works without nztrace")
    summary()


if __name__ == "__main__":
    main()
