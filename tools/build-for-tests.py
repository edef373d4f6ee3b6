#!/usr/bin/env python3
"""Builds only what the named tests need, then prints nothing.

Usage: tools/build-for-tests.py BUILD_DIR TEST_NAME...
Meson's `meson test` rebuilds the whole project first; the sanitizer stage of
CI needs only a few suites, so this asks Meson which targets those tests depend
on and builds just those with ninja.
"""
import json
import os
import subprocess
import sys


def main() -> int:
    build, wanted = sys.argv[1], set(sys.argv[2:])
    tests = json.loads(subprocess.check_output(["meson", "introspect", "--tests", build]))
    targets = json.loads(subprocess.check_output(["meson", "introspect", "--targets", build]))
    by_id = {t["id"]: t for t in targets}
    found = {t["name"] for t in tests} & wanted
    missing = wanted - found
    if missing:
        print(f"build-for-tests: no such tests: {sorted(missing)}", file=sys.stderr)
        return 2
    outputs = set()
    for t in tests:
        if t["name"] in wanted:
            for dep in t.get("depends", []):
                if dep in by_id:
                    outputs.update(by_id[dep]["filename"])
    root = os.path.realpath(build) + "/"
    rel = sorted(os.path.realpath(o)[len(root):] if os.path.realpath(o).startswith(root) else o
                 for o in outputs)
    return subprocess.call(["ninja", "-C", build] + rel)


if __name__ == "__main__":
    sys.exit(main())
