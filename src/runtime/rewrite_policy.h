// rewrite_policy.h: whether a range that every eviction finds changed (a
// weight the optimizer writes each step; with LOMO, every weight) should stop
// being compressed. Keeping it resident saves an encode per step but costs
// its whole size for good, so it is allowed only when memory is plentiful
// even after keeping it: with a fixed staging budget (the user bounded the
// memory) or when less than a quarter of the device would stay free, the
// range is recompressed after every write instead.
#pragma once

#include <cstddef>

namespace nz::rt {

// `change_streak`: evictions in a row that found it changed; `fixed_budget`:
// NEUZIP_STAGING_MB is set; `bytes`: the range's size.
bool keep_rewritten_resident(int change_streak, bool fixed_budget, size_t bytes) noexcept;

}  // namespace nz::rt
