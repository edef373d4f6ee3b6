#!/usr/bin/env python3
"""Every ABI of every driver call the shim hooks has a row in the hook table.

cuGetProcAddress hands a program the variant of its CUDA version; the shim
answers with the newest row not newer than that version. A variant missing
from interpose/hook_list.h is therefore either never hooked (a program built
for that version, or a driver that has only that one, reaches the real call:
copies into compressed memory met unmapped pages, cuMemcpyBatchAsync's CUDA
12.8 ABI) or, worse, answered with an older variant's wrapper of another
signature (cuCtxSynchronize_v2 of CUDA 13 got the argument-less wrapper).
This compares the table with cudaTypedefs.h (PFN_<call>_v<version>).

usage: hook_abis.py HOOK_LIST_H CUDA_TYPEDEFS_H
"""
import re
import sys

# ABIs deliberately left to the real driver (interpose/hook_list.h): the
# 32-bit CUdeviceptr calls of CUDA 2.x-3.0, which cannot address 64-bit memory.
BEFORE_64_BIT_POINTERS = 3020


def main():
    # Rows continue over macro lines: join them first.
    table = re.sub(r"\\\s*\n", " ", open(sys.argv[1]).read())
    typedefs = open(sys.argv[2]).read()
    rows = re.findall(r'X\(\w+,\s*"cu\w+",\s*"(cu\w+)",\s*(\d+),\s*([ALP])\)', table)
    written = len(re.findall(r'\bX\(\w+,\s*"', table))
    if len(rows) != written or written < 50:
        sys.exit(f"hook_abis: read {len(rows)} of the {written} rows in {sys.argv[1]}: has its format changed?")
    hooked = {}
    for request, first, kind in rows:
        hooked.setdefault(request, set()).add((int(first), kind == "P"))
    abis = {}
    for m in re.finditer(r"PFN_(cu\w+?)_v(\d+)(_ptsz|_ptds)?\)", typedefs):
        abis.setdefault(m.group(1), set()).add((int(m.group(2)), m.group(3) is not None))
    missing = []
    for request, have in sorted(hooked.items()):
        versions = {v for v, _ in have}
        for version, per_thread in sorted(abis.get(request, ())):
            if version < BEFORE_64_BIT_POINTERS:
                continue
            if per_thread:
                # A per-thread variant of a version we hook needs its own row:
                # without it a per-thread request gets the legacy wrapper,
                # which calls the legacy variant (stream 0 = the legacy stream).
                if version in versions and (version, True) not in have:
                    missing.append(f"{request} v{version} (per-thread)")
            elif version not in versions:
                missing.append(f"{request} v{version}")
    for m in missing:
        print(f"hook_abis: {m} is in cudaTypedefs.h but not in the hook table")
    print(f"hook_abis: {len(hooked)} calls, {len(rows)} rows, {len(missing)} ABIs missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
