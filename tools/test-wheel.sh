#!/bin/sh
# The Python package as a user gets it: builds the wheel (pip wheel ., i.e.
# meson-python with pyproject.toml; CUDA kernels off to save CI time),
# installs it into a fresh venv and runs tests/python/wheel_test.py on the
# simulated driver of BUILD_DIR.
# Usage: tools/test-wheel.sh BUILD_DIR   (a build with tests/sim and kernels/sim built)
set -eu
cd "$(dirname "$0")/.."
B=$(cd "${1:?usage: tools/test-wheel.sh BUILD_DIR}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/neuzip-wheel-XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check meson-python meson ninja
"$work/venv/bin/pip" wheel -q --disable-pip-version-check --no-build-isolation --no-deps -w "$work/dist" \
  -Cbuild-dir="$work/build" -Csetup-args=-Dcuda=disabled .
"$work/venv/bin/pip" install -q --disable-pip-version-check "$work"/dist/neuzip-*.whl
# From another directory, so that nothing is imported from the checkout.
src=$(pwd)
cd "$work"
"$work/venv/bin/python" "$src/tests/python/wheel_test.py" --venv "$work/venv" \
  --wheel "$(ls "$work"/dist/neuzip-*.whl)" --sim "$B/tests/sim" --sim-module "$B/kernels/sim/libnzsim_codec.so" \
  --app "$src/tests/python/sim_ctypes_app.py"
