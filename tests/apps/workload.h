// workload.h: the two workloads, inference and training, end to end.
#pragma once

#include "options.h"

namespace minifw {

// Runs the workload; returns the process exit code (driver failures exit
// from deep inside with 2, out of memory with 3).
int run_workload(const Options& options);

}  // namespace minifw
