#!/usr/bin/env python3
"""Checks that ELF files need nothing a GPU image may lack.

    needed_libs.py [--allow LIB ...] FILE...      exit 0 when every file passes
    needed_libs.py --self-test                     checks the checker

A shipped binary (libneuzip.so above all: when a NEEDED library is missing,
ld.so skips the preload with one warning and the program runs without
neuzip) may need only the C and C++ runtime: libc, libm, libdl, libpthread,
librt, libstdc++, libgcc_s and the dynamic loader. It may also not ask for
symbol versions newer than Debian 12's (glibc 2.36, GLIBCXX 3.4.30,
CXXABI 1.3.13), the oldest system we build on, so that what builds here
loads on any newer image.
"""
import re
import subprocess
import sys

ALLOWED = {"libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libstdc++.so.6",
           "libgcc_s.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
# Newest symbol version allowed per prefix (Debian 12).
MAX_VERSIONS = {"GLIBC_": (2, 36), "GLIBCXX_": (3, 4, 30), "CXXABI_": (1, 3, 13)}


def needed_of(dynamic_text):
    """NEEDED entries from `readelf -d` output."""
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic_text)


def versions_of(version_text):
    """Required symbol versions (GLIBC_2.34, ...) from `readelf -V` output
    (the .gnu.version_r section: lines with 'Name: X  Flags: ...')."""
    part = version_text.split(".gnu.version_r", 1)
    if len(part) < 2:
        return set()
    return set(re.findall(r"Name: ((?:GLIBC|GLIBCXX|CXXABI)_[0-9.]+)", part[1]))


def too_new(version):
    for prefix, limit in MAX_VERSIONS.items():
        if version.startswith(prefix):
            try:
                number = tuple(int(x) for x in version[len(prefix):].split("."))
            except ValueError:
                return False
            return number > limit
    return False


def problems_of(name, dynamic_text, version_text, allowed):
    out = [f"{name}: needs {lib}" for lib in needed_of(dynamic_text) if lib not in allowed]
    out += [f"{name}: needs symbol version {v} (newer than Debian 12's)"
            for v in sorted(versions_of(version_text)) if too_new(v)]
    return out


def check_file(path, allowed):
    try:
        dynamic = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
        versions = subprocess.run(["readelf", "-V", path], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        return [f"{path}: readelf failed: {e}"], []
    return problems_of(path, dynamic, versions, allowed), needed_of(dynamic)


def self_test():
    dynamic = (" 0x0000000000000001 (NEEDED)             Shared library: [libfmt.so.9]\n"
               " 0x0000000000000001 (NEEDED)             Shared library: [libstdc++.so.6]\n"
               " 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n")
    versions = ("Version symbols section '.gnu.version' contains 3 entries:\n"
                "  0x0000: Name: GLIBC_2.99  Flags: none\n"
                "Version needs section '.gnu.version_r' contains 2 entries:\n"
                "  0x0010:   Name: GLIBC_2.34  Flags: none  Version: 3\n"
                "  0x0020:   Name: GLIBCXX_3.4.32  Flags: none  Version: 4\n"
                "  0x0030:   Name: CXXABI_1.3.13  Flags: none  Version: 5\n")
    got = problems_of("x", dynamic, versions, ALLOWED)
    want = ["x: needs libfmt.so.9", "x: needs symbol version GLIBCXX_3.4.32 (newer than Debian 12's)"]
    if got != want:
        print(f"needed_libs self-test: got {got}, want {want}")
        return 1
    if problems_of("y", dynamic.replace("libfmt.so.9", "libm.so.6"), versions.replace("3.4.32", "3.4.30"), ALLOWED):
        print("needed_libs self-test: flagged a clean file")
        return 1
    print("needed_libs self-test: ok")
    return 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    allowed = set(ALLOWED)
    files = []
    it = iter(argv)
    for a in it:
        if a == "--allow":
            allowed.add(next(it, ""))
        else:
            files.append(a)
    if not files:
        print(__doc__)
        return 2
    problems = []
    for f in files:
        p, needed = check_file(f, allowed)
        problems += p
        print(f"{f}: {' '.join(needed) or '(no NEEDED)'}")
    for p in problems:
        print(f"PROBLEM {p}")
    print(f"needed_libs: {len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
