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

// A staged range found changed at its last eviction (a weight LOMO updates,
// an optimizer moment) will most likely be written again before its next
// eviction, which then discards its store: so the store is given up as soon
// as the decode completed, whatever the free memory (staging then costs the
// range less its store). If it turns out unchanged it is encoded again
// (counted as a re-encode), which costs work, never correctness.
inline bool store_useless_while_staged(int change_streak) noexcept { return change_streak > 0; }

// `change_streak`: evictions in a row that found it changed; `fixed_budget`:
// NEUZIP_STAGING_MB is set; `bytes`: the range's size.
bool keep_rewritten_resident(int change_streak, bool fixed_budget, size_t bytes) noexcept;

}  // namespace nz::rt
