// prefetch.h: training and inference loops stage ranges in the same order
// every iteration, so the range staged after X last time is the best guess
// for what comes after X now. StagingOrder remembers that order; the runtime
// starts decoding the guess on a side stream while the current work runs.
//
// A training step stages a weight more than once (forward, backward, the
// update), each time followed by a different one: after W3's forward comes
// W4, after its backward W2. So an item's k-th staging in an iteration is
// matched with its k-th staging in the last one (as ReuseForecast matches
// uses), and only where that is unknown — no iteration marks yet, more
// stagings than last time — with its latest staging. (Matched with its latest
// staging only, every forward guess was the weight after its update.)
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace nz::rt {

template <typename T>
class StagingOrder {
 public:
  // An iteration begins (Runtime::generation_).
  void on_iteration() noexcept { ++iteration_; }

  // Records that `item` was just staged; returns what was staged right after
  // the staging it is matched with (null if none, or if that item is gone).
  // May throw std::bad_alloc (nothing is recorded then).
  std::shared_ptr<T> record(const std::shared_ptr<T>& item) {
    if (order_.size() >= kMaxHistory) {  // forget old iterations rather than grow forever
      order_.clear();
      seen_.clear();
    }
    Stagings& s = seen_[item.get()];
    roll(s);
    auto next = successor(s.count < s.last_count ? s.last_at[s.count] : s.latest, item.get());
    order_.push_back(item);
    const size_t at = order_.size() - 1;
    if (s.count < Stagings::kKept) s.at[s.count] = at;
    if (s.count < UINT32_MAX) ++s.count;
    s.latest = at;
    return next;
  }

  // What was staged right after `item`'s latest staging (null if nothing yet,
  // or if that is gone). Unlike record(), nothing is recorded: for an item
  // still staged since then, whose own guess was taken before its successor
  // was known (the last weight of the first iteration stays staged into the
  // second one).
  std::shared_ptr<T> after(const T* item) const {
    auto it = seen_.find(item);
    return it == seen_.end() ? nullptr : successor(it->second.latest, item);
  }

 private:
  static constexpr size_t kMaxHistory = size_t{1} << 16;
  static constexpr size_t kNone = SIZE_MAX;

  struct Stagings {
    static constexpr uint32_t kKept = 4;  // a weight is staged 1-3 times per training step
    uint64_t iteration = 0;               // the iteration of `at`
    uint32_t count = 0;                   // stagings in it (those past kKept are not in `at`)
    uint32_t last_count = 0;              // stagings kept in `last_at`: the iteration before it
    size_t at[kKept] = {};                // positions in order_
    size_t last_at[kKept] = {};
    size_t latest = kNone;
  };

  // An item's stagings of the current iteration become its last iteration's
  // (or none, when it was not staged in the one before this).
  void roll(Stagings& s) const noexcept {
    if (s.iteration == iteration_) return;
    s.last_count = s.iteration + 1 == iteration_ ? std::min(s.count, Stagings::kKept) : 0;
    for (uint32_t k = 0; k < s.last_count; ++k) s.last_at[k] = s.at[k];
    s.count = 0;
    s.iteration = iteration_;
  }

  std::shared_ptr<T> successor(size_t at, const T* item) const {
    if (at == kNone || at + 1 >= order_.size()) return nullptr;
    auto next = order_[at + 1].lock();
    return next.get() == item ? nullptr : next;
  }

  uint64_t iteration_ = 0;
  std::vector<std::weak_ptr<T>> order_;
  std::unordered_map<const T*, Stagings> seen_;
};

}  // namespace nz::rt
