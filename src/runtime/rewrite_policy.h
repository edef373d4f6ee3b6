// rewrite_policy.h: whether a range that every eviction finds changed (a
// weight the optimizer writes each step; with LOMO, every weight) should stop
// being compressed. Keeping it resident saves an encode per step but costs
// its whole size for good, so it is allowed only when memory is plentiful
// even after keeping it: with a fixed staging budget (the user bounded the
// memory) or when less than a quarter of the device would stay free, the
// range is recompressed after every write instead.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nz::rt {

// What a range's evictions found, to tell whether the staging in progress
// will end changed. A staged range expected to be written before its next
// eviction (a weight LOMO or the optimizer updates, an optimizer moment) has
// a useless store, which that eviction discards: so the store is given up
// as soon as the decode completed, whatever the free memory (staging then
// costs the range less its store). If it turns out unchanged it is encoded
// again (counted as a re-encode), which costs work, never correctness.
//
// The expectation is the outcome of the eviction one iteration back, not
// the last one: a weight staged for the forward pass (read) and again for
// the backward pass and its update (written) is found unchanged and changed
// in turn, every step. Judged by the last outcome, each staging expected
// what the other one did: the forward staging gave its store up and was
// encoded again unchanged, the backward one kept a store its update made
// stale (train sgd 256/32 under 128 MiB: 56 such re-encodes per step).
struct ChangeHistory {
  uint32_t bits = 0;      // outcomes, newest in bit 0 (1: found changed)
  uint8_t known = 0;      // how many low bits are outcomes (at most 32)
  uint16_t now = 0;       // evictions in the iteration `generation`
  uint16_t last = 0;      // evictions in the last iteration before it that had any
  uint64_t generation = ~uint64_t{0};

  // An eviction in iteration `gen` found the range changed (or not).
  void note(bool changed, uint64_t gen) noexcept {
    if (gen != generation) {
      if (generation != ~uint64_t{0} && now > 0) last = now;
      now = 0;
      generation = gen;
    }
    if (now < UINT16_MAX) ++now;
    bits = (bits << 1) | (changed ? 1u : 0u);
    if (known < 32) ++known;
  }

  // Whether the next eviction, in iteration `gen`, is expected to find it
  // changed: what the eviction one iteration before it found (as many
  // evictions back as the last whole iteration had), or, before a whole
  // iteration was seen (or where the program shows none), what the latest
  // one found.
  bool expect_change(uint64_t gen) const noexcept {
    if (known == 0) return false;
    const unsigned per_iteration = gen != generation ? now : last;
    const unsigned back = per_iteration >= 1 && per_iteration <= known ? per_iteration : 1;
    return (bits >> (back - 1)) & 1u;
  }
};

// `change_streak`: evictions in a row that found it changed; `fixed_budget`:
// NEUZIP_STAGING_MB is set; `bytes`: the range's size.
bool keep_rewritten_resident(int change_streak, bool fixed_budget, size_t bytes) noexcept;

}  // namespace nz::rt
