"""The `nztrace` console script: runs the nztrace executable installed with this package."""

import os
import sys


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    exe = os.path.join(here, "bin", "nztrace")
    if not os.access(exe, os.X_OK):
        sys.stderr.write(f"nztrace: {exe} is missing: the neuzip package is incomplete\n")
        return 125
    # The executable finds lib/libneuzip.so beside its own bin/ directory.
    os.execv(exe, [exe] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
