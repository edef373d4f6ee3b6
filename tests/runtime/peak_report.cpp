// peak_report.cpp: an LD_PRELOAD helper for the end-to-end scripts: at exit it
// prints the simulator's peak physical device memory to stderr as
// "nzsim-peak-physical: N", so that runs with and without neuzip can be
// compared by memory actually used (what cuMemGetInfo would show), which the
// application itself cannot see.
#include <dlfcn.h>

#include <cstdio>

#include "nzsim.h"

namespace {

__attribute__((destructor)) void report_peak() {
  auto get = reinterpret_cast<nzsim_get_stats_fn>(dlsym(RTLD_DEFAULT, "nzsim_get_stats"));
  if (get == nullptr) return;
  nzsim_stats s{};
  if (get(&s) != 0) return;
  std::fprintf(stderr, "nzsim-peak-physical: %llu\nnzsim-faults: %llu\n",
               static_cast<unsigned long long>(s.peak_physical_bytes), static_cast<unsigned long long>(s.faults));
}

}  // namespace
