// bench_input.h: turning files (or a seed) into the tensors nzbench measures.
#pragma once

#include <string>
#include <vector>

#include "bench_types.h"

namespace nzbench {

// Load every tensor of every file, cast (--dtype), skip (non-float dtypes,
// below --min-bytes) and tile (--tile-mb). Returns false with `error` when a
// file cannot be read or is malformed.
bool load_inputs(const Options& opts, std::vector<BenchTensor>& tensors, std::vector<Skipped>& skipped,
                 std::string& error);

// `count` normal(0, 0.02) values (a typical initialisation scale), deterministic in `seed`.
std::vector<float> synthetic_normal(uint64_t count, uint64_t seed);

// Repeat `data` until it holds at least `target_bytes` (whole copies of the
// element size), leaving it alone if it is already that large.
void tile_to(std::vector<uint8_t>& data, uint64_t target_bytes, unsigned element_size);

}  // namespace nzbench
