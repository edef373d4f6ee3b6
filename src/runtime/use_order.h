// use_order.h: which ranges the calls of the last iteration touched, in call
// order, so that a guess can stage what the next call will need.
//
// StagingOrder (prefetch.h) learns from stagings, and what is staged depends
// on what the budget kept: in training a weight left staged between its
// backward and its update is staged twice one step and three times the next,
// so its k-th staging is followed by different weights from step to step and
// the guesses went wrong (sgd 256/32: 1 staging in 2 done ahead). Uses do not
// depend on the budget: the calls of an iteration touch the same ranges in
// the same order every step. The k-th call of this iteration is matched with
// the k-th of the last (by index only: iterations that differ by a few
// calls start the walk a few calls off, which costs a guess, never a
// wrong byte), and a guess takes the
// first later call that touched a range now compressed: exactly the ranges
// that call touched, which is what it will stage on its launch otherwise
// (a weight and the rest of its reach, not the weight's tag alone).
//
// Bounded: an iteration of more than kMaxEntries uses is not kept (no guess
// from it), nor one begun before the first iteration mark.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace nz::rt {

template <typename T>
class UseOrder {
 public:
  static constexpr size_t kMaxEntries = size_t{1} << 18;  // 6 MiB of entries; a 70B model uses ~10^5

  // An iteration begins: the one that ended becomes the pattern (if it was
  // recorded whole).
  void on_iteration() noexcept {
    last_.swap(current_);
    last_complete_ = current_complete_;
    last_repeats_ = current_repeats_;
    current_.clear();
    current_complete_ = true;
    current_repeats_ = false;
  }

  // `item` was touched by the call `call` (calls since the iteration began;
  // non-decreasing within an iteration); `again`: used again long after its
  // last use in this iteration. Never throws: past kMaxEntries, or without memory, the
  // iteration is marked incomplete instead.
  void on_use(const std::shared_ptr<T>& item, uint32_t call, bool again) noexcept {
    current_repeats_ = current_repeats_ || again;
    if (!current_complete_) return;
    if (current_.size() >= kMaxEntries) {
      current_complete_ = false;
      return;
    }
    try {
      current_.push_back({call, item});
    } catch (...) {
      current_complete_ = false;
    }
  }

  bool known() const noexcept { return last_complete_ && !last_.empty(); }
  // Whether the last iteration used some range `again` (the caller's test:
  // a training step's backward and update after its forward).
  bool repeats() const noexcept { return last_repeats_; }

  // Visits the last iteration's uses by calls after `call`, in order, then
  // (the next iteration begins as the last one did) those up to `call`:
  // visit(key, item) returns false to stop; `key` tells calls apart (the
  // call, plus 2^32 once wrapped). Items gone since are skipped.
  template <typename Visit>
  void for_each_after(uint32_t call, Visit&& visit) const {
    if (!known()) return;
    const auto from = std::upper_bound(last_.begin(), last_.end(), call,
                                       [](uint32_t c, const Entry& e) { return c < e.call; });
    for (auto it = from; it != last_.end(); ++it) {
      auto item = it->item.lock();
      if (item && !visit(uint64_t{it->call}, item)) return;
    }
    for (auto it = last_.begin(); it != from; ++it) {
      auto item = it->item.lock();
      if (item && !visit((uint64_t{1} << 32) + it->call, item)) return;
    }
  }

  size_t size() const noexcept { return last_.size(); }

 private:
  struct Entry {
    uint32_t call;
    std::weak_ptr<T> item;
  };
  std::vector<Entry> last_, current_;
  bool last_complete_ = false;
  bool current_complete_ = false;  // the uses before the first mark are not an iteration
  bool last_repeats_ = false, current_repeats_ = false;
};

}  // namespace nz::rt
