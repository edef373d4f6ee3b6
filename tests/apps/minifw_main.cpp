// minifw_main.cpp: a miniature deep-learning framework written against the
// CUDA driver API only, to exercise a driver-level runtime the way PyTorch
// does (see README.md).
#include <fmt/core.h>

#include <cstdio>

#include "options.h"
#include "workload.h"

int main(int argc, char** argv) {
  minifw::Options options;
  std::string error;
  if (!minifw::parse_options(argc, argv, options, error)) {
    fmt::print(stderr, "minifw: {}\n{}", error, minifw::usage());
    return 1;
  }
  return minifw::run_workload(options);
}
