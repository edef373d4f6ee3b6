// codec_options.h: nzbench's --mode/--bits/--block as neuzip codec options,
// the same for the CPU codec and the device codec (--gpu).
#pragma once

#include <neuzip/neuzip.h>

#include "bench_types.h"

namespace nzbench {

// Options for one tensor of type `t`; single-threaded (the benchmarks choose
// their own decode threads).
nz_options codec_options(const Options& opts, nztools::FloatType t);

}  // namespace nzbench
