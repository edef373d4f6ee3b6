#!/usr/bin/env python3
"""nztrace's --compare, --perfetto and --plot on the simulated driver, checked
against the simulator's own accounting, and a crashing program's trace.

usage: nztrace_outputs_test.py --nztrace EXE --lib LIBNEUZIP --minifw EXE
                               --peak-report LIB --app sim_ctypes_app.py --workdir DIR
Run with LD_LIBRARY_PATH=<build>/tests/sim. Prints "N passed, 0 failed" or
exits 1 at the first failure.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import fail, ok, summary  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
MIB = 1 << 20


def run(cmd, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def sim_peaks(stderr):
    return [int(x) for x in re.findall(r"^nzsim-peak-physical: (\d+)$", stderr, re.M)]


def check_compare(a, out):
    j, perf, svg = (os.path.join(out, n) for n in ("compare.json", "timeline.json", "memory.svg"))
    # The interface outside checks use: --json FILE (the text report stays on stderr).
    p = run([a.nztrace, "--lib", a.lib, "--compare", "--json", j, "--perfetto", perf, "--plot", svg,
             "--keep-trace", os.path.join(out, "minifw.trace"), "--", a.minifw, "train"],
            {"LD_PRELOAD": a.peak_report})
    if p.returncode != 0:
        fail(f"nztrace --compare exited {p.returncode}", p.stderr)
    if "nztrace --compare: " not in p.stderr or "peak device memory (driver)" not in p.stderr:
        fail("--json FILE: the text report is missing from stderr", p.stderr)
    # The peak-report helper prints the simulator's peak at each run's exit: without, then with.
    peaks = sim_peaks(p.stderr)
    if len(peaks) != 2:
        fail("expected two nzsim-peak-physical lines", p.stderr)
    d = json.load(open(j))
    for key in ("peak_device_bytes_without", "peak_device_bytes_with", "weights_raw_bytes", "weights_stored_bytes",
                "wall_s_without", "wall_s_with"):
        if key not in d:
            fail(f"compare JSON lacks {key}", json.dumps(d)[:2000])
    # The trace samples cuMemGetInfo at every event; a peak between events
    # would read low, never high.
    for key, sim in (("peak_device_bytes_without", peaks[0]), ("peak_device_bytes_with", peaks[1])):
        if not 0.99 * sim <= d[key] <= sim:
            fail(f"{key} = {d[key]} but the simulator's peak is {sim}")
    ok(f"peaks agree with the simulator: {peaks[0]} / {peaks[1]}")
    if d["with"]["cost"]["compressions"] == 0 or d["without"]["cost"]["compressions"] != 0:
        fail("compressions: the run with neuzip must compress, NEUZIP_OBSERVE=1 must not",
             json.dumps(d["without"]["cost"]) + json.dumps(d["with"]["cost"]))
    if not 0 < d["weights_stored_bytes"] < 0.9 * d["weights_raw_bytes"]:
        fail(f"weights {d['weights_raw_bytes']} -> {d['weights_stored_bytes']}")
    if not (d["wall_s_without"] > 0 and d["wall_s_with"] > 0 and d["exit_status"] == 0):
        fail("wall times / exit status", json.dumps(d)[:500])
    ok(f"weights {d['weights_raw_bytes']} -> {d['weights_stored_bytes']}, observe mode never compressed")
    check_perfetto(perf, d)
    check_svg(svg, d)
    # The kept trace of the run with neuzip, as an HTML page.
    html = os.path.join(out, "memory.html")
    p = run([a.nztrace, "--from-trace", os.path.join(out, "minifw.trace.with"), "--plot", html])
    text = open(html).read() if os.path.exists(html) else ""
    if p.returncode != 0 or "<svg" not in text or not text.rstrip().endswith("</html>"):
        fail("--from-trace --plot x.html", p.stderr)
    ok("--plot .html from a kept trace")


def check_perfetto(path, d):
    """The trace-event format's rules Perfetto's JSON importer relies on."""
    t = json.load(open(path))
    events = t.get("traceEvents")
    if not isinstance(events, list) or not events:
        fail("no traceEvents")
    tracks = {}
    counters = {}
    names = {}
    for e in events:
        ph = e.get("ph")
        if ph not in ("M", "C", "X", "i") or not isinstance(e.get("pid"), int):
            fail("bad event", json.dumps(e))
        if ph == "M":
            if e["name"] not in ("process_name", "thread_name") or not e["args"].get("name"):
                fail("bad metadata", json.dumps(e))
            continue
        if not isinstance(e.get("ts"), (int, float)) or e["ts"] < 0 or not e.get("name"):
            fail("bad timestamp or name", json.dumps(e))
        if ph == "C":
            if not e["args"] or not all(isinstance(v, (int, float)) for v in e["args"].values()):
                fail("bad counter", json.dumps(e))
            key = (e["pid"], e["name"])
            counters[key] = max(counters.get(key, 0), max(e["args"].values()))
        elif ph == "X":
            if not isinstance(e.get("dur"), (int, float)) or e["dur"] < 0 or not isinstance(e.get("tid"), int):
                fail("bad slice", json.dumps(e))
            tracks.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
            names[(e["pid"], e["name"])] = names.get((e["pid"], e["name"]), 0) + 1
        elif ph == "i":
            if e.get("s") not in ("g", "p", "t"):
                fail("bad instant scope", json.dumps(e))
            names[(e["pid"], e["name"])] = names.get((e["pid"], e["name"]), 0) + 1
    # Slices of one track must not overlap partially (the importer drops them).
    for key, spans in tracks.items():
        spans.sort()
        for (b0, e0), (b1, e1) in zip(spans, spans[1:]):
            if b1 < e0 - 1e-6 and e1 > e0 + 1e-6:
                fail(f"slices overlap on track {key}: {(b0, e0)} {(b1, e1)}")
    # pid 1 = without, pid 2 = with (in that order).
    if counters.get((1, "device in use")) != d["peak_device_bytes_without"] or \
            counters.get((2, "device in use")) != d["peak_device_bytes_with"]:
        fail("the device-in-use counters do not peak at the reported peaks", str(counters))
    cost = d["with"]["cost"]
    stages = names.get((2, "stage"), 0) + names.get((2, "decode ahead (prefetch)"), 0)
    if names.get((2, "compress"), 0) != cost["compressions"] or stages != cost["decompressions"] or \
            names.get((2, "fault"), 0) != cost["faults"]:
        fail("slices and instants do not match the report's counts", f"{names} vs {cost}")
    if any(pid == 1 and n in ("compress", "stage") for pid, n in names):
        fail("the run without compression has compress/stage slices")
    ok(f"perfetto JSON: {len(events)} events, {len(tracks)} slice tracks, counters peak at the reported peaks")


def check_svg(path, d):
    root = ET.parse(path).getroot()
    if root.tag != SVG + "svg":
        fail("not an SVG document")
    lines = root.findall(f"{SVG}polyline")
    texts = [t.text or "" for t in root.iter(SVG + "text")]
    if len(lines) < 2:
        fail(f"{len(lines)} polylines: both runs must be drawn")
    for key in ("peak_device_bytes_without", "peak_device_bytes_with"):
        label = f"peak {d[key] / MIB:.1f} MiB"
        if label not in texts:
            fail(f"the chart does not mark '{label}'", str(texts))
    if not any("without neuzip" in t for t in texts) or not any("with neuzip" in t for t in texts):
        fail("the legend does not name both runs", str(texts))
    ok("SVG: both runs drawn, both peaks marked")


def check_compare_status(a):
    p = run([a.nztrace, "--lib", a.lib, "--compare", "--json", "--", "sh", "-c", "exit 7"])
    if p.returncode != 7:
        fail(f"--compare of 'exit 7' exited {p.returncode}", p.stderr)
    ok("--compare passes the command's exit status through")


def check_crash(a, out):
    """A program that dies (abort, SIGKILL) still leaves a readable trace: the
    runtime writes and flushes each line as it happens."""
    for end, status in (("abort", 128 + 6), ("kill", 128 + 9)):
        j = os.path.join(out, f"crash-{end}.json")
        p = run([a.nztrace, "--lib", a.lib, "--json", "--report", j, "--", sys.executable, a.app, "--end", end])
        if p.returncode != status:
            fail(f"--end {end}: nztrace exited {p.returncode}, expected {status}", p.stdout + p.stderr)
        d = json.load(open(j))
        counts = d["event_counts"]
        if d["malformed_lines"] != 0 or counts.get("alloc") != 1 or counts.get("tag", 0) < 1 or "free" in counts:
            fail(f"--end {end}: the trace of the dead program is incomplete", json.dumps(d)[:2000])
        ok(f"a program ended by {end} leaves a complete trace ({d['events']} events)")


def check_python_site(a, out):
    j = os.path.join(out, "python-site.json")
    p = run([a.nztrace, "--lib", a.lib, "--json", "--report", j, "--", sys.executable, a.app])
    if p.returncode != 0:
        fail("sim_ctypes_app under nztrace", p.stderr)
    d = json.load(open(j))
    sites = [b["site"] for b in d["buffers"] if b.get("site")]
    if not sites or not any(re.search(r"sim_ctypes_app\.py:\d+ in allocate$", f) for f in sites[0]["python"]):
        fail("the allocation site lacks the Python frame of allocate()", json.dumps(sites)[:2000])
    ok("allocation site: " + sites[0]["python"][0])


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--nztrace", "--lib", "--minifw", "--peak-report", "--app", "--workdir"):
        ap.add_argument(opt, required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    check_compare(a, a.workdir)
    check_compare_status(a)
    check_crash(a, a.workdir)
    check_python_site(a, a.workdir)
    summary()


if __name__ == "__main__":
    main()
