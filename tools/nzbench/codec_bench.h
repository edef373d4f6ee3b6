// codec_bench.h: measuring one codec on one tensor. Each function verifies
// every decode (lossless: equal to the input; lossy: equal to the first
// decode) and returns false with `error` on any failure or mismatch.
#pragma once

#include <string>

#include "bench_types.h"

namespace nzbench {

// neuzip (the CPU codec, include/neuzip/neuzip.h) with the --mode/--bits/--block options.
bool bench_neuzip(const Options& opts, const BenchTensor& t, Figures& out, std::string& error);

// Whether this build has the zstd peer.
bool zstd_available();
// zstd at `level` on the same bytes. _mt: the buffer split into opts.threads
// pieces compressed independently, decoded in parallel (one thread each).
bool bench_zstd(const Options& opts, int level, const BenchTensor& t, Figures& out, std::string& error);

}  // namespace nzbench
