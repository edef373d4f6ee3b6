#!/bin/sh
# Installs what neuzip needs on a fresh Debian 12 machine (idempotent).
# The CUDA toolkit headers (cuda.h) are expected under /usr/local/cuda
# (NVIDIA's packages) or wherever -Dnz_cuda_root points; nvcc is optional.
set -eu
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq || true
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  meson ninja-build g++ pkg-config clang libclang-rt-14-dev \
  libfmt-dev libgtest-dev libunwind-dev libzstd-dev zstd nlohmann-json3-dev librsvg2-bin \
  python3-venv python3-pip >/dev/null
