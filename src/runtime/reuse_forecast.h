// reuse_forecast.h: which staged range is needed again last.
//
// Evicting the least recently used range is the worst choice for a loop that
// reads more weights than the budget holds: each iteration uses them in the
// same order, so the least recently used one is the next one needed, and
// every weight is evicted and decoded again every iteration (inference of a
// model twice the budget staged all of it per step). The best choice is the
// range whose next use is furthest away (Belady); an iteration tells us when
// that is. The runtime counts calls that touch tracked ranges (a clock) and
// iterations (a host-to-device copy after launches, Runtime::generation_);
// each range remembers at which calls of the current and of the previous
// iteration it was used. Its k-th use in this iteration is forecast at the
// call of its k-th use in the last one; past its last one, at its first use
// in the next iteration. Matching uses by their count, not by their call
// number, keeps the forecast right when an iteration has a few calls more or
// fewer than the last. A range used more than kKept times an iteration (a
// page holding several small weights, each read in the forward and the
// backward pass and written by the update) is forecast, past its kKept-th
// use, at the mean gap of its recorded uses while the last iteration had
// more: "at the next iteration" made it the first range evicted each time,
// then needed again a few calls later (train sgd 64 at 48 MiB: one such
// page evicted and restaged every step, its launch waiting 92 ms).
//
// Only while the iterations are regular (the last two within 1/8 of each
// other in calls, and this one not longer than the last by more than 1/8):
// otherwise no forecast is made and eviction stays least recently used. A
// forecast only orders evictions: a wrong one costs a decode, never a wrong
// byte.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

namespace nz::rt {

// One range's uses (Unit::uses_seen).
struct UseHistory {
  static constexpr int kKept = 4;  // a weight is read 1-3 times per training step
  uint64_t iteration = ~uint64_t{0};       // the iteration of `at`
  uint64_t last_iteration = ~uint64_t{0};  // the iteration of `last_at`
  uint32_t at[kKept] = {};                 // calls since that iteration began
  uint32_t last_at[kKept] = {};
  uint8_t count = 0;  // uses recorded in `at` (uses past kKept are not)
  uint8_t last_count = 0;
  uint8_t uses = 0;  // uses in `iteration`, saturating (to match them with last_at)
  uint8_t last_uses = 0;  // uses in `last_iteration`, saturating (may exceed last_count)
  uint32_t last_call = ~uint32_t{0};  // the call of the latest use in `iteration` (one call, one use)
};

class ReuseForecast {
 public:
  static constexpr uint64_t kUnknown = std::numeric_limits<uint64_t>::max();
  // Beyond every forecast use: not used in the last iteration.
  static constexpr uint64_t kNotSoon = kUnknown - 1;

  void on_call() noexcept { ++clock_; }
  void on_iteration() noexcept;
  void on_use(UseHistory& h) const noexcept;
  // Calls until the range's next use (at least 1), kNotSoon if the last
  // iteration did not use it, kUnknown while the iterations are irregular.
  uint64_t calls_until_use(const UseHistory& h) const noexcept;
  bool regular() const noexcept;
  uint64_t last_length() const noexcept { return last_length_; }  // calls in the last iteration
  // The current call's index in this iteration (what on_use records).
  uint32_t call_in_iteration() const noexcept {
    return static_cast<uint32_t>(std::min<uint64_t>(clock_ - iteration_begin_, UINT32_MAX));
  }

 private:
  uint64_t clock_ = 0;
  uint64_t iteration_ = 0;
  uint64_t iteration_begin_ = 0;  // clock_ at its start
  uint64_t last_length_ = 0;      // calls in the last complete iteration
  uint64_t length_before_ = 0;    // and in the one before it
};

}  // namespace nz::rt
